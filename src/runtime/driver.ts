/**
 * The `RuntimeDriver` interface the fleet controller drives instances through, the types it speaks
 * and the checks every driver applies to an {@link InstanceSpec}. kiln releases only by
 * replacement: a driver starts new instances and stops old ones, it never changes or restarts one
 * in place. Drivers: {@link FakeRuntimeDriver} (in memory, for tests) and
 * {@link LocalRuntimeDriver} (crun/runc on this host); `conformance.ts` is the suite both pass.
 */
import { ConflictError, ValidationError, type ValidationIssue } from '../errors/index.js';
import { isDigest, type Digest } from '../oci/index.js';
import { runtimeSpec, type BindMount, type ProcessUser } from './spec.js';
import type { TreeDrift } from './tree.js';

/** How long `stop` waits after SIGTERM before it sends SIGKILL, in milliseconds (as Docker). */
export const DEFAULT_STOP_GRACE_MS = 10_000;

/** How long `exec` may run before it is abandoned, in milliseconds. */
export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;

/** The most of an instance's log `logs` reads, from its end, in bytes (1 MiB). */
export const DEFAULT_LOG_READ_BYTES = 1024 * 1024;

/** Instance ids, service and release names: container-id and file-name safe, at most 128 characters. */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** One instance to start: a container of an image digest, never changed once started. */
export interface InstanceSpec {
  /** Unique, such as `web-r3-7f2c`; also the container id. Must match {@link INSTANCE_ID_PATTERN}. */
  readonly id: string;
  readonly service: string;
  /** The release this instance belongs to, such as `r3`. */
  readonly release: string;
  /** The image manifest digest. */
  readonly digest: Digest;
  /** The process to run: `args[0]` is resolved through `PATH` inside the instance. */
  readonly args: readonly string[];
  /** @default {} */
  readonly env: Readonly<Record<string, string>>;
  /** Absolute working directory. @default '/' */
  readonly cwd?: string;
  /** @default { uid: 0, gid: 0 } */
  readonly user?: ProcessUser;
  /** The loopback port the instance must listen on; also given as env `PORT`. */
  readonly port: number;
  /** @default no limit */
  readonly memoryBytes?: number;
  /** CPU limit as a number of CPUs, fractions allowed. @default no limit */
  readonly cpus?: number;
  /** Host paths bound into the instance, such as a stateful volume. @default [] */
  readonly mounts?: readonly BindMount[];
  /** Free-form labels reported back by `list` and `inspect`. @default {} */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * A check the engine itself runs inside the instance (a Swarm service's HEALTHCHECK). kiln's own
   * probes judge health either way; drivers without an engine-side check ignore it. @default none
   */
  readonly healthCheck?: EngineHealthCheck;
}

/** {@link InstanceSpec.healthCheck}: a command run inside the instance that must exit 0. */
export interface EngineHealthCheck {
  readonly args: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Consecutive failures that make the engine call the instance unhealthy. */
  readonly retries: number;
}

/**
 * `created`: set up but its process not yet running; `running`; `exited`: its process is gone and
 * it waits for `stop` to remove it; `unknown`: the driver cannot tell (the runtime did not answer).
 */
export type InstanceState = 'created' | 'running' | 'exited' | 'unknown';

/** What a driver observes about one instance. */
export interface InstanceStatus {
  readonly id: string;
  readonly service: string;
  readonly release: string;
  readonly digest: Digest;
  readonly port: number;
  /**
   * Where the instance is reached (`host:port`) when that is not the control plane's own host: the
   * address of the Swarm node it runs on now, which changes when it is rescheduled. @default the
   * control plane's host (local instances listen on its loopback)
   */
  readonly host?: string;
  readonly state: InstanceState;
  /** The instance's init process as the host sees it, while it runs. */
  readonly pid?: number;
  /** The process's exit code (128 + signal when killed by one), when the driver saw it. */
  readonly exitCode?: number;
  /** ISO 8601 time the instance was started. */
  readonly startedAt?: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Options of {@link RuntimeDriver.stop}. */
export interface StopOptions {
  /** How long to wait after SIGTERM before SIGKILL. @default DEFAULT_STOP_GRACE_MS */
  readonly graceMs?: number;
}

/** Options of {@link RuntimeDriver.logs}. */
export interface LogsOptions {
  /** Only the last this many lines. @default every line within DEFAULT_LOG_READ_BYTES of the end */
  readonly tailLines?: number;
}

/** Options of {@link RuntimeDriver.exec}. */
export interface ExecOptions {
  /** @default DEFAULT_EXEC_TIMEOUT_MS */
  readonly timeoutMs?: number;
}

/** How a command run by {@link RuntimeDriver.exec} ended. */
export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The signals {@link RuntimeDriver.kill} sends. */
export type KillSignal = 'SIGKILL' | 'SIGTERM';

/**
 * Runs instances somewhere (this host, a swarm, a cluster). Every method may be called again after
 * a control-plane restart: a new driver over the same state adopts what the old one started.
 *
 * @example
 * const driver = new LocalRuntimeDriver({ stateDir: '.kiln/instances', rootfs: (d) => ensureRootfs(store, d, '.kiln/rootfs') });
 * driver.onExit((status) => replace(status));
 * await driver.start({ id: 'web-r3-7f2c', service: 'web', release: 'r3', digest, args: ['node', 'server.js'], env: {}, port: 8081 });
 */
export interface RuntimeDriver {
  /** The driver's name, such as `fake` or `local`. */
  readonly name: string;
  /**
   * Starts a new instance; resolves once its process runs, not when it is healthy.
   * @throws ValidationError for a bad spec (every issue at once).
   * @throws ConflictError when an instance with this id exists (even an exited one not yet stopped).
   */
  start(spec: InstanceSpec): Promise<InstanceStatus>;
  /**
   * Graceful stop: SIGTERM, SIGKILL after `graceMs`, then the instance and its scratch are removed.
   * Idempotent: stopping an unknown or already stopped id does nothing. A stop is deliberate, so it
   * does not notify {@link onExit} listeners.
   */
  stop(id: string, options?: StopOptions): Promise<void>;
  /**
   * Sends a signal to the instance's processes at once (chaos, tests). With SIGKILL it resolves once
   * the exit has been observed, so the instance then reports `exited` until `stop` removes it.
   * Killing an instance that already exited does nothing.
   * @throws NotFoundError for an unknown id.
   */
  kill(id: string, signal?: KillSignal): Promise<void>;
  /** Every instance this driver manages, including ones started by a previous process, sorted by id. */
  list(): Promise<InstanceStatus[]>;
  /** One instance, or undefined when there is none with this id. */
  inspect(id: string): Promise<InstanceStatus | undefined>;
  /**
   * What the instance's process wrote to stdout and stderr, interleaved.
   * @throws NotFoundError for an unknown id.
   */
  logs(id: string, options?: LogsOptions): Promise<string>;
  /**
   * Runs a command inside a running instance and returns its exit code and output.
   * @throws NotFoundError for an unknown id; ConflictError when the instance is not running.
   */
  exec(id: string, args: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * Calls `listener` once for each instance whose process exits while this driver watches it
   * (crash or {@link kill}, not {@link stop}). Returns the unsubscribe function. While a listener is
   * subscribed, a driver that watches processes keeps the Node process alive until {@link close}.
   */
  onExit(listener: (status: InstanceStatus) => void): () => void;
  /**
   * What the instance runs as the runtime holds it, for drift checks: its root on the host, the
   * process its bundle names, and the environment its init runs with as the kernel reports it.
   * Undefined for an unknown instance, or from a driver that cannot tell (a remote engine).
   */
  describe?(id: string): Promise<InstanceDescription | undefined>;
  /**
   * What the engine that runs the instance vouches for, for drift checks where kiln cannot read the
   * root itself (a remote engine): the image it was made from, its process, the paths the engine
   * sees changed in its root, and processes started in it by anyone but this driver. Undefined for
   * an unknown instance, or one not running.
   */
  attest?(id: string): Promise<InstanceAttestation | undefined>;
  /**
   * The host command that runs `args` inside the instance with this terminal's stdin, stdout and
   * stderr (a debugging shell: `crun exec --tty`), for a client on this host to run itself.
   * @throws NotFoundError for an unknown id; ConflictError when it is not running.
   */
  execCommand?(id: string, args: readonly string[], options?: { readonly tty?: boolean }): Promise<string[]>;
  /** Stops watching and releases the driver's resources; running instances keep running. */
  close(): Promise<void>;
}

/** {@link RuntimeDriver.describe}'s answer. */
export interface InstanceDescription {
  /** The host directory the instance's root filesystem is. */
  readonly rootfs: string;
  /** The process as the bundle says (the init, if any, left out). */
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** The environment its init process runs with, while it runs. */
  readonly liveEnv?: Readonly<Record<string, string>>;
}

/** {@link RuntimeDriver.attest}'s answer. */
export interface InstanceAttestation {
  /** The image reference the engine made it from, pinned by digest (`…/web@sha256:…`). */
  readonly image: string;
  /** The process the engine runs (its init, if any, left out). */
  readonly args: readonly string[];
  /** Its environment as the engine holds it: the image's variables, and the instance's over them. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * Paths the engine reports added, modified or removed in the root since it was made, less the
   * mount points the engine makes itself. The engine compares only the instance's own writable
   * layer, not the image's layers on the node's disk.
   */
  readonly changes: readonly TreeDrift[];
  /** Processes running in it that neither this driver nor the engine's health check started (`docker exec`). */
  readonly foreignProcesses: readonly string[];
}

/** Throws a ValidationError when `args` names no program to run in an instance. */
export function assertCommand(args: readonly string[]): void {
  if (args.length === 0 || args[0] === '') {
    throw new ValidationError(undefined, [{ path: 'args', message: 'must name a program to run' }]);
  }
}

/**
 * Throws a ValidationError listing every problem of `spec` at once: the instance's own fields here,
 * the process fields (args, env, cwd, user, mounts, limits) as {@link runtimeSpec} checks them.
 */
export function validateInstanceSpec(spec: InstanceSpec): void {
  const issues: ValidationIssue[] = [];
  for (const field of ['id', 'service', 'release'] as const) {
    const value: unknown = spec[field];
    if (typeof value !== 'string' || !INSTANCE_ID_PATTERN.test(value)) {
      issues.push({
        path: field,
        message: `'${String(value)}' is not a valid ${field}`,
        fix: "use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit, such as web-r3-7f2c",
      });
    }
  }
  if (!isDigest(spec.digest)) {
    issues.push({
      path: 'digest',
      message: `'${spec.digest}' is not a sha256 digest`,
      fix: 'give sha256:<64 hex>',
    });
  }
  if (!(Number.isInteger(spec.port) && spec.port >= 1 && spec.port <= 65_535)) {
    issues.push({ path: 'port', message: `must be an integer in 1..65535, got ${spec.port}` });
  }
  const envPort = spec.env.PORT;
  if (envPort !== undefined && envPort !== String(spec.port)) {
    issues.push({
      path: 'env.PORT',
      message: `is ${envPort} but port is ${spec.port}`,
      fix: 'leave PORT out of env: it is set from port',
    });
  }
  for (const [key, value] of Object.entries(spec.labels ?? {})) {
    if (key === '' || typeof value !== 'string') {
      issues.push({ path: `labels.${key}`, message: 'label names must be non-empty and values strings' });
    }
  }
  try {
    runtimeSpec({ rootfs: '/', ...processOf(spec) });
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues.push(...err.issues);
  }
  if (issues.length > 0) throw new ValidationError(`instance ${spec.id}`, issues);
}

/** Throws a ValidationError unless `id` is a well-formed instance id (it names files and containers). */
export function validateInstanceId(id: string): void {
  if (typeof id !== 'string' || !INSTANCE_ID_PATTERN.test(id)) {
    throw new ValidationError(undefined, [
      {
        path: 'id',
        message: `'${String(id)}' is not a valid instance id`,
        fix: 'give an id such as web-r3-7f2c',
      },
    ]);
  }
}

/** The process part of a spec as {@link runtimeSpec} takes it, with `PORT` set from `port`. */
export function processOf(spec: InstanceSpec): {
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  cwd?: string;
  user?: ProcessUser;
  mounts?: readonly BindMount[];
  memoryBytes?: number;
  cpus?: number;
} {
  return {
    args: spec.args,
    env: { ...spec.env, PORT: String(spec.port) },
    ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
    ...(spec.user === undefined ? {} : { user: spec.user }),
    ...(spec.mounts === undefined ? {} : { mounts: spec.mounts }),
    ...(spec.memoryBytes === undefined ? {} : { memoryBytes: spec.memoryBytes }),
    ...(spec.cpus === undefined ? {} : { cpus: spec.cpus }),
  };
}

/** The status of an instance of `spec` in `state`; `extra` adds the observed pid, exit code, start time and host. */
export function statusOf(
  spec: InstanceSpec,
  state: InstanceState,
  extra: {
    pid?: number | undefined;
    exitCode?: number | undefined;
    startedAt?: string | undefined;
    host?: string | undefined;
  } = {},
): InstanceStatus {
  return {
    id: spec.id,
    service: spec.service,
    release: spec.release,
    digest: spec.digest,
    port: spec.port,
    ...(extra.host === undefined ? {} : { host: extra.host }),
    state,
    ...(extra.pid === undefined ? {} : { pid: extra.pid }),
    ...(extra.exitCode === undefined ? {} : { exitCode: extra.exitCode }),
    ...(extra.startedAt === undefined ? {} : { startedAt: extra.startedAt }),
    labels: { ...(spec.labels ?? {}) },
  };
}

/** The last `tailLines` lines of `text` (all of it when undefined); a final newline is kept. */
export function tailOf(text: string, tailLines: number | undefined): string {
  if (tailLines === undefined) return text;
  if (!(Number.isInteger(tailLines) && tailLines >= 0)) {
    throw new ValidationError(undefined, [
      { path: 'tailLines', message: `must be a whole number, got ${tailLines}` },
    ]);
  }
  if (tailLines === 0) return '';
  const lines = text.split('\n');
  const trailing = lines[lines.length - 1] === '' ? lines.pop() : undefined;
  const kept = lines.slice(-tailLines).join('\n');
  return trailing === undefined ? kept : `${kept}\n`;
}

/**
 * Runs a driver's start of instance `id`, one at a time: the start is in `starting` from before
 * its first await until it settles, so a stop issued meanwhile can wait for it, and a second start
 * of the same id is a ConflictError.
 */
export async function startOnce(
  starting: Map<string, Promise<InstanceStatus>>,
  id: string,
  start: () => Promise<InstanceStatus>,
): Promise<InstanceStatus> {
  if (starting.has(id)) throw new ConflictError(`instance ${id} is already starting`);
  const work = start();
  starting.set(id, work);
  try {
    return await work;
  } finally {
    starting.delete(id);
  }
}

/**
 * Runs a driver's stop of instance `id` once: a stop issued while one is under way joins it, and
 * `stops` holds it until it settles.
 */
export function stopOnce(
  stops: Map<string, Promise<void>>,
  id: string,
  stop: () => Promise<void>,
): Promise<void> {
  const pending = stops.get(id);
  if (pending !== undefined) return pending;
  const stopping = stop().finally(() => stops.delete(id));
  stops.set(id, stopping);
  return stopping;
}
