/**
 * A small client of the Docker Engine API over its socket (`unix:///…`) or TCP (`tcp://host:port`,
 * with TLS and a client certificate when given, as dockerd `--tlsverify` wants), made with
 * `node:http` and `node:https`: JSON requests, the engine's errors mapped to kiln's,
 * and the multiplexed stdout/stderr stream that logs and exec answer with. The swarm driver needs
 * about a dozen endpoints; see docs/swarm.md for why this is not dockerode.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';

import {
  ConflictError,
  KilnError,
  NotFoundError,
  UnavailableError,
  ValidationError,
  type ValidationIssue,
} from '../../errors/index.js';

/** The oldest Engine API the swarm driver speaks: 1.41 (Docker 20.10, Debian 12's docker.io). */
export const MIN_ENGINE_API = '1.41';

/** How long one Engine API request may take unless it says otherwise: 30 s. */
export const ENGINE_REQUEST_TIMEOUT_MS = 30_000;

/**
 * TLS to an engine at a `tcp://` address: the CA its certificate must chain to, and the client
 * certificate and key kiln presents (PEM), with the files they came from (for `docker --tlsverify`).
 */
export interface EngineTls {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly files: { readonly ca: string; readonly cert: string; readonly key: string };
}

/**
 * Reads an engine's TLS files (absolute paths) and checks each is what it should be: a certificate
 * (the CA, kiln's), or a private key. A ValidationError names `source.ca`/`.cert`/`.key` and the fix.
 */
export async function readEngineTls(
  files: { readonly ca: string; readonly cert: string; readonly key: string },
  source: string,
): Promise<EngineTls> {
  const issues: ValidationIssue[] = [];
  const read = async (field: 'ca' | 'cert' | 'key', check: (pem: Buffer) => unknown, what: string) => {
    const file = files[field];
    const pem = await readFile(file).catch((err: NodeJS.ErrnoException) => {
      issues.push({
        path: `${source}.${field}`,
        message: `${file}: ${err.code ?? err.message}`,
        fix: `point it at ${what}`,
      });
      return undefined;
    });
    if (pem === undefined) return Buffer.alloc(0);
    try {
      check(pem);
    } catch {
      issues.push({
        path: `${source}.${field}`,
        message: `${file} is not ${what}`,
        fix: `point it at ${what}`,
      });
    }
    return pem;
  };
  const tls = {
    ca: await read(
      'ca',
      (pem) => new X509Certificate(pem),
      "the PEM certificate of the CA that signed the engines' certificates",
    ),
    cert: await read(
      'cert',
      (pem) => new X509Certificate(pem),
      "kiln's PEM client certificate, signed by that CA",
    ),
    key: await read('key', (pem) => createPrivateKey(pem), 'the PEM private key of that client certificate'),
    files: { ...files },
  };
  if (issues.length > 0) throw new ValidationError(undefined, issues);
  return tls;
}

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
  /** TLS to the engine, when it is at a `tcp://` address and TLS was given. */
  readonly tls: EngineTls | undefined;
  readonly #address: EngineAddress;
  readonly #agent: http.Agent;
  #version: Promise<string> | undefined;

  constructor(url: string, tls?: EngineTls) {
    this.url = url;
    this.#address = parseEngineUrl(url);
    this.tls = 'host' in this.#address ? tls : undefined;
    this.#agent = this.tls
      ? new https.Agent({
          keepAlive: true,
          maxSockets: 8,
          ca: this.tls.ca,
          cert: this.tls.cert,
          key: this.tls.key,
        })
      : new http.Agent({ keepAlive: true, maxSockets: 8 });
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
      const request = (this.tls ? https : http).request(
        {
          ...this.#address,
          agent: this.#agent,
          method,
          path: `${prefix}${req.path}${search}`,
          headers: {
            // A socket has no host; over TCP, Node names the address (and TLS checks it).
            ...('socketPath' in this.#address ? { host: 'docker' } : {}),
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

/**
 * The Engine API's `X-Registry-Auth`: base64url (padded) of `{ username, password, serveraddress }`, the
 * server being the registry host of `image` (`10.0.0.1:5000/kiln/web@sha256:…`).
 */
export function registryAuthHeader(username: string, password: string, image: string): string {
  const serveraddress = image.slice(0, image.indexOf('/'));
  // Go's base64.URLEncoding, which the engine decodes with, keeps the `=` padding that Node's
  // 'base64url' drops.
  const json = JSON.stringify({ username, password, serveraddress });
  return Buffer.from(json).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}
