/**
 * Finds the host's OCI runtimes (crun, runc) and runs one container to completion with them:
 * the low-level piece under the `local` runtime driver.
 *
 * Host quirk handled here: on a hybrid cgroup host (v1 controllers plus a v2 hierarchy at
 * `/sys/fs/cgroup/unified`) whose v2 hierarchy has controllers enabled, crun refuses to create any
 * container ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"; crun
 * checks `/sys/fs/cgroup/unified/cgroup.controllers`). runc has no such check and runs as is. So
 * on such hosts, and only there, crun is started inside a private mount namespace
 * (`unshare --mount`) in which `/sys/fs/cgroup/unified` is unmounted: crun then sees a plain v1
 * host and manages the v1 controllers as runc does, while the host's own mounts stay untouched.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { execa, type Result } from 'execa';

import { KilnError, NotFoundError, UnavailableError } from '../errors/index.js';
import { type CgroupHost, inspectCgroups, removeCgroupDirs } from './cgroups.js';
import { DEFAULT_NOFILE_LIMIT, runtimeSpec, type RuntimeSpecOptions } from './spec.js';
import { CONTROL_TIMEOUT_MS, pickRuntime, type RuntimeInfo, type RuntimeName } from './detect.js';

export {
  CONTROL_TIMEOUT_MS,
  detectRuntimes,
  pickRuntime,
  RUNTIME_NAMES,
  type DetectOptions,
  type RuntimeInfo,
  type RuntimeName,
} from './detect.js';

/** Parent of the runtimes' state directories (`<dir>/crun`, `<dir>/runc`), kept apart from /run/runc. */
export const DEFAULT_STATE_DIR = '/run/kiln/runtime';

/** How long a one-off container may run before it is killed, in milliseconds (10 minutes). */
export const DEFAULT_RUN_TIMEOUT_MS = 10 * 60 * 1000;

/** How long `kill` is retried after a timeout before the runtime process itself is killed, in ms. */
export const KILL_GRACE_MS = 5_000;

/** Options of {@link runOnce}: the container's description plus how to run it. */
export interface RunOnceOptions extends Omit<RuntimeSpecOptions, 'cgroupsPath'> {
  /** @default the first installed of RUNTIME_NAMES */
  readonly runtime?: RuntimeName;
  /** Killed (with its runtime state removed) once this is exceeded. @default DEFAULT_RUN_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /** Text fed to the process's stdin. @default stdin is /dev/null */
  readonly stdin?: string;
  /** Parent of the runtime state directories. @default DEFAULT_STATE_DIR */
  readonly stateDir?: string;
  /** Where the temporary bundle directory is made. @default os.tmpdir() */
  readonly workDir?: string;
}

/** How a one-off container ended. */
export interface RunOnceResult {
  /** The process's exit code; 128 + signal when it was killed (137 after a timeout). */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** From starting the runtime to its exit, cleanup excluded. */
  readonly durationMs: number;
  /** True when the container was killed for exceeding `timeoutMs`. */
  readonly timedOut: boolean;
  /** The unique container id used, also the name of its cgroup. */
  readonly containerId: string;
  readonly runtime: RuntimeName;
}

/**
 * Throws an UnavailableError unless running as root: kiln's local runtime creates cgroups and
 * namespaces as root for now; rootless containers are future work.
 */
export function assertRootForLocalRuntime(uid: number = process.getuid?.() ?? 0): void {
  if (uid !== 0) {
    throw new UnavailableError(
      `kiln's local runtime needs root for now (running as uid ${uid}; rootless containers are future work)` +
        ' (fix: run kiln as root, for example with sudo)',
    );
  }
}

/**
 * Runs one container to completion and returns its exit code and output. The rootfs is used in
 * place; a temporary bundle holds only `config.json`. The container state, the bundle and the
 * container's cgroups are always removed afterwards, whether the run succeeded, failed or timed out,
 * so several runs may go on in parallel.
 *
 * @throws UnavailableError when not root or no runtime is installed.
 * @throws KilnError `runtime` when the runtime cannot start the container (the message has its stderr).
 * @example
 * const { exitCode, stdout } = await runOnce({ rootfs, args: ['/bin/sh', '-c', 'echo hello'], timeoutMs: 10_000 });
 */
