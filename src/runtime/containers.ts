/**
 * The container operations under the local driver, each one runtime command on one state root:
 * run a bundle detached, read the containers' states, exec into one, and remove one with its
 * cgroups and bundle. The crun workaround of this kind of host (`unshare --mount`, see detect.ts)
 * is part of `RuntimeInfo.command`, so a container started through it is managed through it too;
 * the container itself never depends on the short-lived `unshare` process.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

import { execa } from 'execa';

import { KilnError } from '../errors/index.js';
import { type CgroupHost, removeCgroupDirs } from './cgroups.js';
import { CONTROL_TIMEOUT_MS, type RuntimeInfo } from './detect.js';
import { assertCommand, type ExecResult } from './driver.js';
import { cgroupsPathOf, readLogTail, type InstancePaths } from './instance-store.js';
import { control, exitCodeOf, readLogErrors, runtimeLogFlags } from './oci-runtime.js';

/** An OCI runtime and the `--root` directory it keeps kiln's instance containers in. */
export interface ContainerRuntime {
  readonly info: RuntimeInfo;
  readonly root: string;
}

/** What a runtime reports about one container: its init's pid and `created|running|stopped|paused`. */
export interface ContainerState {
  readonly pid: number;
  readonly status: string;
}

/**
 * Runs the bundle in `paths.dir` as the detached container `id`, its stdout and stderr appended to
 * `logFile`, and returns its init's pid once the runtime has started it.
 * @throws KilnError `runtime` with the runtime's own error when it could not start the container.
 */
export async function runDetached(
  runtime: ContainerRuntime,
  id: string,
  paths: InstancePaths,
  logFile: string,
): Promise<number> {
  const { info, root } = runtime;
  const [file = info.path, ...prefix] = info.command;
  const args = [
    ...prefix,
    '--root',
    root,
    ...runtimeLogFlags(info.name, paths.runtimeLog),
    'run',
    '--detach',
    '--bundle',
    paths.dir,
    '--pid-file',
    paths.pidFile,
    id,
  ];
  // A file, not a pipe: the container keeps writing to it after the runtime and kiln are gone.
  const output = await open(logFile, 'a', 0o640);
  let code: number | null;
  let signal: NodeJS.Signals | null;
  try {
    // Its own session, so a Ctrl-C aimed at kiln cannot cut a start short halfway.
    const child = spawn(file, args, {
      stdio: ['ignore', output.fd, output.fd],
      detached: true,
      timeout: CONTROL_TIMEOUT_MS,
    });
    [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  } finally {
    await output.close();
  }
  if (code !== 0) {
    const errors = await readLogErrors(paths.runtimeLog);
    const detail =
      errors?.join('; ') || (await readLogTail(logFile, 5)).trim() || `exit ${code ?? signal ?? '?'}`;
    throw new KilnError('runtime', `${info.name} could not start instance ${id}: ${detail}`);
  }
  const pid = Number((await readFile(paths.pidFile, 'utf8')).trim());
  if (!(Number.isInteger(pid) && pid > 0)) {
    throw new KilnError('runtime', `${info.name} wrote no pid for instance ${id}`);
  }
  return pid;
}

/** How often `list` is tried before its failure is reported, and the first pause between tries. */
const LIST_ATTEMPTS = 5;
const LIST_RETRY_MS = 20;

/**
 * Every container on the runtime's root, by id. `list` fails when a container is deleted while it
 * reads the root (its state file vanishes under it), so a failure is tried again a few times.
 */
export async function containerStates(runtime: ContainerRuntime): Promise<Map<string, ContainerState>> {
  let result = await control(runtime.info, runtime.root, ['list', '--format', 'json']);
  for (let attempt = 1; result.exitCode !== 0 && attempt < LIST_ATTEMPTS; attempt++) {
    await sleep(LIST_RETRY_MS * attempt);
    result = await control(runtime.info, runtime.root, ['list', '--format', 'json']);
  }
  if (result.exitCode !== 0) {
    throw new KilnError(
      'runtime',
      `${runtime.info.name} list failed: ${result.stderr.trim() || result.shortMessage}`,
    );
  }
  const entries = JSON.parse(result.stdout.trim() || 'null') as (ContainerState & { id: string })[] | null;
  return new Map((entries ?? []).map((e) => [e.id, { pid: e.pid, status: e.status }]));
}

/** One container's state, or undefined when the runtime does not know it. */
export async function containerState(
  runtime: ContainerRuntime,
  id: string,
): Promise<ContainerState | undefined> {
  const result = await control(runtime.info, runtime.root, ['state', id]);
  if (result.exitCode !== 0) return undefined;
  const state = JSON.parse(result.stdout) as ContainerState;
  return { pid: state.pid, status: state.status };
}

/**
 * Runs `args` inside the running container `id` and returns its exit code and output.
 * @throws KilnError `runtime` when it outlives `timeoutMs` (the command may linger until the instance stops).
 */
export async function execIn(
  runtime: ContainerRuntime,
  id: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<ExecResult> {
  const [file = runtime.info.path, ...prefix] = runtime.info.command;
  const result = await execa(file, [...prefix, '--root', runtime.root, 'exec', id, ...args], {
    reject: false,
    stdin: 'ignore',
    stripFinalNewline: false,
    timeout: timeoutMs,
  });
  if (result.timedOut) {
    throw new KilnError('runtime', `exec in instance ${id} timed out after ${timeoutMs} ms`);
  }
  return { exitCode: exitCodeOf(result), stdout: result.stdout, stderr: result.stderr };
}

/**
 * The host command running `args` in container `id` with the caller's stdin, stdout and stderr
 * (`--tty` for an interactive shell), for a client to run itself.
 */
export function execArgv(
  runtime: ContainerRuntime,
  id: string,
  args: readonly string[],
  tty: boolean,
): string[] {
  assertCommand(args);
  const [file = runtime.info.path, ...prefix] = runtime.info.command;
  return [file, ...prefix, '--root', runtime.root, 'exec', ...(tty ? ['--tty'] : []), id, ...args];
}

/**
 * Deletes container `id` whatever its state, then its cgroups and its bundle directory `dir`.
 * Removing what is already gone is not an error.
 * @throws KilnError `runtime` naming everything that could not be removed.
 */
export async function removeContainer(
  runtime: ContainerRuntime,
  id: string,
  host: CgroupHost,
  dir: string,
): Promise<void> {
  const problems: string[] = [];
  const deleted = await control(runtime.info, runtime.root, ['delete', '--force', id]);
  if (deleted.exitCode !== 0 && (await containerState(runtime, id)) !== undefined) {
    problems.push(
      `${runtime.info.name} delete --force ${id} failed: ${deleted.stderr.trim() || deleted.shortMessage}`,
    );
  }
  const cgroup = cgroupsPathOf(id);
  await removeCgroupDirs(host, cgroup).catch((err: unknown) =>
    problems.push(`removing cgroup ${cgroup}: ${messageOf(err)}`),
  );
  await rm(dir, { recursive: true, force: true, maxRetries: 5 }).catch((err: unknown) =>
    problems.push(`removing ${dir}: ${messageOf(err)}`),
  );
  if (problems.length > 0) throw new KilnError('runtime', `removing instance ${id}: ${problems.join('; ')}`);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
