/**
 * Starting the router process detached, and adopting one already running, by the files it keeps
 * in one directory: `state.json` (routes), `router.pid`, `router.json` (`{ pid, adminPort }`,
 * written once it serves), `token` (0600) and `router.log`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../errors/index.js';
import { isProcessAlive, readIfExists, readPidFile, stopPid, writeFileAtomic } from './files.js';
import { readReadyFile, RouterClient } from './router-client.js';

/** How long {@link spawnRouter} waits for the router to serve: 10 s. */
export const DEFAULT_ROUTER_START_TIMEOUT_MS = 10_000;

/** The files of a router kept in `dir`. */
export interface RouterFiles {
  readonly stateFile: string;
  readonly pidFile: string;
  readonly readyFile: string;
  readonly tokenFile: string;
  readonly logFile: string;
}

/** Where a router kept in `dir` keeps its files. */
export function routerFiles(dir: string): RouterFiles {
  return {
    stateFile: join(dir, 'state.json'),
    pidFile: join(dir, 'router.pid'),
    readyFile: join(dir, 'router.json'),
    tokenFile: join(dir, 'token'),
    logFile: join(dir, 'router.log'),
  };
}

/** Options for {@link spawnRouter}. */
export interface SpawnRouterOptions {
  /** Directory of the router's files ({@link routerFiles}); created 0700. */
  readonly dir: string;
  /**
   * Admin API bearer token; kept in the directory's `token` file (0600).
   * @default the token file's content, or a new random token
   */
  readonly token?: string;
  /**
   * Admin API port; 0 = any free port (written to `router.json`).
   * @default 0
   */
  readonly adminPort?: number;
  /**
   * Address of the admin API and every service.
   * @default DEFAULT_ROUTER_HOST
   */
  readonly host?: string;
  /**
   * The router's entry script.
   * @default the compiled `router-main.js` beside this module
   */
  readonly entry?: string;
  /**
   * Node options put before the entry (tests running from source pass a TypeScript loader).
   * @default []
   */
  readonly nodeArgs?: readonly string[];
  /**
   * How long to wait for the router to serve.
   * @default DEFAULT_ROUTER_START_TIMEOUT_MS
   */
  readonly startTimeoutMs?: number;
}

/** Options for {@link connectRouter}. */
export interface ConnectRouterOptions {
  /** Directory of the router's files. */
  readonly dir: string;
  /**
   * Admin API bearer token.
   * @default the directory's `token` file
   */
  readonly token?: string;
}

async function tokenFor(files: RouterFiles, given: string | undefined): Promise<string | undefined> {
  return given ?? (await readIfExists(files.tokenFile))?.trim();
}

async function logTail(file: string): Promise<string> {
  const text = (await readIfExists(file)) ?? '';
  return text.slice(-2000).trim();
}

/**
 * Adopts the router running for `dir`: checks the recorded PID runs a router, that `/healthz`
 * answers with that PID and that the token is accepted. Throws `NotFoundError` when none runs.
 *
 * @example
 * const router = await connectRouter({ dir: '.kiln/router' }).catch(() => spawnRouter({ dir: '.kiln/router' }));
 */
export async function connectRouter(options: ConnectRouterOptions): Promise<RouterClient> {
  const files = routerFiles(options.dir);
  const pid = await readPidFile(files.pidFile);
  if (pid === undefined) {
    throw new NotFoundError(
      `no router runs for ${options.dir} (no ${files.pidFile}); start one with spawnRouter`,
    );
  }
  if (!(await isProcessAlive(pid, 'router-main'))) {
    throw new NotFoundError(
      `the router recorded in ${files.pidFile} (pid ${pid}) is not running; start one with spawnRouter`,
    );
  }
  const ready = await readReadyFile(files.readyFile);
  if (ready === undefined || ready.pid !== pid) {
    throw new UnavailableError(
      `router pid ${pid} runs but has not written ${files.readyFile}; see ${files.logFile}, or stop pid ${pid} and spawn again`,
    );
  }
  const token = await tokenFor(files, options.token);
  if (token === undefined) {
    throw new ValidationError(undefined, [
      {
        path: 'token',
        message: `no admin token given and no ${files.tokenFile}`,
        fix: 'pass the token the router was started with',
      },
    ]);
  }
  const client = new RouterClient({
    adminUrl: `http://${ready.host}:${ready.adminPort}`,
    token,
    pid,
    pidFile: files.pidFile,
  });
  const health = await client.health();
  if (health.pid !== pid) {
    throw new ConflictError(
      `port ${ready.adminPort} is answered by pid ${health.pid}, not the recorded router ${pid}`,
    );
  }
  await client.routes();
  return client;
}

/**
 * Starts the router process detached (its own session, so it outlives this process and its
 * terminal), records its PID in `router.pid`, and waits until it serves. Throws `ConflictError`
 * when a router already runs for `dir` (adopt it with {@link connectRouter}).
 */
export async function spawnRouter(options: SpawnRouterOptions): Promise<RouterClient> {
  const files = routerFiles(options.dir);
  // From dist/traffic/, or from the CLI's bundle in dist/cli/: the same path.
  const entry = options.entry ?? fileURLToPath(new URL('../traffic/router-main.js', import.meta.url));
  if (!existsSync(entry)) {
    throw new UnavailableError(`the router entry ${entry} does not exist; build kiln first (npm run build)`);
  }
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const running = await readPidFile(files.pidFile);
  if (running !== undefined && (await isProcessAlive(running, 'router-main'))) {
    throw new ConflictError(
      `a router already runs for ${options.dir} (pid ${running}); adopt it with connectRouter`,
    );
  }
  const token = (await tokenFor(files, options.token)) ?? randomBytes(32).toString('hex');
  await writeFileAtomic(files.tokenFile, `${token}\n`, 0o600);
  await rm(files.readyFile, { force: true });
  const log = await open(files.logFile, 'a', 0o600);
  let child;
  try {
    const args = [
      ...(options.nodeArgs ?? []),
      entry,
      '--state-file',
      files.stateFile,
      '--token-file',
      files.tokenFile,
      '--ready-file',
      files.readyFile,
      '--log-file',
      files.logFile,
      '--admin-port',
      String(options.adminPort ?? 0),
      ...(options.host !== undefined ? ['--host', options.host] : []),
    ];
    child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
  } finally {
    await log.close();
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new UnavailableError(
      `could not start the router (${process.execPath} ${entry}); see ${files.logFile}`,
    );
  }
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code ?? -1));
  child.unref();
  await writeFileAtomic(files.pidFile, `${pid}\n`, 0o644);
  const deadline = Date.now() + (options.startTimeoutMs ?? DEFAULT_ROUTER_START_TIMEOUT_MS);
  while (Date.now() < deadline) {
    const ready = await readReadyFile(files.readyFile);
    if (ready?.pid === pid) {
      return new RouterClient({
        adminUrl: `http://${ready.host}:${ready.adminPort}`,
        token,
        pid,
        pidFile: files.pidFile,
      });
    }
    if (exited !== null) {
      await rm(files.pidFile, { force: true });
      throw new UnavailableError(
        `the router exited (code ${exited}) before serving:\n${await logTail(files.logFile)}`,
      );
    }
    await sleep(25);
  }
  // We started it and it is not serving: end it rather than leave a half-started router behind.
  await stopPid(pid);
  await rm(files.pidFile, { force: true });
  throw new UnavailableError(
    `the router (pid ${pid}) did not serve within ${options.startTimeoutMs ?? DEFAULT_ROUTER_START_TIMEOUT_MS} ms and was stopped; see ${files.logFile}:\n${await logTail(files.logFile)}`,
  );
}
