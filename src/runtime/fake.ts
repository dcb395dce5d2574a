/**
 * An in-memory {@link RuntimeDriver} for the controller's table tests: deterministic (pids count
 * up from {@link FAKE_FIRST_PID}, time comes from a clock hook, exits are reported synchronously)
 * and with faults injected on purpose (`failNextStart`, `crash`). Its instances run on a
 * {@link FakeHost}; several drivers over one host model a control-plane restart and adoption.
 */
import { ConflictError, KilnError, NotFoundError, UnavailableError } from '../errors/index.js';
import {
  statusOf,
  tailOf,
  validateInstanceId,
  validateInstanceSpec,
  type ExecOptions,
  type ExecResult,
  type InstanceSpec,
  type InstanceStatus,
  type KillSignal,
  type LogsOptions,
  type RuntimeDriver,
  type StopOptions,
} from './driver.js';

/** The pid of a fake host's first instance; each later instance gets the next number. */
export const FAKE_FIRST_PID = 1000;

/** How a fake instance's process behaves. Everything is optional: by default it prints nothing. */
export interface FakeProgram {
  /** What the process prints as soon as it starts. @default '' */
  readonly output?: string;
  /** Answers `exec`. @default exit code 0, no output */
  readonly exec?: (args: readonly string[]) => ExecResult;
  /** Whether SIGTERM leaves it running (stop then escalates to SIGKILL). @default false */
  readonly ignoresSigterm?: boolean;
  /** Exit by itself with this code just after starting (after `start` resolves). @default keeps running */
  readonly exitCode?: number;
}

/** Options of {@link FakeHost}. */
export interface FakeHostOptions {
  /** The clock; `startedAt` comes from it. @default () => new Date() */
  readonly now?: () => Date;
  /** The behaviour of each started instance's process. @default prints nothing, exec exits 0 */
  readonly program?: (spec: InstanceSpec) => FakeProgram;
}

interface FakeInstance {
  readonly spec: InstanceSpec;
  readonly program: FakeProgram;
  readonly pid: number;
  readonly startedAt: string;
  state: 'running' | 'exited';
  exitCode?: number;
  log: string;
  /** Set by {@link FakeHost.place}: the machine it runs on, as a multi-node engine reports it. */
  host?: string;
}

/** The machine fake instances run on: they outlive any one driver, as real containers do. */
export class FakeHost {
  readonly #now: () => Date;
  readonly #program: (spec: InstanceSpec) => FakeProgram;
  readonly #instances = new Map<string, FakeInstance>();
  readonly #drivers = new Set<FakeRuntimeDriver>();
  #nextPid = FAKE_FIRST_PID;

  constructor(options: FakeHostOptions = {}) {
    this.#now = options.now ?? (() => new Date());
    this.#program = options.program ?? (() => ({}));
  }

