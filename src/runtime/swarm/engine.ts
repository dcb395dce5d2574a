/**
 * A small client of the Docker Engine API over its socket (`unix:///…`) or plain TCP
 * (`tcp://host:port`), made with `node:http`: JSON requests, the engine's errors mapped to kiln's,
 * and the multiplexed stdout/stderr stream that logs and exec answer with. The swarm driver needs
 * about a dozen endpoints; see docs/swarm.md for why this is not dockerode.
 */
import http from 'node:http';

import {
  ConflictError,
  KilnError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../../errors/index.js';

/** The oldest Engine API the swarm driver speaks: 1.41 (Docker 20.10, Debian 12's docker.io). */
export const MIN_ENGINE_API = '1.41';

/** How long one Engine API request may take unless it says otherwise: 30 s. */
export const ENGINE_REQUEST_TIMEOUT_MS = 30_000;

/** Where an engine listens, parsed from `unix:///path` or `tcp://host:port`. */
export type EngineAddress =
  { readonly socketPath: string } | { readonly host: string; readonly port: number };

/** Parses an engine URL; a ValidationError names `field` and the forms it takes. */
export function parseEngineUrl(url: string, field = 'docker'): EngineAddress {
  const unix = /^unix:\/\/(\/\S+)$/.exec(url);
  if (unix) return { socketPath: unix[1]! };
  const tcp = /^tcp:\/\/([^\s:/]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})\/?$/.exec(url);
  if (tcp && Number(tcp[2]) >= 1 && Number(tcp[2]) <= 65_535) {
    return { host: tcp[1]!.replace(/^\[|\]$/g, ''), port: Number(tcp[2]) };
  }
  throw new ValidationError(undefined, [
    {
      path: field,
      message: `"${url}" is not a Docker Engine address`,
      fix: 'write "unix:///var/run/docker.sock" or "tcp://host:2375"',
    },
  ]);
}

/** Output of a multiplexed stream, split by where the process wrote it. */
export interface Demuxed {
  readonly stdout: string;
  readonly stderr: string;
  /** Both streams in the order the frames came. */
  readonly both: string;
}

/**
 * Splits the Engine's multiplexed stream (8-byte frame headers: stream, 0, 0, 0, big-endian size)
 * into its streams. A body with no valid header (a TTY stream) is taken as stdout.
 */
export function demux(body: Buffer): Demuxed {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const both: Buffer[] = [];
  let at = 0;
  while (at + 8 <= body.length) {
    const stream = body[at]!;
    const size = body.readUInt32BE(at + 4);
    if (stream > 2 || body[at + 1] !== 0 || at + 8 + size > body.length) break;
    const frame = body.subarray(at + 8, at + 8 + size);
    (stream === 2 ? err : out).push(frame);
    both.push(frame);
    at += 8 + size;
  }
  if (at === 0 && body.length > 0)
    return { stdout: body.toString('utf8'), stderr: '', both: body.toString('utf8') };
  const text = (parts: Buffer[]) => Buffer.concat(parts).toString('utf8');
  return { stdout: text(out), stderr: text(err), both: text(both) };
}

/** One request's options. */
export interface EngineRequest {
  readonly method?: 'GET' | 'POST' | 'DELETE';
  /** Under the API version, such as `/services/create`. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | boolean | object>>;
  readonly body?: unknown;
  /** Extra request headers, such as `X-Registry-Auth`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** @default ENGINE_REQUEST_TIMEOUT_MS */
  readonly timeoutMs?: number;
}

/**
 * One Docker Engine. `request` sends JSON and parses JSON; `raw` returns the body's bytes (logs,
 * exec output). Statuses map to kiln's errors: 404 NotFoundError, 409 ConflictError, others a
 * `runtime` KilnError carrying the engine's message; a socket that does not answer is an
 * UnavailableError naming the address.
 */
export class Engine {
  readonly url: string;
  readonly #address: EngineAddress;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  #version: Promise<string> | undefined;

  constructor(url: string) {
    this.url = url;
    this.#address = parseEngineUrl(url);
  }

  /** The engine's API version, at least {@link MIN_ENGINE_API} (asked once). */
  apiVersion(): Promise<string> {
    this.#version ??= this.#send({ path: '/version' }, '').then(({ body }) => {
      const version = String((JSON.parse(body.toString('utf8')) as { ApiVersion?: string }).ApiVersion ?? '');
      if (!(compareVersions(version, MIN_ENGINE_API) >= 0)) {
        throw new UnavailableError(
          `the Docker Engine at ${this.url} speaks API ${version || '(unknown)'}; kiln needs ${MIN_ENGINE_API} ` +
            'or later (Docker 20.10+: apt-get install docker.io)',
        );
      }
      return version;
    });
    this.#version.catch(() => (this.#version = undefined));
    return this.#version;
  }

  /** Sends a request and parses its JSON answer (undefined for an empty body). */
  async request<T>(req: EngineRequest): Promise<T> {
    const { body } = await this.#send(req, `/v${await this.apiVersion()}`);
    const text = body.toString('utf8');
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /** Sends a request and returns the body's bytes. */
  async raw(req: EngineRequest): Promise<Buffer> {
    return (await this.#send(req, `/v${await this.apiVersion()}`)).body;
  }

  /** Releases the kept-alive sockets. */
  close(): void {
    this.#agent.destroy();
  }

  #send(req: EngineRequest, prefix: string): Promise<{ status: number; body: Buffer }> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(req.query ?? {})) {
      query.set(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
    }
    const search = query.size > 0 ? `?${query.toString()}` : '';
    const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const method = req.method ?? 'GET';
    const what = `${method} ${req.path} on ${this.url}`;
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          ...this.#address,
          agent: this.#agent,
          method,
          path: `${prefix}${req.path}${search}`,
          headers: {
            host: 'docker',
            ...req.headers,
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
          timeout: req.timeoutMs ?? ENGINE_REQUEST_TIMEOUT_MS,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (c: Buffer) => chunks.push(c));
          response.on('error', reject);
          response.on('end', () => {
            const body = Buffer.concat(chunks);
            const status = response.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve({ status, body });
            else reject(engineError(status, body, what));
          });
        },
      );
      request.on('timeout', () =>
        request.destroy(new Error(`no answer within ${req.timeoutMs ?? ENGINE_REQUEST_TIMEOUT_MS} ms`)),
      );
      request.on('error', (err) =>
        reject(
          err instanceof KilnError
            ? err
            : new UnavailableError(`${what}: ${err.message} (is dockerd running there?)`, { cause: err }),
        ),
      );
      request.end(payload);
    });
  }
}

function engineError(status: number, body: Buffer, what: string): KilnError {
  let message = body.toString('utf8').trim();
  try {
    message = String((JSON.parse(message) as { message?: string }).message ?? message);
  } catch {
    // not JSON: the text as it came
  }
  const text = `${what}: ${message}`;
  if (status === 404) return new NotFoundError(text);
  if (status === 409) return new ConflictError(text);
  if (status === 503) return new UnavailableError(text);
  return new KilnError('runtime', `${text} (HTTP ${status})`);
}

/** Compares dotted version numbers such as `1.41` and `1.9`; NaN when either is not one. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  if ([...pa, ...pb].some((n) => !Number.isInteger(n))) return Number.NaN;
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
