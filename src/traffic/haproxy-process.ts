/**
 * The HAProxy process the driver runs: its files, checking it is installed, starting it in
 * master-worker mode, reloading it through the master CLI, and setting one server slot.
 */
import { join } from 'node:path';
import { ConflictError, KilnError, UnavailableError, ValidationError, wrap } from '../errors/index.js';
import { readIfExists, stopPid } from './files.js';
import { haproxyCommand, parseShowProc, run, waitFor } from './haproxy-runtime.js';
import type { HaproxyState } from './haproxy-state.js';
import type { Backend } from './router.js';

/** The files of a HAProxy kept in one directory. */
export interface HaproxyFiles {
  readonly config: string;
  readonly map: string;
  readonly state: string;
  readonly pid: string;
  readonly masterSocket: string;
  readonly statsSocket: string;
  readonly idleSocket: string;
}

/** Where the HAProxy driver keeps its files in `dir`. */
export function haproxyFiles(dir: string): HaproxyFiles {
  return {
    config: join(dir, 'haproxy.cfg'),
    map: join(dir, 'active.map'),
    state: join(dir, 'state.json'),
    pid: join(dir, 'haproxy.pid'),
    masterSocket: join(dir, 'master.sock'),
    statsSocket: join(dir, 'admin.sock'),
    idleSocket: join(dir, 'idle.sock'),
  };
}

/** Throws `UnavailableError` naming the package to install when `haproxy` cannot run. */
export async function checkHaproxyInstalled(haproxy: string): Promise<void> {
  const result = await run(haproxy, ['-v']).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOENT'
      ? new UnavailableError(`HAProxy (${haproxy}) is not installed; install it: apt-get install haproxy`, {
          cause: err,
        })
      : wrap(`running ${haproxy} -v`, err);
  });
  if (result.code !== 0) throw new UnavailableError(`${haproxy} -v failed: ${result.stderr.trim()}`);
}

/** The driver's saved state, or an empty one. Throws `ValidationError` naming a damaged file. */
export async function loadHaproxyState(file: string): Promise<HaproxyState> {
  const text = await readIfExists(file);
  if (text === undefined) return { version: 1, services: [], accumulated: {} };
  try {
    const state = JSON.parse(text) as HaproxyState;
    if (state.version === 1 && Array.isArray(state.services)) return state;
  } catch {
    // Reported below with the fix.
  }
  throw new ValidationError(file, [
    { path: '', message: 'not a kiln HAProxy state (version 1)', fix: 'delete it and set the routes again' },
  ]);
}

/**
 * Starts HAProxy detached (`-W -D`: master-worker, daemon) from `files.config` and waits until
 * both sockets answer. Returns the master's PID. Ends what it started if it never answers.
 */
export async function launchHaproxy(
  files: HaproxyFiles,
  haproxy: string,
  timeoutMs: number,
): Promise<number> {
  const args = ['-W', '-D', '-S', files.masterSocket, '-f', files.config, '-p', files.pid];
  const started = await run(haproxy, args);
  if (started.code !== 0) {
    const stderr = started.stderr.trim();
    if (/cannot bind|Address already in use/i.test(stderr)) {
      throw new ConflictError(`HAProxy could not bind a listen port (another process has it):\n${stderr}`);
    }
    throw new UnavailableError(`HAProxy did not start (check: ${haproxy} -c -f ${files.config}):\n${stderr}`);
  }
  let master = 0;
  const up = await waitFor(async () => {
    master = parseShowProc(await haproxyCommand(files.masterSocket, 'show proc')).master ?? 0;
    return master > 0 && (await haproxyCommand(files.statsSocket, 'show info')).includes('Pid:');
  }, timeoutMs);
  if (!up) {
    const pid = master > 0 ? master : Number((await readIfExists(files.pid))?.trim());
    if (Number.isInteger(pid) && pid > 0) await stopPid(pid);
    throw new UnavailableError(
      `HAProxy started but its sockets do not answer; check: ${haproxy} -c -f ${files.config}`,
    );
  }
  return master;
}

/**
 * Reloads HAProxy with the config already written to `files.config`: checks it, asks the master
 * to reload, and waits until a new worker serves. Throws when the config is invalid or the new
 * worker fails (HAProxy then keeps serving with the old one).
 */
export async function reloadHaproxy(files: HaproxyFiles, haproxy: string, timeoutMs: number): Promise<void> {
  const check = await run(haproxy, ['-c', '-f', files.config]);
  if (check.code !== 0) {
    throw new KilnError(
      'internal',
      `kiln wrote an invalid haproxy.cfg (a bug; please report it):\n${check.stderr.trim()}`,
    );
  }
  const before = parseShowProc(await haproxyCommand(files.masterSocket, 'show proc'));
  // The master re-executes itself on reload and may drop this connection before answering.
  await haproxyCommand(files.masterSocket, 'reload').catch(() => undefined);
  let after = before;
  const done = await waitFor(async () => {
    after = parseShowProc(await haproxyCommand(files.masterSocket, 'show proc'));
    return (
      after.failedReloads > before.failedReloads ||
      (after.reloads > before.reloads && after.worker !== before.worker)
    );
  }, timeoutMs);
  if (!done || after.failedReloads > before.failedReloads) {
    throw new UnavailableError(
      `HAProxy did not reload (${done ? 'the new worker failed to start' : 'timed out'}); it keeps serving the previous routes. A listen port may be taken; check: ${haproxy} -c -f ${files.config}`,
    );
  }
  const worker = `Pid: ${after.worker}`;
  await waitFor(
    async () => (await haproxyCommand(files.statsSocket, 'show info')).includes(worker),
    timeoutMs,
  );
}

/** Points a server slot at `backend` with its weight and makes it ready, or puts it in maintenance. */
export async function applySlot(statsSocket: string, server: string, backend: Backend | null): Promise<void> {
  if (backend === null) {
    await haproxyCommand(statsSocket, `set server ${server} state maint`);
    return;
  }
  await haproxyCommand(statsSocket, `set server ${server} addr ${backend.host} port ${backend.port}`);
  await haproxyCommand(statsSocket, `set server ${server} weight ${backend.weight}`);
  await haproxyCommand(statsSocket, `set server ${server} state ready`);
}
