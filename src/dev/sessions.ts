/**
 * Where dev sessions live: `<home>/dev/<service>-<id>/`, apart from the control plane's
 * `<home>/instances` (whose controller stops any instance no record claims) and with their own
 * runtime root ({@link DEFAULT_DEV_RUNTIME_ROOT}), so no control plane ever sees a dev instance.
 * Each session directory holds `session.json` (the kiln process that owns it), the instances'
 * bundles (`instances/`), their output (`logs/`) and the skeleton root (`root/`). A session whose
 * owner is gone (killed with SIGKILL, say) is swept by the next `kiln dev`: its instances stopped
 * by id, its directory removed.
 */
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '../oci/index.js';
import { LocalRuntimeDriver, type RuntimeName } from '../runtime/index.js';

/** The runtimes' `--root` parent for dev instances, apart from the fleet's `/run/kiln/instances`. */
export const DEFAULT_DEV_RUNTIME_ROOT = '/run/kiln/dev';

/** `session.json`: which process owns a dev session. */
export interface SessionRecord {
  readonly service: string;
  readonly pid: number;
  /** The owner's start time in clock ticks since boot (`/proc/<pid>/stat`), so a reused pid is not taken for it. */
  readonly pidStart: string;
  readonly port: number;
  /** ISO 8601. */
  readonly startedAt: string;
}

/** The paths of one session. */
export interface SessionPaths {
  readonly dir: string;
  readonly id: string;
  readonly record: string;
  readonly instances: string;
  readonly logs: string;
  readonly root: string;
}

/** The dev sessions' directory of a kiln home. */
export function devDir(home: string): string {
  return path.join(home, 'dev');
}

/**
 * Makes a session directory with its `session.json`, under a temporary name renamed into place,
 * so a sweep never finds a session directory without its owner.
 */
export async function createSession(home: string, service: string, port: number): Promise<SessionPaths> {
  const id = randomBytes(3).toString('hex');
  const dir = path.join(devDir(home), `${service}-${id}`);
  const tmp = `${dir}.tmp-${process.pid}`;
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  const record: SessionRecord = {
    service,
    pid: process.pid,
    pidStart: (await processStart(process.pid)) ?? '',
    port,
    startedAt: new Date().toISOString(),
  };
  await writeFileAtomic(path.join(tmp, 'session.json'), `${JSON.stringify(record, null, 2)}\n`);
  await rename(tmp, dir);
  return sessionPaths(dir, id);
}

/** The paths inside a session directory. */
export function sessionPaths(dir: string, id: string): SessionPaths {
  return {
    dir,
    id,
    record: path.join(dir, 'session.json'),
    instances: path.join(dir, 'instances'),
    logs: path.join(dir, 'logs'),
    root: path.join(dir, 'root'),
  };
}

/** Stops every instance of a session (by id, through a driver over its state) and removes it. */
export async function removeSession(
  paths: SessionPaths,
  options: { readonly runtime?: RuntimeName; readonly runtimeRoot?: string; readonly graceMs?: number },
): Promise<void> {
  const driver = new LocalRuntimeDriver({
    stateDir: paths.instances,
    runtimeRoot: options.runtimeRoot ?? DEFAULT_DEV_RUNTIME_ROOT,
    ...(options.runtime ? { runtime: options.runtime } : {}),
    rootfs: () => Promise.reject(new Error('a session being removed starts nothing')),
  });
  try {
    for (const s of await driver.list()) await driver.stop(s.id, { graceMs: options.graceMs ?? 0 });
  } finally {
    await driver.close();
  }
  await rm(paths.dir, { recursive: true, force: true });
}

/**
 * Removes the sessions under `<home>/dev` whose owner no longer runs, and the leftovers of sessions
 * that never finished being made; returns the ones removed.
 */
export async function sweepStaleSessions(
  home: string,
  options: { readonly runtime?: RuntimeName; readonly runtimeRoot?: string } = {},
): Promise<SessionRecord[]> {
  const root = devDir(home);
  const names = await readdir(root).catch(() => [] as string[]);
  const swept: SessionRecord[] = [];
  for (const name of names.sort()) {
    const dir = path.join(root, name);
    const tmp = /\.tmp-(\d+)$/.exec(name);
    if (tmp) {
      // A session still being made by a live process is left to it.
      if ((await processStart(Number(tmp[1]))) === undefined) await rm(dir, { recursive: true, force: true });
      continue;
    }
    const record = await readSession(path.join(dir, 'session.json'));
    if (record && (await ownerRuns(record))) continue;
    await removeSession(sessionPaths(dir, name), options);
    if (record) swept.push(record);
  }
  return swept;
}

async function readSession(file: string): Promise<SessionRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as SessionRecord;
  } catch {
    return undefined;
  }
}

async function ownerRuns(record: SessionRecord): Promise<boolean> {
  const start = await processStart(record.pid);
  return start !== undefined && start === record.pidStart;
}

/** A live process's start time (`/proc/<pid>/stat` field 22), or undefined when it is gone or a zombie. */
export async function processStart(pid: number): Promise<string | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses; the fields after it do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}
