/**
 * Fixtures for the API server's tests (not exported from index.ts, not built): a server over a
 * {@link FakeControlPlane} with tokens of each scope and the store's audit log, and a raw HTTP call
 * that keeps the status, headers and body.
 */
import type { OciStore } from '../oci/index.js';
import { IN_MEMORY, openState } from '../state/index.js';
import { FakeControlPlane } from './fake.js';
import { startApiServer } from './server.js';
import type { TlsMaterial } from './tls.js';
import type { ApiErrorJson } from './types.js';

/**
 * A server over a fake plane (with service `web` seeded), with tokens and the audit log of a real
 * (in-memory) state store, which the token routes manage. What must be closed is pushed onto `undo`.
 */
export async function serve(
  undo: (() => unknown)[],
  options: { readonly tls?: TlsMaterial; readonly registry?: OciStore } = {},
) {
  const store = openState(IN_MEMORY);
  undo.push(() => store.close());
  const plane = new FakeControlPlane({ store });
  plane.seedService('web');
  const logs: string[] = [];
  const api = await startApiServer({
    plane,
    tokens: store.tokens,
    audit: store.audit,
    version: '9.9.9',
    log: (line) => logs.push(line),
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.registry ? { registry: options.registry } : {}),
  });
  undo.push(() => api.close());
  const tokens = {
    admin: store.tokens.create('admin', ['admin']).secret,
    reader: store.tokens.create('reader', ['read']).secret,
    ci: store.tokens.create('ci', ['deploy']).secret,
  };
  return { api, plane, store, logs, tokens };
}

/** An answer of the server, its body read. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: () => unknown;
}

/** `METHOD url+path` with the token as a bearer token, if any. */
export async function call(
  url: string,
  path: string,
  init: { method?: string; token?: string; body?: string | Buffer } = {},
): Promise<Answer> {
  const res = await fetch(`${url}${path}`, {
    method: init.method ?? 'GET',
    headers: init.token === undefined ? {} : { authorization: `Bearer ${init.token}` },
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** The `error` of an error answer. */
export function errorOf(answer: Answer): ApiErrorJson['error'] {
  return (answer.json() as ApiErrorJson).error;
}
