/**
 * The `local` {@link RuntimeDriver}: each instance is a detached crun or runc container on this
 * host, run from the image's shared read-only rootfs in place, in the host's network namespace
 * (listening on its own 127.0.0.1 port), with its own pid, ipc, uts and mount namespaces, a tmpfs
 * `/tmp` and cgroup limits. Everything about an instance is on disk (see `instance-store.ts`) or in
 * the runtime's state, so instances outlive the kiln process and a new driver adopts them.
 * Exits are seen by one shared poll of the init processes ({@link ExitWatcher}).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { ConflictError, KilnError, NotFoundError, UnavailableError, wrap } from '../errors/index.js';
import { writeFileAtomic } from '../oci/index.js';
import { type CgroupHost, inspectCgroups } from './cgroups.js';
import {
  containerState,
  containerStates,
  execArgv,
  execIn,
  removeContainer,
  runDetached,
  type ContainerRuntime,
  type ContainerState,
} from './containers.js';
import { CONTROL_TIMEOUT_MS, pickRuntime, type RuntimeName } from './detect.js';
import {
  DEFAULT_EXEC_TIMEOUT_MS,
  DEFAULT_STOP_GRACE_MS,
  assertCommand,
  startOnce,
  stopOnce,
  statusOf,
  validateInstanceId,
  validateInstanceSpec,
  type ExecOptions,
  type ExecResult,
  type InstanceDescription,
  type InstanceSpec,
  type InstanceStatus,
  type KillSignal,
  type LogsOptions,
  type RuntimeDriver,
  type StopOptions,
} from './driver.js';
import { InstanceExits, tellEach } from './instance-exits.js';
import {
  bundleConfig,
  describeBundle,
  INSTANCE_RECORD_VERSION,
  instancePaths,
  readExit,
  readLogTail,
  readRecord,
  readRecords,
  writeExit,
  type InstancePaths,
  type InstanceRecord,
} from './instance-store.js';
import { assertRootForLocalRuntime, openRuntime, ownHardNofileLimit } from './oci-runtime.js';
import { DEFAULT_INSTANCE_RUNTIME_ROOT, type LocalRuntimeDriverOptions } from './local-options.js';
import { DEFAULT_NOFILE_LIMIT } from './spec.js';

export * from './local-options.js';

interface Context {
  readonly runtime: ContainerRuntime;
  readonly host: CgroupHost;
  readonly nofileLimit: number;
}

/**
 * Runs instances as detached crun/runc containers. Needs root. Construction starts detecting the
 * runtime and adopting the running instances found in `stateDir`; every method waits for that.
 *
 * @example
 * const driver = new LocalRuntimeDriver({ stateDir: '.kiln/instances', rootfs: (d) => ensureRootfs(store, d, '.kiln/rootfs') });
 * const status = await driver.start({ id: 'web-r3-7f2c', service: 'web', release: 'r3', digest, args: ['node', 'server.js'], env: {}, port: 8081 });
 */
export class LocalRuntimeDriver implements RuntimeDriver {
  /** @inheritdoc */
  readonly name = 'local';
  readonly #options: LocalRuntimeDriverOptions;
  readonly #stateDir: string;
  readonly #tracker: InstanceExits;
  readonly #exitWrites = new Map<string, Promise<void>>();
  readonly #starting = new Map<string, Promise<InstanceStatus>>();
  readonly #stops = new Map<string, Promise<void>>();
  readonly #listeners = new Set<(status: InstanceStatus) => void>();
  readonly #runtimes = new Map<RuntimeName, Promise<ContainerRuntime>>();
  #setup: Promise<Context>;
  #closed = false;

