/**
 * What the router process does when started as `node dist/traffic/router-main.js …`: reads its
 * options from argv and the environment, serves until SIGTERM/SIGINT, survives SIGHUP and the
 * death of whoever started it, and logs to a file.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ValidationError } from '../errors/index.js';
import { writeFileAtomic } from './files.js';
import { DEFAULT_ROUTER_HOST } from './local-router.js';
import type { RouterReady } from './router-client.js';
import { startRouterServer, type RouterServerOptions } from './router-server.js';

/** The environment variable the router reads its admin token from when no token file is given. */
export const ROUTER_TOKEN_ENV = 'KILN_ROUTER_TOKEN';

/** The router process's options, as parsed from its command line. */
export interface RouterProcessOptions extends Omit<RouterServerOptions, 'log'> {
  /** File to append log lines to; stderr when absent. */
  readonly logFile?: string;
  /** File the router writes {@link RouterReady} to (atomically) once it serves. */
  readonly readyFile?: string;
}

const USAGE =
  'usage: router-main --state-file FILE [--admin-port N] [--token-file FILE | env KILN_ROUTER_TOKEN] [--log-file FILE] [--ready-file FILE] [--host ADDR]';

/**
 * Parses `router-main`'s arguments: `--state-file` (required), `--admin-port` (default 0: any),
 * `--token-file` or `$KILN_ROUTER_TOKEN`, `--log-file`, `--ready-file`, `--host`.
 */
export async function parseRouterArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<RouterProcessOptions> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'state-file': { type: 'string' },
      'admin-port': { type: 'string', default: '0' },
      'token-file': { type: 'string' },
      'log-file': { type: 'string' },
      'ready-file': { type: 'string' },
      host: { type: 'string' },
    },
    strict: true,
  });
  const issues = [];
  const adminPort = Number(values['admin-port']);
  if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535) {
    issues.push({
      path: '--admin-port',
      message: `invalid port ${values['admin-port']}`,
      fix: 'use 0 to 65535',
    });
  }
  if (values['state-file'] === undefined) {
    issues.push({ path: '--state-file', message: 'missing', fix: USAGE });
  }
  const token =
    values['token-file'] !== undefined
      ? (await readFile(values['token-file'], 'utf8')).trim()
      : env[ROUTER_TOKEN_ENV];
  if (token === undefined || token === '') {
    issues.push({
      path: '--token-file',
      message: 'no admin token',
      fix: `give --token-file FILE or set ${ROUTER_TOKEN_ENV}`,
    });
  }
  if (issues.length > 0) throw new ValidationError('router-main arguments', issues);
  return {
    adminPort,
    token: token!,
    stateFile: values['state-file']!,
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values['log-file'] !== undefined ? { logFile: values['log-file'] } : {}),
    ...(values['ready-file'] !== undefined ? { readyFile: values['ready-file'] } : {}),
  };
}

/** Runs the router process until SIGTERM or SIGINT; exits 1 (logged) when it cannot start. */
export async function runRouterProcess(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  let options: RouterProcessOptions;
  try {
    options = await parseRouterArgs(argv, env);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const out =
    options.logFile === undefined ? process.stderr : createWriteStream(options.logFile, { flags: 'a' });
  const log = (line: string): void => {
    out.write(`${new Date().toISOString()} ${line}\n`);
  };
  const exit = (code: number): void => {
    if (out === process.stderr) process.exit(code);
    else out.end(() => process.exit(code));
  };
  const fatal = (what: string, err: unknown): void => {
    log(`${what}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    exit(1);
  };
  process.on('uncaughtException', (err) => fatal('uncaught exception', err));
  process.on('unhandledRejection', (err) => fatal('unhandled rejection', err));
  // The router outlives the terminal or controller that started it.
  process.on('SIGHUP', () => log('SIGHUP ignored: the router keeps serving'));
  let server: Awaited<ReturnType<typeof startRouterServer>>;
  try {
    server = await startRouterServer({ ...options, log });
    if (options.readyFile !== undefined) {
      const ready: RouterReady = {
        pid: process.pid,
        adminPort: server.adminPort,
        host: options.host ?? DEFAULT_ROUTER_HOST,
      };
      await writeFileAtomic(options.readyFile, `${JSON.stringify(ready)}\n`);
    }
  } catch (err) {
    fatal('router failed to start', err);
    return;
  }
  const stop = (signal: string): void => {
    log(`${signal}: stopping`);
    server.close().then(
      () => exit(0),
      (err: unknown) => fatal('stopping', err),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
