/**
 * How {@link ApiClient} turns a failed call into a kiln error again: a server it cannot reach (or
 * whose certificate it does not trust), and each error status, so `exit.ts` maps a failed call to
 * the same exit code as the same failure in process.
 */
import {
  ConflictError,
  KilnError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../errors/index.js';
import { errorCode, isCertificateError } from '../oci/index.js';
import type { ApiErrorJson } from './types.js';

/** The error for a call that got no answer from `url`. */
export function unreachable(url: string, timeoutMs: number, err: unknown): KilnError {
  if (isCertificateError(err)) {
    return new ValidationError(`kiln server ${url}`, [
      {
        path: 'ca',
        message: `its TLS certificate is not trusted (${errorCode(err)})`,
        fix:
          "pass --ca FILE or set KILN_CA to the server's certificate (or its CA's) in PEM; " +
          'a local `kiln server --tls-cert` records it in .kiln/server.json',
      },
    ]);
  }
  const start =
    'start it with `kiln server` (or `kiln up`), or point --server or KILN_SERVER at a running one';
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new UnavailableError(
      `the kiln server at ${url} did not answer within ${timeoutMs} ms: is it running? ${start}`,
      { cause: err },
    );
  }
  const why = errorCode(err) ?? (err instanceof Error ? err.message : String(err));
  return new UnavailableError(`cannot reach the kiln server at ${url} (${why}): ${start}`, {
    cause: err,
  });
}

/** The error for an answer of `status` with body `text` (an {@link ApiErrorJson}, usually). */
export function errorFrom(url: string, status: number, text: string): KilnError {
  let body: ApiErrorJson['error'] | undefined;
  try {
    body = (JSON.parse(text) as Partial<ApiErrorJson>).error;
  } catch {
    body = undefined;
  }
  const message = body?.message ?? (text.trim() || `HTTP ${status}`);
  const tokenFix =
    'use the admin token in .kiln/admin-token (the default), or set KILN_TOKEN or pass --token';
  switch (status) {
    case 400:
    case 413:
      return new ValidationError(
        body?.file ?? `kiln server ${url}`,
        body?.issues && body.issues.length > 0 ? body.issues : [{ path: '', message }],
      );
    case 401:
      return new ValidationError(`kiln server ${url}`, [
        { path: 'token', message: `the token was refused (${message})`, fix: tokenFix },
      ]);
    case 403:
      return new ValidationError(`kiln server ${url}`, [
        { path: 'token', message, fix: `${tokenFix}, with the scope named` },
      ]);
    case 404:
      return new NotFoundError(message);
    case 409:
      return new ConflictError(message);
    case 422:
      return new KilnError('integrity', message);
    case 503:
      return new UnavailableError(message);
    default:
      return new KilnError('internal', `the kiln server at ${url} answered ${status}: ${message}`);
  }
}