  constructor(options: LocalRuntimeDriverOptions) {
    this.#options = options;
    this.#stateDir = resolve(options.stateDir);
    this.#tracker = new InstanceExits(
      (record, exitCode) => this.#report(record, exitCode),
      options.exitPollIntervalMs,
    );
    this.#setup = this.#init();
    // The first call reports a failed set-up; until then it must not be an unhandled rejection.
    this.#setup.catch(() => undefined);
  }

  /**
   * The set-up, begun by the constructor. A set-up that failed (the runtime did not answer for a
   * moment) is begun again by the next call, so one bad moment does not break the driver for good.
   */
  get #ready(): Promise<Context> {
    const setup = this.#setup;
    return setup.catch(() => {
      if (this.#setup === setup) {
        this.#setup = this.#init();
        this.#setup.catch(() => undefined);
      }
      return this.#setup;
    });
  }

  /** @inheritdoc */
  async start(spec: InstanceSpec): Promise<InstanceStatus> {
    this.#checkOpen();
    validateInstanceSpec(spec);
    // Registered before any await, so a stop or a second start of this id issued meanwhile sees it.
    return startOnce(this.#starting, spec.id, () => this.#startIn(spec));
  }

  async #startIn(spec: InstanceSpec): Promise<InstanceStatus> {
    const ctx = await this.#ready;
    const paths = instancePaths(this.#stateDir, spec.id);
    try {
      await mkdir(paths.dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new ConflictError(`instance ${spec.id} already exists (ids are never reused; stop it first)`);
      }
      throw wrap(`starting instance ${spec.id}`, err);
    }
    try {
      return await this.#create(spec, paths, ctx);
    } catch (err) {
      const cleanup = await removeContainer(ctx.runtime, spec.id, ctx.host, paths.dir).then(
        () => '',
        (e: unknown) => `; cleaning up also failed: ${e instanceof Error ? e.message : String(e)}`,
      );
      const failure =
        err instanceof KilnError && err.code === 'runtime' ? err : wrap(`starting instance ${spec.id}`, err);
      if (cleanup === '') throw failure;
      throw new KilnError(failure.code, `${failure.message}${cleanup}`, { cause: failure });
    }
  }

  /** @inheritdoc */
  async stop(id: string, options: StopOptions = {}): Promise<void> {
    this.#checkOpen();
    validateInstanceId(id);
    return stopOnce(this.#stops, id, () => this.#stop(id, options.graceMs ?? DEFAULT_STOP_GRACE_MS));
  }

  /** @inheritdoc */
  async kill(id: string, signal: KillSignal = 'SIGKILL'): Promise<void> {
    const record = await this.#record(id);
    if (this.#tracker.hasExited(id) || !(await this.#ensureWatched(record))) return;
    this.#tracker.signal(id, signal);
    if (signal === 'SIGKILL' && !(await this.#tracker.waitExit(id, CONTROL_TIMEOUT_MS))) {
      throw new KilnError(
        'runtime',
        `instance ${id} did not exit within ${CONTROL_TIMEOUT_MS} ms of SIGKILL`,
      );
    }
  }

  /** @inheritdoc */
  async list(): Promise<InstanceStatus[]> {
    this.#checkOpen();
    await this.#ready;
    return this.#observe(await readRecords(this.#stateDir));
  }

  /** @inheritdoc */
  async inspect(id: string): Promise<InstanceStatus | undefined> {
    this.#checkOpen();
    validateInstanceId(id);
    await this.#ready;
    const record = await readRecord(this.#stateDir, id);
    return record === undefined ? undefined : (await this.#observe([record]))[0];
  }

  /** @inheritdoc */
  async logs(id: string, options: LogsOptions = {}): Promise<string> {
    const record = await this.#record(id);
    return readLogTail(record.logFile, options.tailLines);
  }

  /** @inheritdoc */
  async exec(id: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const runtime = await this.#running(id, args);
    return execIn(runtime, id, args, options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS);
  }

  /** @inheritdoc */
  async execCommand(id: string, args: readonly string[], options: { tty?: boolean } = {}): Promise<string[]> {
    return execArgv(await this.#running(id, args), id, args, options.tty ?? false);
  }

  /** @inheritdoc */
  async describe(id: string): Promise<InstanceDescription | undefined> {
    const record = await this.#record(id).catch(() => undefined);
    const [status] = record ? await this.#observe([record]) : [];
    const pid = status?.state === 'running' ? status.pid : undefined;
    return record && describeBundle(instancePaths(this.#stateDir, id), pid);
  }

  /** The runtime of running instance `id`, for a command `args` to run in it. */
  async #running(id: string, args: readonly string[]): Promise<ContainerRuntime> {
    assertCommand(args);
    const record = await this.#record(id);
    const [status] = await this.#observe([record]);
    if (status?.state !== 'running') {
      throw new ConflictError(`instance ${id} is ${status?.state ?? 'gone'}, not running`);
    }
    return this.#runtime(record.runtime);
  }

  /** @inheritdoc */
  onExit(listener: (status: InstanceStatus) => void): () => void {
    // Someone waits to hear of exits, so the watcher keeps the process alive until close().
    this.#listeners.add(listener);
    this.#tracker.keepAlive(true);
    return () => {
      this.#listeners.delete(listener);
      this.#tracker.keepAlive(this.#listeners.size > 0);
    };
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    this.#closed = true;
    this.#tracker.close();
    this.#listeners.clear();
    await Promise.allSettled([...this.#stops.values(), ...this.#exitWrites.values()]);
  }

  async #init(): Promise<Context> {
    assertRootForLocalRuntime();
    const runtime = await this.#runtime((await pickRuntime(this.#options.runtime)).name);
    await mkdir(this.#stateDir, { recursive: true });
    if (this.#options.logDir !== undefined) await mkdir(this.#options.logDir, { recursive: true });
    const [host, hardNofile] = await Promise.all([inspectCgroups(), ownHardNofileLimit()]);
    // Adoption: watching every running instance now means exits are reported from the start.
    await this.#observe(await readRecords(this.#stateDir));
    return { runtime, host, nofileLimit: Math.min(DEFAULT_NOFILE_LIMIT, hardNofile) };
  }

  async #create(spec: InstanceSpec, paths: InstancePaths, ctx: Context): Promise<InstanceStatus> {
    const rootfs = resolve(await this.#options.rootfs(spec.digest));
    const logFile =
      this.#options.logDir === undefined
        ? join(paths.dir, 'output.log')
        : join(resolve(this.#options.logDir), `${spec.id}.log`);
    const startedAt = new Date().toISOString();
    const record: InstanceRecord = {
      version: INSTANCE_RECORD_VERSION,
      spec,
      runtime: ctx.runtime.info.name,
      startedAt,
      logFile,
    };
    // The record goes first, so an instance whose start is cut short is still found and removed.
    await writeFileAtomic(paths.record, `${JSON.stringify(record, null, 2)}\n`);
    await writeFile(
      paths.config,
      JSON.stringify(bundleConfig(spec, rootfs, ctx.nofileLimit, this.#options.init)),
    );
    const pid = await runDetached(ctx.runtime, spec.id, paths, logFile);
    this.#tracker.watch(record, pid);
    return statusOf(spec, 'running', { pid, startedAt });
  }

  async #stop(id: string, graceMs: number): Promise<void> {
    const ctx = await this.#ready;
    // A start still under way would otherwise find its bundle removed halfway; it finishes first.
    await this.#starting.get(id)?.catch(() => undefined);
    const record = await readRecord(this.#stateDir, id);
    const runtime = record === undefined ? ctx.runtime : await this.#runtime(record.runtime);
    const running =
      record !== undefined && !this.#tracker.hasExited(id) && (await this.#ensureWatched(record));
    this.#tracker.stopping(id);
    if (running) {
      this.#tracker.signal(id, 'SIGTERM');
      if (!(await this.#tracker.waitExit(id, graceMs))) {
        this.#tracker.signal(id, 'SIGKILL');
        if (!(await this.#tracker.waitExit(id, CONTROL_TIMEOUT_MS))) {
          throw new KilnError(
            'runtime',
            `instance ${id} did not exit within ${CONTROL_TIMEOUT_MS} ms of SIGKILL`,
          );
        }
      }
    }
    await this.#exitWrites.get(id);
    await removeContainer(runtime, id, ctx.host, instancePaths(this.#stateDir, id).dir);
    this.#tracker.forget(id);
  }

  /** Statuses of `records`; asks the runtimes only about instances this driver is not watching. */
  async #observe(records: readonly InstanceRecord[]): Promise<InstanceStatus[]> {
    const unwatched = records.filter(
      (r) =>
        this.#tracker.pidOf(r.spec.id) === undefined &&
        !this.#tracker.hasExited(r.spec.id) &&
        !this.#starting.has(r.spec.id),
    );
    const states = new Map<string, ContainerState>();
    for (const name of new Set(unwatched.map((r) => r.runtime))) {
      for (const [id, entry] of await containerStates(await this.#runtime(name))) states.set(id, entry);
    }
    return Promise.all(records.map((record) => this.#statusOf(record, states.get(record.spec.id))));
  }

  async #statusOf(record: InstanceRecord, entry: ContainerState | undefined): Promise<InstanceStatus> {
    const { spec, startedAt } = record;
    if (this.#tracker.hasExited(spec.id)) {
      return statusOf(spec, 'exited', { exitCode: this.#tracker.exitCodeOf(spec.id), startedAt });
    }
    const pid = this.#tracker.pidOf(spec.id);
    if (pid !== undefined) return statusOf(spec, 'running', { pid, startedAt });
    if (this.#starting.has(spec.id)) return statusOf(spec, 'created', { startedAt });
    if (entry?.status === 'running') {
      this.#tracker.watch(record, entry.pid);
      return statusOf(spec, 'running', { pid: entry.pid, startedAt });
    }
    if (entry?.status === 'created') return statusOf(spec, 'created', { startedAt });
    // Unknown to the runtime (its state is on tmpfs, so after a reboot) counts as exited too.
    if (entry === undefined || entry.status === 'stopped') {
      const exitCode = await readExit(instancePaths(this.#stateDir, spec.id));
      return statusOf(spec, 'exited', { exitCode, startedAt });
    }
    return statusOf(spec, 'unknown', { startedAt });
  }

  /** Watches the instance if it runs and is not watched yet; returns whether it runs. */
  async #ensureWatched(record: InstanceRecord): Promise<boolean> {
    if (this.#tracker.pidOf(record.spec.id) !== undefined) return true;
    const entry = await containerState(await this.#runtime(record.runtime), record.spec.id);
    if (entry?.status !== 'running') return false;
    this.#tracker.watch(record, entry.pid);
    return true;
  }

  /** Tells the listeners of an exit, then records it for a later driver process. */
  #report(record: InstanceRecord, exitCode: number | undefined): void {
    tellEach(this.#listeners, statusOf(record.spec, 'exited', { exitCode, startedAt: record.startedAt }));
    const id = record.spec.id;
    const write = writeExit(instancePaths(this.#stateDir, id), exitCode)
      .catch(() => undefined)
      .finally(() => this.#exitWrites.delete(id));
    this.#exitWrites.set(id, write);
  }

  async #record(id: string): Promise<InstanceRecord> {
    this.#checkOpen();
    validateInstanceId(id);
    await this.#ready;
    const record = await readRecord(this.#stateDir, id);
    if (record === undefined) throw new NotFoundError(`no instance ${id} in ${this.#stateDir}`);
    return record;
  }

  /** The runtime `name` with its state root (made on first use). */
  #runtime(name: RuntimeName): Promise<ContainerRuntime> {
    const picked =
      this.#runtimes.get(name) ??
      openRuntime(name, this.#options.runtimeRoot ?? DEFAULT_INSTANCE_RUNTIME_ROOT);
    this.#runtimes.set(name, picked);
    return picked;
  }

  #checkOpen(): void {
    if (this.#closed) throw new UnavailableError(`the ${this.name} runtime driver is closed`);
  }
}
