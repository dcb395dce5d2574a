/**
 * How a client finds the control plane. A running `kiln server` writes `<home>/server.json`
 * (`{ url, pid, startedAt }`, and `ca` when it serves HTTPS) and the first admin token's secret to
 * `<home>/admin-token` (0600); clients take the URL, token and trusted certificate from flags,
 * else the environment (`KILN_SERVER`, `KILN_TOKEN`, `KILN_CA`), else those files.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { NotFoundError, UnavailableError, ValidationError } from '../errors/index.js';
import { writeFileAtomic } from '../oci/index.js';
import { readCaFile } from './tls.js';

/** The file in the home directory that names the running server. */
export const SERVER_FILE = 'server.json';
/** The file in the home directory holding the first admin token's secret. */
export const ADMIN_TOKEN_FILE = 'admin-token';
/** Environment variable naming the server URL; wins over server.json. */
export const SERVER_ENV = 'KILN_SERVER';
/** Environment variable holding the token; wins over admin-token. */
export const TOKEN_ENV = 'KILN_TOKEN';
/** Environment variable naming the PEM certificate to trust for an https:// server; wins over server.json's `ca`. */
export const CA_ENV = 'KILN_CA';

/** `<home>/server.json`. */
export interface ServerFileJson {
  /** `http://127.0.0.1:PORT`, or `https://` when the server has a certificate. */
  readonly url: string;
  readonly pid: number;
  readonly startedAt: string;
  /** With HTTPS: the server's certificate file (absolute), which local clients trust. */
  readonly ca?: string;
}

/** Where to send requests, with which token, trusting which certificate. */
export interface Connection {
  readonly url: string;
  readonly token: string;
  /** PEM certificate(s) trusted for an https:// URL on top of the system's roots. */
  readonly ca?: Buffer;
}

/** What flags gave, each winning over the environment and the files. */
export interface ConnectionFlags {
  readonly server?: string;
  readonly token?: string;
  /** A PEM certificate file to trust (`--ca`). */
  readonly ca?: string;
}

const serverFileSchema = z.object({
  url: z.url({ protocol: /^https?$/ }),
  pid: z.number().int().positive(),
  startedAt: z.string(),
  ca: z.string().min(1).optional(),
});

/**
 * The server URL, token and trusted certificate: each from `flags`, else `env` (`KILN_SERVER`,
 * `KILN_TOKEN`, `KILN_CA`), else the files in `home` (undefined when there is no project to look
 * in); server.json's `ca` counts only for the URL it records. A server.json whose process is gone
 * counts as missing.
 *
 * @example
 * const { url, token } = await readConnection(homeFor(config), process.env, { server: opts.server });
 */
export async function readConnection(
  home: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  flags: ConnectionFlags = {},
): Promise<Connection> {
  const fromFlag = nonEmpty(flags.server);
  const fromEnv = nonEmpty(env[SERVER_ENV]);
  const file = fromFlag !== undefined || fromEnv !== undefined ? undefined : await serverFromFile(home);
  const url =
    fromFlag !== undefined
      ? checkUrl(fromFlag, '--server')
      : fromEnv !== undefined
        ? checkUrl(fromEnv, SERVER_ENV)
        : file!.url;
  const token = nonEmpty(flags.token) ?? nonEmpty(env[TOKEN_ENV]) ?? (await tokenFromFile(home));
  const caFlag = nonEmpty(flags.ca);
  const caEnv = nonEmpty(env[CA_ENV]);
  const ca =
    caFlag !== undefined
      ? await readCaFile(caFlag, '--ca')
      : caEnv !== undefined
        ? await readCaFile(caEnv, CA_ENV)
        : file?.ca !== undefined
          ? await readCaFile(file.ca, `the ca of ${displayPath(home!, SERVER_FILE)}`)
          : undefined;
  return { url, token, ...(ca ? { ca } : {}) };
}

