/**
 * Small filesystem helpers for the OCI context: atomic writes (temp file, fsync, rename) and an
 * inter-process lock file with stale-lock detection.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { link, mkdir, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError, IntegrityError } from '../errors/index.js';

/** A short random suffix for temp names, so concurrent writers never share one. */
export function randomSuffix(): string {
  return randomBytes(6).toString('hex');
}

/**
 * Writes `data` to `path` so that readers see either the old file or the whole new one: writes a
 * temp file in the same directory, fsyncs it, renames it over `path`, then fsyncs the directory.
 */
export async function writeFileAtomic(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const tmp = `${path}.tmp-${randomSuffix()}`;
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
  await syncDir(dirname(path));
}

/** fsyncs a directory so a rename inside it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** How long to wait for another process's lock before giving up. */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/**
 * Runs `fn` while holding the lock file `lockPath`, created with `O_EXCL` and holding this process's
 * PID. A lock whose PID no longer runs (or that is empty and old) is stale and is broken.
 */
export function withLockFile<T>(lockPath: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  // Callers in this process queue per lock file first, so the file only arbitrates between
  // processes, and a lock file holding our own PID that we are not holding is a leftover.
  const key = resolve(lockPath);
  const run = async (): Promise<T> => {
    await acquire(key, timeoutMs);
    try {
      return await fn();
    } finally {
      await unlink(key).catch(() => undefined);
    }
  };
  const result = (inProcess.get(key) ?? Promise.resolve()).then(run, run);
  const tail = result.then(
    () => undefined,
    () => undefined,
  );
  inProcess.set(key, tail);
  void tail.then(() => {
    if (inProcess.get(key) === tail) inProcess.delete(key);
  });
  return result;
}

/** The last queued holder of each lock file in this process. */
const inProcess = new Map<string, Promise<void>>();

async function acquire(lockPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  await mkdir(dirname(lockPath), { recursive: true });
  for (;;) {
    try {
      const fh = await open(lockPath, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o644);
      try {
        await fh.writeFile(`${process.pid}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readHolder(lockPath);
    if (holder.stale) {
      await breakStaleLock(lockPath, holder.content);
      continue;
    }
    if (Date.now() > deadline) {
      throw new ConflictError(
        `lock ${lockPath} is held by process ${holder.content.trim() || '(unknown)'} for more than ${timeoutMs} ms; ` +
          'wait for it to finish, or remove the file if that process is gone',
      );
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 200);
  }
}

/** A lock file with no PID yet is being written; only after this long is it taken as abandoned. */
const EMPTY_LOCK_GRACE_MS = 5_000;

async function readHolder(lockPath: string): Promise<{ stale: boolean; content: string }> {
  let content: string;
  try {
    content = await readFile(lockPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { stale: false, content: '' };
    throw err;
  }
  const pid = Number.parseInt(content.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) {
    const st = await stat(lockPath).catch(() => undefined);
    return { stale: st !== undefined && Date.now() - st.mtimeMs > EMPTY_LOCK_GRACE_MS, content };
  }
  // Our own PID in a lock we are waiting for can only be a leftover: callers in this process queue.
  if (pid === process.pid) return { stale: true, content };
  return { stale: !processAlive(pid), content };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function breakStaleLock(lockPath: string, staleContent: string): Promise<void> {
  // Move the lock aside atomically, then check it is still the stale one we judged: if another
  // process broke it and took a fresh lock in between, put that one back (link fails rather than
  // overwrite if yet another process holds the lock by now).
  const aside = `${lockPath}.stale-${randomSuffix()}`;
  try {
    await rename(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await readFile(aside, 'utf8').catch(() => '');
  if (moved !== staleContent) {
    await link(aside, lockPath).catch(() => undefined);
  }
  await rm(aside, { force: true });
}

/** `length` bytes of the file at `path` from `start`; an IntegrityError when the file is shorter. */
export async function readRange(path: string, start: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, start);
    if (bytesRead !== length) throw new IntegrityError(`${path}: file changed while uploading (short read)`);
    return buf;
  } finally {
    await fh.close();
  }
}
