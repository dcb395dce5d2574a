/**
 * What the local driver keeps on disk per instance, in `<stateDir>/<id>/`, so that a new driver
 * process can adopt the instances of an old one: the OCI bundle (`config.json`), the record of what
 * was started (`instance.json`), the init's pid file, the runtime's own log, the observed exit
 * (`exit.json`) and, unless a log directory is configured, the process's output (`output.log`).
 * Every JSON file is written to a temporary name and renamed into place.
 */
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { KilnError } from '../errors/index.js';
import { writeFileAtomic } from '../oci/index.js';
import {
  DEFAULT_LOG_READ_BYTES,
  processOf,
  tailOf,
  type InstanceDescription,
  type InstanceSpec,
} from './driver.js';
import type { RuntimeName } from './detect.js';
import { DEFAULT_HOSTNAME, runtimeSpec } from './spec.js';

/** The version written into `instance.json`; a newer one is refused rather than misread. */
export const INSTANCE_RECORD_VERSION = 1;

/** `instance.json`: everything needed to report on and remove an instance after a restart. */
export interface InstanceRecord {
  readonly version: typeof INSTANCE_RECORD_VERSION;
  readonly spec: InstanceSpec;
  /** The runtime that runs it: stop and exec must use the same one. */
  readonly runtime: RuntimeName;
  /** ISO 8601. */
  readonly startedAt: string;
  /** Absolute path of the file the process's stdout and stderr go to. */
  readonly logFile: string;
}

/** The files of one instance. */
export interface InstancePaths {
  readonly dir: string;
  readonly config: string;
  readonly record: string;
  readonly pidFile: string;
  readonly runtimeLog: string;
  readonly exit: string;
}

/** Where an instance's files are, under the driver's state directory. */
export function instancePaths(stateDir: string, id: string): InstancePaths {
  const dir = join(stateDir, id);
  return {
    dir,
    config: join(dir, 'config.json'),
    record: join(dir, 'instance.json'),
    pidFile: join(dir, 'init.pid'),
    runtimeLog: join(dir, 'runtime.log'),
    exit: join(dir, 'exit.json'),
  };
}

/**
 * The cgroup of an instance, absolute so that it is the same path whichever cgroup the kiln
 * process runs in (runc places relative paths below its caller's cgroup, which a restarted control
 * plane may not share).
 */
export function cgroupsPathOf(id: string): string {
  return `/kiln-instance-${id}`;
}

const HOSTNAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9.-]{0,62}$/;

/**
 * The bundle's `config.json` for an instance: the shared rootfs read-only in place, the host's
 * network namespace (the instance listens on its own 127.0.0.1 port), its own pid, ipc, uts and
 * mount namespaces, the instance id as hostname when it is a valid one, and its own cgroup.
 */
export function bundleConfig(spec: InstanceSpec, rootfs: string, nofileLimit: number, init?: string): object {
  const proc = processOf(spec);
  return runtimeSpec({
    rootfs,
    ...proc,
    // With an init (tini), it is the container's PID 1: it forwards SIGTERM to the process, which
    // then gets its default action (a process that is PID 1 itself ignores SIGTERM unless it
    // handles it), and it reaps orphans. It is bound in on the /dev tmpfs, not the shared rootfs.
    ...(init === undefined
      ? {}
      : {
          args: [INIT_PATH, '--', ...proc.args],
          mounts: [...(proc.mounts ?? []), { source: init, destination: INIT_PATH, readonly: true }],
        }),
    hostNetwork: true,
    hostname: HOSTNAME_PATTERN.test(spec.id) ? spec.id : DEFAULT_HOSTNAME,
    cgroupsPath: cgroupsPathOf(spec.id),
    nofileLimit,
  });
}

/** Where an instance's init is bound in, on the container's own /dev tmpfs. */
export const INIT_PATH = '/dev/init';

/** Reads `instance.json` of `id`; undefined when the instance has no (complete) record. */
export async function readRecord(stateDir: string, id: string): Promise<InstanceRecord | undefined> {
  const file = instancePaths(stateDir, id).record;
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw err;
  });
  if (text === undefined) return undefined;
  let record: InstanceRecord;
  try {
    record = JSON.parse(text) as InstanceRecord;
  } catch (err) {
    throw new KilnError('runtime', `reading ${file}: not JSON`, { cause: err });
  }
  if (record.version !== INSTANCE_RECORD_VERSION || record.spec?.id !== id) {
    throw new KilnError(
      'runtime',
      `reading ${file}: version ${String(record.version)} for id ${String(record.spec?.id)}, expected version ${INSTANCE_RECORD_VERSION} for ${id}`,
    );
  }
  return record;
}

/** Every instance record under `stateDir`, sorted by id; directories without one are skipped. */
export async function readRecords(stateDir: string): Promise<InstanceRecord[]> {
  const entries = await readdir(stateDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const ids = entries.filter((e) => e.isDirectory()).map((e) => e.name);
  const records = await Promise.all(ids.map((id) => readRecord(stateDir, id)));
  return records
    .filter((r): r is InstanceRecord => r !== undefined)
    .sort((a, b) => (a.spec.id < b.spec.id ? -1 : a.spec.id > b.spec.id ? 1 : 0));
}

/** Records the exit code the driver observed, so a later driver process can still report it. */
export async function writeExit(paths: InstancePaths, exitCode: number | undefined): Promise<void> {
  await writeFileAtomic(paths.exit, `${JSON.stringify({ exitCode: exitCode ?? null })}\n`);
}

/** The exit code recorded by {@link writeExit}, if any. */
export async function readExit(paths: InstancePaths): Promise<number | undefined> {
  const text = await readFile(paths.exit, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const code = (JSON.parse(text) as { exitCode?: unknown }).exitCode;
    return typeof code === 'number' ? code : undefined;
  } catch {
    return undefined;
  }
}

/** The end of a log file (at most `maxBytes`, starting at a line), then its last `tailLines` lines. */
export async function readLogTail(
  file: string,
  tailLines: number | undefined,
  maxBytes: number = DEFAULT_LOG_READ_BYTES,
): Promise<string> {
  const handle = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (handle === undefined) return tailOf('', tailLines);
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - maxBytes);
    const buffer = Buffer.alloc(size - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    let text = buffer.subarray(0, bytesRead).toString('utf8');
    // A read that starts mid-file drops the partial first line rather than show half of it.
    if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    return tailOf(text, tailLines);
  } finally {
    await handle.close();
  }
}

/**
 * What an instance's bundle says it runs (its root, its process without the init) and, given its
 * init's pid, the environment the kernel reports for it.
 */
export async function describeBundle(
  paths: InstancePaths,
  pid: number | undefined,
): Promise<InstanceDescription | undefined> {
  const text = await readFile(paths.config, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const bundle = JSON.parse(text) as {
    root?: { path?: string };
    process?: { args?: string[]; env?: string[] };
  };
  const args = bundle.process?.args ?? [];
  const live = pid === undefined ? undefined : await readFile(`/proc/${pid}/environ`).catch(() => undefined);
  return {
    rootfs: bundle.root?.path ?? '',
    args: args[0] === INIT_PATH && args[1] === '--' ? args.slice(2) : args,
    env: envMap(bundle.process?.env ?? []),
    ...(live ? { liveEnv: envMap(live.toString('utf8').split('\0').filter(Boolean)) } : {}),
  };
}

function envMap(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}