  /** Ids of the instances on this host, sorted. */
  ids(): string[] {
    return [...this.#instances.keys()].sort();
  }

  /** Appends to an instance's log, as if its process printed `text`. */
  write(id: string, text: string): void {
    this.#get(id).log += text;
  }

  /** Makes an instance's process exit with `exitCode` and tells every open driver. */
  crash(id: string, exitCode = 1): void {
    const instance = this.#get(id);
    if (instance.state !== 'running') return;
    instance.state = 'exited';
    instance.exitCode = exitCode;
    const status = this.status(instance);
    for (const driver of this.#drivers) driver.notifyExit(status);
  }

  /** Moves an instance to machine `host`, as an engine such as Swarm does after a node is lost. */
  place(id: string, host: string): void {
    this.#get(id).host = host;
  }

  /** @internal Used by FakeRuntimeDriver. */
  attach(driver: FakeRuntimeDriver): void {
    this.#drivers.add(driver);
  }

  /** @internal */
  detach(driver: FakeRuntimeDriver): void {
    this.#drivers.delete(driver);
  }

  /** @internal */
  create(spec: InstanceSpec): FakeInstance {
    if (this.#instances.has(spec.id)) throw new ConflictError(`instance ${spec.id} already exists`);
    const program = this.#program(spec);
    const instance: FakeInstance = {
      spec,
      program,
      pid: this.#nextPid++,
      startedAt: this.#now().toISOString(),
      state: 'running',
      log: program.output ?? '',
    };
    this.#instances.set(spec.id, instance);
    const exitCode = program.exitCode;
    if (exitCode !== undefined) {
      queueMicrotask(() => {
        if (this.#instances.get(spec.id) === instance) this.crash(spec.id, exitCode);
      });
    }
    return instance;
  }

  /** @internal */
  find(id: string): FakeInstance | undefined {
    return this.#instances.get(id);
  }

  /** @internal */
  remove(id: string): void {
    this.#instances.delete(id);
  }

  /** @internal */
  status(instance: FakeInstance): InstanceStatus {
    return statusOf(instance.spec, instance.state, {
      pid: instance.state === 'running' ? instance.pid : undefined,
      exitCode: instance.exitCode,
      startedAt: instance.startedAt,
      host: instance.host,
    });
  }

  #get(id: string): FakeInstance {
    const instance = this.#instances.get(id);
    if (instance === undefined) throw new NotFoundError(`no instance ${id}`);
    return instance;
  }
}

/** Options of {@link FakeRuntimeDriver}. */
export interface FakeRuntimeDriverOptions {
  /** Share one host between drivers to model a control-plane restart. @default a new FakeHost */
  readonly host?: FakeHost;
}

/**
 * The in-memory driver. Every call is recorded in {@link calls} (`start web-1`, `stop web-1`, …)
 * so a controller test can assert what it did.
 *
 * @example
 * const host = new FakeHost({ now: () => new Date('2030-01-01T00:00:00Z') });
 * const driver = new FakeRuntimeDriver({ host });
 * driver.failNextStart(new UnavailableError('disk full'));
 * await expect(driver.start(spec)).rejects.toThrow('disk full');
 */
export class FakeRuntimeDriver implements RuntimeDriver {
  /** @inheritdoc */
  readonly name = 'fake';
  /** The host this driver's instances run on. */
  readonly host: FakeHost;
  /** Every call made, in order, as `<method> <id>` (`list` alone). */
  readonly calls: string[] = [];
  readonly #listeners = new Set<(status: InstanceStatus) => void>();
  readonly #startFailures: Error[] = [];
  #closed = false;

  constructor(options: FakeRuntimeDriverOptions = {}) {
    this.host = options.host ?? new FakeHost();
    this.host.attach(this);
  }

  /** Makes the next `start` reject with `err` (queued: call twice to fail two starts). */
  failNextStart(err: Error = new KilnError('runtime', 'injected start failure')): void {
    this.#startFailures.push(err);
  }

  /** Makes an instance's process exit with `exitCode`, as a crash would; onExit listeners hear of it. */
  crash(id: string, exitCode = 1): void {
    this.host.crash(id, exitCode);
  }

  /** @inheritdoc */
  async start(spec: InstanceSpec): Promise<InstanceStatus> {
    this.#use(`start ${spec.id}`);
    validateInstanceSpec(spec);
    const failure = this.#startFailures.shift();
    if (failure !== undefined) throw failure;
    return this.host.status(this.host.create(spec));
  }

  /** @inheritdoc */
  async stop(id: string, _options: StopOptions = {}): Promise<void> {
    this.#use(`stop ${id}`);
    validateInstanceId(id);
    // A deliberate stop is not an exit the controller must react to, so no listener hears of it.
    this.host.remove(id);
  }

  /** @inheritdoc */
  async kill(id: string, signal: KillSignal = 'SIGKILL'): Promise<void> {
    this.#use(`kill ${id}`);
    const instance = this.#find(id);
    if (instance.state !== 'running') return;
    if (signal === 'SIGTERM' && instance.program.ignoresSigterm === true) return;
    this.host.crash(id, signal === 'SIGKILL' ? 137 : 143);
  }

  /** @inheritdoc */
  async list(): Promise<InstanceStatus[]> {
    this.#use('list');
    return this.host.ids().map((id) => this.host.status(this.#find(id)));
  }

  /** @inheritdoc */
  async inspect(id: string): Promise<InstanceStatus | undefined> {
    this.#use(`inspect ${id}`);
    validateInstanceId(id);
    const instance = this.host.find(id);
    return instance === undefined ? undefined : this.host.status(instance);
  }

  /** @inheritdoc */
  async logs(id: string, options: LogsOptions = {}): Promise<string> {
    this.#use(`logs ${id}`);
    return tailOf(this.#find(id).log, options.tailLines);
  }

  /** @inheritdoc */
  async exec(id: string, args: readonly string[], _options: ExecOptions = {}): Promise<ExecResult> {
    this.#use(`exec ${id}`);
    const instance = this.#find(id);
    if (instance.state !== 'running')
      throw new ConflictError(`instance ${id} is ${instance.state}, not running`);
    return instance.program.exec?.(args) ?? { exitCode: 0, stdout: '', stderr: '' };
  }

  /** @inheritdoc */
  onExit(listener: (status: InstanceStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.host.detach(this);
  }

  /** @internal Called by the host when an instance exits. */
  notifyExit(status: InstanceStatus): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(status);
      } catch {
        // A listener's bug must not stop the others from hearing of the exit.
      }
    }
  }

  #use(call: string): void {
    if (this.#closed) throw new UnavailableError(`the ${this.name} runtime driver is closed`);
    this.calls.push(call);
  }

  #find(id: string): FakeInstance {
    validateInstanceId(id);
    const instance = this.host.find(id);
    if (instance === undefined) throw new NotFoundError(`no instance ${id}`);
    return instance;
  }
}
