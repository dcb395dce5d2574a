/**
 * The server's HTTP plumbing on node:http: reading a bounded body, writing JSON and text, and the
 * one place errors become an HTTP status and an {@link ApiErrorJson} body.
 */
import type http from 'node:http';
import { KilnError, ValidationError } from '../errors/index.js';
import { httpStatusOf } from '../traffic/index.js';
import type { ApiErrorJson } from './types.js';

/** Largest request body accepted: 1 MiB; a bigger one is answered 413. */
export const MAX_BODY_BYTES = 1 << 20;

/**
 * How much of an oversized body is still read (and thrown away) so the 413 reaches the client;
 * past this the connection is cut.
 */
export const MAX_DRAIN_BYTES = 16 * MAX_BODY_BYTES;

/** What a 500 says; the real error goes to the server's log only. */
export const INTERNAL_ERROR_MESSAGE =
  "the control plane failed on this request; the details are in the kiln server's log";

/** An error answered at the HTTP level (401, 403, 404 route, 405, 413), not raised by the control plane. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Writes `body` as JSON with `status`. */
export function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      ...headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
    })
    .end(text);
}

/** Writes `text` as text/plain with `status`. */
export function sendText(res: http.ServerResponse, status: number, text: string): void {
  res
    .writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
    })
    .end(text);
}

/**
 * The status and body for any error: HttpErrors as they are, kiln errors by their code (400, 404,
 * 409, 422, 503), anything else 500 with a generic message. `internal` is true when the error is a
 * fault of the server that must be logged.
 */
export function errorAnswer(err: unknown): {
  status: number;
  body: ApiErrorJson;
  headers: Readonly<Record<string, string>>;
  internal: boolean;
} {
  if (err instanceof HttpError) {
    return {
      status: err.status,
      body: { error: { code: err.code, message: err.message } },
      headers: err.headers,
      internal: false,
    };
  }
  const status = httpStatusOf(err);
  if (status === 500 || !(err instanceof KilnError)) {
    return {
      status: 500,
      body: { error: { code: 'internal', message: INTERNAL_ERROR_MESSAGE } },
      headers: {},
      internal: true,
    };
  }
  const validation =
    err instanceof ValidationError
      ? { issues: err.issues, ...(err.file === undefined ? {} : { file: err.file }) }
      : {};
  return {
    status,
    body: { error: { code: err.code, message: err.message, ...validation } },
    headers: {},
    internal: false,
  };
}

/**
 * Reads the whole request body, at most `limit` bytes. An oversized body is read to its end and
 * dropped (up to {@link MAX_DRAIN_BYTES}, after which the connection is cut) and answered 413.
 */
export async function readBody(req: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const tooLarge = (headers: Readonly<Record<string, string>> = {}): HttpError =>
    new HttpError(
      413,
      'payload-too-large',
      `the request body is over ${limit} bytes: send only the documented fields (docs/api.md)`,
      headers,
    );
  const declared = Number(req.headers['content-length'] ?? '0');
  // Reading that much only to refuse it is not worth it: answer and close the connection.
  if (declared > MAX_DRAIN_BYTES) throw tooLarge({ connection: 'close' });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
    else if (size > MAX_DRAIN_BYTES) break; // leaving the loop destroys the request and its socket
  }
  if (size > limit) throw tooLarge();
  return Buffer.concat(chunks);
}