export async function runOnce(options: RunOnceOptions): Promise<RunOnceResult> {
  const { runtime: preferred, timeoutMs, stdin, stateDir, workDir, ...spec } = options;
  assertRootForLocalRuntime();
  const runtime = await pickRuntime(preferred);
  const rootfs = resolve(spec.rootfs);
  const isDirectory = await stat(rootfs)
    .then((s) => s.isDirectory())
    .catch(() => false);
  if (!isDirectory) throw new NotFoundError(`rootfs ${rootfs} is not a directory`);
  const id = `kiln-${randomBytes(6).toString('hex')}`;
  // Raising a hard rlimit takes CAP_SYS_RESOURCE, which a root inside a sandbox may lack, so the
  // default never asks for more than this process already has.
  const nofileLimit = spec.nofileLimit ?? Math.min(DEFAULT_NOFILE_LIMIT, await ownHardNofileLimit());
  const config = runtimeSpec({ ...spec, rootfs, cgroupsPath: id, nofileLimit });
  const root = runtimeStateDir(runtime.name, stateDir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const parent = workDir ?? tmpdir();
  await mkdir(parent, { recursive: true });
  const host = await inspectCgroups();
  const bundle = await mkdtemp(join(parent, `${id}-`));

  let outcome: RunOnceResult | undefined;
  let failure: unknown;
  try {
    await writeFile(join(bundle, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    outcome = await execute(runtime, root, bundle, id, timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS, stdin);
  } catch (err) {
    failure = err;
  }
  const problems = await cleanUp(runtime, root, bundle, id, host);
  const leftovers = problems.length === 0 ? '' : `; cleaning up also failed: ${problems.join('; ')}`;
  if (failure !== undefined) {
    if (leftovers === '') throw failure;
    const message = failure instanceof Error ? failure.message : String(failure);
    throw new KilnError(failure instanceof KilnError ? failure.code : 'runtime', `${message}${leftovers}`, {
      cause: failure,
    });
  }
  if (leftovers !== '' || outcome === undefined) {
    throw new KilnError('runtime', `container ${id} ran under ${runtime.name}${leftovers}`);
  }
  return outcome;
}

/** Ids of the containers a runtime knows in kiln's state directory (stale ones included). */
export async function listContainers(options: {
  runtime: RuntimeName;
  stateDir?: string;
}): Promise<string[]> {
  const runtime = await pickRuntime(options.runtime);
  const result = await control(runtime, runtimeStateDir(runtime.name, options.stateDir), [
    'list',
    '--format',
    'json',
  ]);
  if (result.exitCode !== 0) {
    throw new KilnError(
      'runtime',
      `${runtime.name} list failed: ${result.stderr.trim() || result.shortMessage}`,
    );
  }
  const entries = JSON.parse(result.stdout.trim() || 'null') as { id: string }[] | null;
  return (entries ?? []).map((entry) => entry.id).sort();
}

/** The `--root` directory given to a runtime: one per runtime, since their state formats differ. */
export function runtimeStateDir(name: RuntimeName, stateDir: string = DEFAULT_STATE_DIR): string {
  return join(resolve(stateDir), name);
}

async function execute(
  runtime: RuntimeInfo,
  root: string,
  bundle: string,
  id: string,
  timeoutMs: number,
  stdin: string | undefined,
): Promise<RunOnceResult> {
  const logFile = join(bundle, 'runtime.log');
  const [file = runtime.path, ...prefix] = runtime.command;
  const args = [
    ...prefix,
    '--root',
    root,
    ...runtimeLogFlags(runtime.name, logFile),
    'run',
    '--bundle',
    bundle,
    id,
  ];
  const started = performance.now();
  const child = execa(file, args, {
    reject: false,
    stripFinalNewline: false,
    ...(stdin === undefined ? { stdin: 'ignore' as const } : { input: stdin }),
  });
  let timedOut = false;
  let stopping: Promise<void> | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    stopping = stopContainer(runtime, root, id, child);
  }, timeoutMs);
  const result = await child;
  clearTimeout(timer);
  await stopping;
  const durationMs = Math.round(performance.now() - started);

  const logErrors = await readLogErrors(logFile);
  // The runtime opens its log first thing, so a missing log means it never ran (the cgroup
  // workaround or the exec itself failed); an error-level entry means it gave up before the
  // process could finish, since the process's own output never goes to that log.
  if (!timedOut && (logErrors === undefined || (result.exitCode !== 0 && logErrors.length > 0))) {
    const detail = result.stderr.trim() || (logErrors ?? []).join('; ') || result.shortMessage;
    throw new KilnError('runtime', `${runtime.name} could not run container ${id}: ${detail}`);
  }
  return {
    exitCode: exitCodeOf(result),
    stdout: result.stdout,
    stderr: result.stderr,
    durationMs,
    timedOut,
    containerId: id,
    runtime: runtime.name,
  };
}

async function stopContainer(
  runtime: RuntimeInfo,
  root: string,
  id: string,
  child: PromiseLike<unknown> & { kill(signal: NodeJS.Signals): boolean },
): Promise<void> {
  const exited = Promise.resolve(child).then(() => true);
  const deadline = Date.now() + KILL_GRACE_MS;
  // `kill` fails while the runtime is still creating the container, so it is retried until the
  // runtime reports the exit; a runtime that hangs is killed itself and `delete --force` reaps the rest.
  while (Date.now() < deadline) {
    await control(runtime, root, ['kill', id, 'KILL']);
    if (await Promise.race([exited, sleep(200).then(() => false)])) return;
  }
  child.kill('SIGKILL');
  await exited;
}

async function cleanUp(
  runtime: RuntimeInfo,
  root: string,
  bundle: string,
  id: string,
  host: CgroupHost,
): Promise<string[]> {
  const problems: string[] = [];
  try {
    if ((await control(runtime, root, ['state', id])).exitCode === 0) {
      await control(runtime, root, ['delete', '--force', id]);
      const after = await control(runtime, root, ['state', id]);
      if (after.exitCode === 0)
        problems.push(`${runtime.name} still has container ${id} after delete --force`);
    }
  } catch (err) {
    problems.push(`deleting container ${id}: ${messageOf(err)}`);
  }
  try {
    await removeCgroupDirs(host, id);
  } catch (err) {
    problems.push(`removing cgroup ${id}: ${messageOf(err)}`);
  }
  try {
    await rm(bundle, { recursive: true, force: true });
  } catch (err) {
    problems.push(`removing bundle ${bundle}: ${messageOf(err)}`);
  }
  return problems;
}

/** The global flags that make a runtime log to `logFile` as JSON lines (crun and runc spell them differently). */
export function runtimeLogFlags(name: RuntimeName, logFile: string): string[] {
  return name === 'crun'
    ? [`--log=file:${logFile}`, '--log-format=json']
    : ['--log', logFile, '--log-format', 'json'];
}

/** Runs one runtime control command (`state`, `kill`, `delete`, `list`…) on state root `root`; never rejects. */
export function control(
  runtime: RuntimeInfo,
  root: string,
  args: readonly string[],
): Promise<Result<{ reject: false }>> {
  const [file = runtime.path, ...prefix] = runtime.command;
  return execa(file, [...prefix, '--root', root, ...args], { reject: false, timeout: CONTROL_TIMEOUT_MS });
}

/** The error-level messages of a runtime's JSON log; undefined when there is no log (it never ran). */
export async function readLogErrors(logFile: string): Promise<string[] | undefined> {
  const text = await readFile(logFile, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const errors: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === 'error' || entry.level === 'fatal') errors.push(entry.msg ?? line);
    } catch {
      errors.push(line);
    }
  }
  return errors;
}

/** This process's hard `RLIMIT_NOFILE`: a container may not be given more without CAP_SYS_RESOURCE. */
export async function ownHardNofileLimit(): Promise<number> {
  const limits = await readFile('/proc/self/limits', 'utf8').catch(() => '');
  const hard = /^Max open files\s+\S+\s+(\d+)/m.exec(limits)?.[1];
  return hard === undefined ? DEFAULT_NOFILE_LIMIT : Number(hard);
}

/** A finished command's exit code as a shell reports it: 128 + the signal when one killed it. */
export function exitCodeOf(result: Result): number {
  if (result.exitCode !== undefined) return result.exitCode;
  const signal = result.signal === undefined ? undefined : osConstants.signals[result.signal];
  return signal === undefined ? 1 : 128 + signal;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Detects runtime `name` and makes its state root under `rootDir` (0700). */
export async function openRuntime(
  name: RuntimeName,
  rootDir: string,
): Promise<{ readonly info: RuntimeInfo; readonly root: string }> {
  const info = await pickRuntime(name);
  const root = runtimeStateDir(info.name, rootDir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  return { info, root };
}
