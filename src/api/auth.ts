/**
 * Bearer-token authentication and scope checks for the HTTP API. The server answers 401 (with
 * `WWW-Authenticate: Bearer`) when the token is missing, malformed, unknown or revoked, and 403
 * when it lacks the scope a route needs.
 */
import type { TokenScope } from '../state/index.js';
import { HttpError } from './http.js';

/**
 * Checks a bearer secret; `store.tokens` (the state store's `TokenRepository`) is one. Answers
 * undefined for a malformed, unknown, wrong or revoked secret alike.
 */
export interface TokenVerifier {
  verify(secret: string): { readonly name: string; readonly scopes: readonly TokenScope[] } | undefined;
}

/** Who is calling: the verified token's name (the actor recorded with a deploy) and scopes. */
export interface Caller {
  readonly name: string;
  readonly scopes: readonly TokenScope[];
}

const BEARER_RE = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

/** The caller whose token is in `authorization`; throws a 401 HttpError when there is none. */
export function authenticate(authorization: string | undefined, tokens: TokenVerifier): Caller {
  const challenge = { 'www-authenticate': 'Bearer' };
  if (authorization === undefined || authorization === '') {
    throw new HttpError(
      401,
      'unauthorized',
      'this route needs a token: send `Authorization: Bearer kiln_…` (the admin token is in .kiln/admin-token)',
      challenge,
    );
  }
  const secret = BEARER_RE.exec(authorization)?.[1];
  const token = secret === undefined ? undefined : tokens.verify(secret);
  if (token === undefined) {
    throw new HttpError(
      401,
      'unauthorized',
      'the token is malformed, unknown or revoked: send `Authorization: Bearer kiln_…` with a live token',
      challenge,
    );
  }
  return { name: token.name, scopes: token.scopes };
}

/**
 * True when `scopes` allow `needed`: the scope itself, or a broader one. `admin` implies every
 * scope and `deploy` implies `read`, so a CI token with `deploy` can follow its own rollout.
 */
export function hasScope(scopes: readonly TokenScope[], needed: TokenScope): boolean {
  if (scopes.includes('admin') || scopes.includes(needed)) return true;
  return needed === 'read' && scopes.includes('deploy');
}

/** Throws a 403 HttpError naming the missing scope when `caller` may not do `what`. */
export function authorize(caller: Caller, needed: TokenScope, what: string): void {
  if (hasScope(caller.scopes, needed)) return;
  throw new HttpError(
    403,
    'forbidden',
    `token '${caller.name}' has scope ${caller.scopes.join(', ') || 'none'}, but ${what} needs ` +
      `'${needed}' (or 'admin'): use a token with that scope`,
  );
}
