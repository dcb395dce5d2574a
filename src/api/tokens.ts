/**
 * Token management behind `/v1/tokens`: list, create and revoke the state store's API tokens,
 * each change audited. Secrets leave only once, in the answer to a create; hashes never leave.
 */
import { ConflictError } from '../errors/index.js';
import type { TokenRecord, TokenRepository } from '../state/index.js';
import { audited, type AuditSink } from './audit.js';
import type { TokenCreatedJson, TokenJson, TokenRequest } from './types.js';

/** What {@link TokenAdmin} needs of the state store; a `StateStore` is one. */
export interface TokenStore {
  readonly tokens: TokenRepository;
  readonly audit: AuditSink;
}

/** A stored token as the API shows it: no secret, no hash. */
export function tokenJson(t: TokenRecord): TokenJson {
  return {
    id: t.id,
    name: t.name,
    scopes: [...t.scopes],
    createdAt: t.createdAt,
    ...(t.revokedAt === undefined ? {} : { revokedAt: t.revokedAt }),
  };
}

const isLiveAdmin = (t: TokenRecord): boolean => t.revokedAt === undefined && t.scopes.includes('admin');

/**
 * The token operations of the {@link ControlPlane}, over the state store.
 *
 * @example
 * const admin = new TokenAdmin(store);
 * const { secret } = await admin.create({ name: 'ci', scopes: ['deploy'] }, 'alice');
 * await admin.revoke('ci', 'alice');
 */
export class TokenAdmin {
  constructor(private readonly store: TokenStore) {}

  /** Every token, revoked ones included, oldest first. */
  list(): TokenJson[] {
    return this.store.tokens.list().map(tokenJson);
  }

  /** Creates a token (audited `token.create`); the answer holds its secret. */
  create(request: TokenRequest, actor: string): Promise<TokenCreatedJson> {
    return audited(
      this.store.audit,
      actor,
      'token.create',
      request.name,
      async () => {
        const { token, secret } = this.store.tokens.create(request.name, request.scopes);
        return { token: tokenJson(token), secret };
      },
      ({ token }) => `token ${token.id} with scope ${token.scopes.join(', ')}`,
    );
  }

  /**
   * Revokes the token with id `ref`, else the live token named `ref` (audited `token.revoke`).
   * Refuses (ConflictError) to revoke the last live admin token, which would leave nobody able to
   * manage tokens. The check and the revocation run without a pause between them, so two revokes
   * in flight cannot both pass it.
   */
  revoke(ref: string, actor: string): Promise<TokenJson> {
    return audited(
      this.store.audit,
      actor,
      'token.revoke',
      ref,
      async () => {
        const all = this.store.tokens.list();
        const target =
          all.find((t) => t.id === ref) ?? all.find((t) => t.name === ref && t.revokedAt === undefined);
        if (target !== undefined && isLiveAdmin(target) && all.filter(isLiveAdmin).length === 1) {
          throw new ConflictError(
            `token '${target.name}' is the last live admin token; revoking it would leave nobody able ` +
              'to manage tokens: create another admin token first (kiln tokens create NAME --scope admin)',
          );
        }
        return tokenJson(this.store.tokens.revoke(target?.id ?? ref));
      },
      (t) => `token ${t.id} with scope ${t.scopes.join(', ')}`,
    );
  }
}