/**
 * Records the running server in `<home>/server.json`, atomically (temp file and rename); `ca` is
 * the certificate file an HTTPS server serves, made absolute.
 */
export async function writeServerFile(
  home: string,
  server: { readonly url: string; readonly pid: number; readonly ca?: string },
  now: Date = new Date(),
): Promise<ServerFileJson> {
  const json: ServerFileJson = {
    url: server.url,
    pid: server.pid,
    startedAt: now.toISOString(),
    ...(server.ca === undefined ? {} : { ca: path.resolve(server.ca) }),
  };
  await mkdir(home, { recursive: true });
  await writeFileAtomic(path.join(home, SERVER_FILE), `${JSON.stringify(json, null, 2)}\n`);
  return json;
}

/**
 * Removes `<home>/server.json`; with `pid`, only when the file still names that process, so a
 * server shutting down never removes the file of one that started after it.
 */
export async function removeServerFile(home: string, pid?: number): Promise<void> {
  const file = path.join(home, SERVER_FILE);
  if (pid !== undefined) {
    const current = await readServerFile(home).catch(() => undefined);
    if (current !== undefined && current.pid !== pid) return;
  }
  await rm(file, { force: true });
}

/** Writes the admin token's secret to `<home>/admin-token`, readable by its owner only (0600). */
export async function writeAdminToken(home: string, secret: string): Promise<void> {
  await mkdir(home, { recursive: true });
  await writeFileAtomic(path.join(home, ADMIN_TOKEN_FILE), `${secret}\n`, 0o600);
}

/** `<home>/server.json` as written by {@link writeServerFile}, or undefined when there is none. */
export async function readServerFile(home: string): Promise<ServerFileJson | undefined> {
  const file = path.join(home, SERVER_FILE);
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = undefined;
  }
  const parsed = serverFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ValidationError(file, [
      {
        path: '',
        message: 'is not { "url", "pid", "startedAt", "ca"? }',
        fix: 'delete it and start the server again with `kiln server`',
      },
    ]);
  }
  return parsed.data;
}

async function serverFromFile(home: string | undefined): Promise<ServerFileJson> {
  const start = 'start one with `kiln server` or `kiln up`';
  if (home === undefined) {
    throw new UnavailableError(`no kiln server given: pass --server URL or set ${SERVER_ENV}, or ${start}`);
  }
  const server = await readServerFile(home);
  if (server === undefined) {
    throw new UnavailableError(
      `no kiln server is running for this project (${displayPath(home, SERVER_FILE)} missing): ${start}`,
    );
  }
  if (!isRunning(server.pid)) {
    throw new UnavailableError(
      `the kiln server recorded in ${displayPath(home, SERVER_FILE)} (pid ${server.pid}) is no longer running: ${start}`,
    );
  }
  return server;
}

async function tokenFromFile(home: string | undefined): Promise<string> {
  const fix = `pass --token or set ${TOKEN_ENV}`;
  if (home === undefined) throw new NotFoundError(`no API token given: ${fix}`);
  const file = path.join(home, ADMIN_TOKEN_FILE);
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  const token = nonEmpty(text?.trim());
  if (token === undefined) {
    throw new NotFoundError(
      `no API token: ${displayPath(home, ADMIN_TOKEN_FILE)} is missing or empty (\`kiln server\` writes it): ${fix}`,
    );
  }
  return token;
}

function checkUrl(url: string, from: string): string {
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw new ValidationError(from, [
      {
        path: '',
        message: `${JSON.stringify(url)} is not an http:// or https:// URL`,
        fix: 'write it as http://127.0.0.1:PORT (https:// when the server has --tls-cert)',
      },
    ]);
  }
  return url;
}

/** `.kiln/server.json` when home is the usual `.kiln` directory, else the full path. */
function displayPath(home: string, file: string): string {
  return path.basename(home) === '.kiln' ? `.kiln/${file}` : path.join(home, file);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
