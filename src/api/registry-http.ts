/**
 * The registry's HTTP plumbing: distribution-spec errors (`{"errors":[{code,message,detail}]}`),
 * the mapping of kiln errors onto them in one place, the credentials registry clients send
 * (Basic with a kiln token as the password, or a bearer token), and writing a reply.
 */
import { createReadStream } from 'node:fs';
import type http from 'node:http';
import { pipeline } from 'node:stream/promises';
import { ConflictError, IntegrityError, KilnError, NotFoundError, ValidationError } from '../errors/index.js';
import type { BlobChecker, BlobUploads, OciStore } from '../oci/index.js';
import { authenticate, type Caller, type TokenVerifier } from './auth.js';
import { HttpError } from './http.js';

/** The realm of the `WWW-Authenticate: Basic` challenge on a 401. */
export const REGISTRY_REALM = 'kiln';

/** The challenge answered with every 401, so skopeo, podman and docker retry with their credentials. */
export const REGISTRY_CHALLENGE = `Basic realm="${REGISTRY_REALM}"`;

/** The error codes of the distribution spec (and `UNKNOWN` for a fault of the registry). */
export type RegistryErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'TAG_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'UNKNOWN';

/** An error answered as a distribution-spec error body. */
export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly code: RegistryErrorCode,
    message: string,
    readonly detail?: unknown,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

/** What a registry handler answers: status, headers and a body (bytes, or a range of a file). */
export interface RegistryReply {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  readonly file?: { readonly path: string; readonly start: number; readonly end: number };
  /** Set by a handler that changed the store: the audit log's detail for its record. */
  readonly changed?: string;
}

/** What a registry handler gets. */
export interface RegistryContext {
  readonly store: OciStore;
  readonly uploads: BlobUploads;
  /** Checks blobs before they are served (remembering intact files). */
  readonly checker: BlobChecker;
  /** The path's parameters: `name`, `reference`, `digest`, `uuid`. */
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly req: http.IncomingMessage;
  readonly caller: Caller;
}

/** The distribution error for `err`: RegistryErrors as they are; kiln errors by their kind. */
export function registryErrorOf(err: unknown, context: RegistryErrorCode = 'UNKNOWN'): RegistryError {
  if (err instanceof RegistryError) return err;
  if (err instanceof HttpError) {
    const code = err.status === 401 ? 'UNAUTHORIZED' : err.status === 403 ? 'DENIED' : 'UNSUPPORTED';
    const headers = err.status === 401 ? { 'www-authenticate': REGISTRY_CHALLENGE } : err.headers;
    const message = err.status === 401 ? unauthorizedMessage(err.message) : err.message;
    return new RegistryError(err.status, code, message, undefined, headers);
  }
  if (err instanceof KilnError) {
    const detail = err instanceof ValidationError ? { issues: err.issues } : undefined;
    if (err instanceof NotFoundError) return new RegistryError(404, notFoundCode(context), err.message);
    if (err instanceof IntegrityError) return new RegistryError(400, 'DIGEST_INVALID', err.message);
    if (err instanceof ConflictError) return new RegistryError(416, 'BLOB_UPLOAD_INVALID', err.message);
    if (err instanceof ValidationError)
      return new RegistryError(400, invalidCode(context), err.message, detail);
  }
  return new RegistryError(
    500,
    'UNKNOWN',
    "the registry failed on this request; the details are in the kiln server's log",
  );
}

function notFoundCode(context: RegistryErrorCode): RegistryErrorCode {
  return ['BLOB_UNKNOWN', 'BLOB_UPLOAD_UNKNOWN', 'MANIFEST_UNKNOWN', 'NAME_UNKNOWN'].includes(context)
    ? context
    : 'NAME_UNKNOWN';
}

function invalidCode(context: RegistryErrorCode): RegistryErrorCode {
  return context === 'BLOB_UPLOAD_UNKNOWN'
    ? 'BLOB_UPLOAD_INVALID'
    : context === 'MANIFEST_UNKNOWN'
      ? 'MANIFEST_INVALID'
      : 'UNSUPPORTED';
}

function unauthorizedMessage(why: string): string {
  const detail = why.includes('malformed')
    ? 'the token is malformed, unknown or revoked'
    : 'the registry needs a token';
  return `${detail}: log in with any user name and a kiln token as the password (skopeo --creds kiln:TOKEN)`;
}

const BASIC_RE = /^Basic[ \t]+([A-Za-z0-9+/=]+)[ \t]*$/i;

/**
 * The caller whose kiln token is in `authorization`: `Bearer TOKEN`, or `Basic` with the token as
 * the password (the user name is not checked; registry clients need one, `kiln` will do).
 * Throws a 401 HttpError when there is no live token.
 */
export function registryCaller(authorization: string | undefined, tokens: TokenVerifier): Caller {
  const basic = authorization === undefined ? undefined : BASIC_RE.exec(authorization)?.[1];
  if (basic === undefined) return authenticate(authorization, tokens);
  const decoded = Buffer.from(basic, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return authenticate(colon === -1 ? 'Bearer' : `Bearer ${decoded.slice(colon + 1)}`, tokens);
}

/** Writes `reply` (without its body for HEAD). */
export async function sendReply(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  reply: RegistryReply,
): Promise<void> {
  const length = reply.body?.length ?? (reply.file ? reply.file.end - reply.file.start + 1 : 0);
  res.writeHead(reply.status, {
    'docker-distribution-api-version': 'registry/2.0',
    ...reply.headers,
    'content-length': String(length),
  });
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  if (reply.body) {
    res.end(reply.body);
    return;
  }
  const { path, start, end } = reply.file!;
  await pipeline(createReadStream(path, { start, end }), res);
}

/** Writes `err` as a distribution error body (a HEAD gets the status and headers alone). */
export function sendRegistryError(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  err: RegistryError,
): void {
  const body = Buffer.from(
    JSON.stringify({
      errors: [
        { code: err.code, message: err.message, ...(err.detail === undefined ? {} : { detail: err.detail }) },
      ],
    }),
  );
  res.writeHead(err.status, {
    'docker-distribution-api-version': 'registry/2.0',
    ...err.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(body.length),
    // A refused upload's body is not read: end the connection rather than drain it.
    ...(req.complete ? {} : { connection: 'close' }),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
