/**
 * Files and processes the routers keep on disk: atomic writes, pid files, and ending a process by
 * the PID recorded for it (never by name).
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a stopped process gets between SIGTERM and SIGKILL: 5 s. */
export const DEFAULT_STOP_TIMEOUT_MS = 5_000;

/** Writes `data` so readers see the old file or the whole new one: temp file, fsync, rename. */
export async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Reads a file, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The PID in a pid file, or undefined when the file is missing or holds no PID. */
export async function readPidFile(path: string): Promise<number | undefined> {
  const text = await readIfExists(path);
  const pid = text === undefined ? NaN : Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * True when `pid` runs and, if `commandIncludes` is given, its command line contains it, so a PID
 * reused by an unrelated process after a reboot is not taken for ours.
 */
export async function isProcessAlive(pid: number, commandIncludes?: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: gone. EPERM: it runs as another user, so it is not one we started.
    return false;
  }
  if (commandIncludes === undefined) return true;
  // ESRCH while reading: it exited meanwhile.
  const cmdline = await readIfExists(`/proc/${pid}/cmdline`).catch(() => undefined);
  if (cmdline === undefined) return false;
  if (cmdline === '') return false; // a zombie: exited, not yet reaped
  return cmdline.includes(commandIncludes);
}

/**
 * Ends the process `pid` (one we started or recorded): SIGTERM, then SIGKILL once `timeoutMs`
 * passed. Resolves once it no longer runs; a PID that is already gone is fine.
 */
export async function stopPid(pid: number, timeoutMs: number = DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
  if (!signal(pid, 'SIGTERM')) return;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isProcessAlive(pid, ''))) return;
    await sleep(20);
  }
  signal(pid, 'SIGKILL');
  while (await isProcessAlive(pid, '')) await sleep(20);
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}
