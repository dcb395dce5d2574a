/**
 * The `swarm` {@link RuntimeDriver}: each kiln instance is one Docker Swarm service with one
 * replica, pinned by digest, read-only, limited, with its port published in host mode on whichever
 * node Swarm places it (so kiln's router reaches it at `<node address>:<port>`). Swarm places the
 * instance and, when its node is lost, the driver has Swarm place it again; kiln keeps per-instance
 * control (rollouts, health, drift, chaos). See docs/swarm.md for the mapping and its reasons.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { ConflictError, KilnError, NotFoundError, UnavailableError, wrap } from '../../errors/index.js';
import { CONTROL_TIMEOUT_MS } from '../detect.js';
import {
  DEFAULT_EXEC_TIMEOUT_MS,
  DEFAULT_LOG_READ_BYTES,
  DEFAULT_STOP_GRACE_MS,
  assertCommand,
  startOnce,
  stopOnce,
  tailOf,
  validateInstanceId,
  type ExecOptions,
  type ExecResult,
  type InstanceAttestation,
  type InstanceSpec,
  type InstanceStatus,
  type KillSignal,
  type LogsOptions,
  type RuntimeDriver,
  type StopOptions,
} from '../driver.js';
import { tellEach } from '../instance-exits.js';
import { placeAgain, readSwarm, removeService } from './api.js';
import { attestContainer } from './attest.js';
import { demux, Engine, registryAuthHeader } from './engine.js';
import {
  DEFAULT_SWARM_POLL_MS,
  DEFAULT_SWARM_SCOPE,
  DEFAULT_SWARM_START_TIMEOUT_MS,
  type SwarmRuntimeDriverOptions,
} from './options.js';
import { dockerExecCommand, execInContainer, NodeEngines, signalContainer, stopContainer } from './nodes.js';
import {
  instanceOf,
  observe,
  serviceSpecOf,
  validateSwarmSpec,
  type Observed,
  type SwarmNode,
  type SwarmService,
} from './service-spec.js';

export {
  DEFAULT_SWARM_POLL_MS,
  DEFAULT_SWARM_SCOPE,
  DEFAULT_SWARM_START_TIMEOUT_MS,
  type SwarmRuntimeDriverOptions,
} from './options.js';

interface Snapshot {
  readonly observed: Map<string, Observed & { readonly service: SwarmService }>;
  readonly nodes: ReadonlyMap<string, SwarmNode>;
}

/**
 * Runs instances as Swarm services through a manager's Engine API.
 *
 * @example
 * const driver = new SwarmRuntimeDriver({ docker: 'unix:///var/run/docker.sock', image: async (d) => `10.0.0.1:5000/kiln/web@${d}` });
 * const status = await driver.start({ id: 'web-r3-7f2c', service: 'web', release: 'r3', digest, args: ['node', 'server.js'], env: {}, port: 20001 });
 * // status.host is the address of the node it runs on
 */
export class SwarmRuntimeDriver implements RuntimeDriver {
  /** @inheritdoc */
  readonly name = 'swarm';
  readonly #o: SwarmRuntimeDriverOptions;
  readonly #engine: Engine;
  readonly #nodes: NodeEngines;
  readonly #scope: string;
  readonly #starting = new Map<string, Promise<InstanceStatus>>();
  readonly #stops = new Map<string, Promise<void>>();
  readonly #stopping = new Set<string>();
  /** What this driver last saw of each instance; an exit is a change from a live state. */
  readonly #seen = new Map<string, InstanceStatus['state']>();
  /** Tasks on lost nodes this driver already had placed again. */
  readonly #replaced = new Set<string>();
  readonly #listeners = new Set<(status: InstanceStatus) => void>();
  /** Exec sessions this driver runs now (checks): the drift check does not count them as foreign. */
  readonly #ownExecs = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: SwarmRuntimeDriverOptions) {
    this.#o = options;
    this.#engine = new Engine(options.docker, options.tls);
    this.#nodes = new NodeEngines(this.#engine, options.nodes ?? {}, options.tls);
    this.#scope = options.scope ?? DEFAULT_SWARM_SCOPE;
  }

  /** @inheritdoc */
  async start(spec: InstanceSpec): Promise<InstanceStatus> {
    this.#checkOpen();
    validateSwarmSpec(spec);
    // Registered before any await, so a stop or a second start of this id issued meanwhile sees it.
    return startOnce(this.#starting, spec.id, () => this.#startIn(spec));
  }

  async #startIn(spec: InstanceSpec): Promise<InstanceStatus> {
    const image = await this.#o.image(spec.digest, spec);
    const body = serviceSpecOf(spec, {
      image,
      scope: this.#scope,
      stopGraceMs: this.#o.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    });
    const auth = this.#o.registryAuth;
    const headers = auth
      ? { 'x-registry-auth': registryAuthHeader(auth.username, auth.password, image) }
      : undefined;
    try {
      await this.#engine.request({
        method: 'POST',
        path: '/services/create',
        body,
        ...(headers ? { headers } : {}),
      });
    } catch (err) {
      if (err instanceof ConflictError) {
        throw new ConflictError(`instance ${spec.id} already exists (ids are never reused; stop it first)`, {
          cause: err,
        });
      }
      throw wrap(`starting instance ${spec.id}`, err);
    }
    this.#seen.set(spec.id, 'created');
    const deadline = Date.now() + (this.#o.startTimeoutMs ?? DEFAULT_SWARM_START_TIMEOUT_MS);
    let waiting = 'no task yet';
    for (;;) {
      const found = (await this.#snapshot([spec.id])).observed.get(spec.id);
      if (found?.failedToStart !== undefined || (found === undefined && Date.now() > deadline)) {
        await removeService(this.#engine, spec.id);
        throw new KilnError(
          'runtime',
          `instance ${spec.id} could not start: ${found?.failedToStart ?? 'its service vanished'}`,
        );
      }
      const state = found?.status.state;
      if (state === 'running' || state === 'exited') return found!.status;
      waiting = found?.task?.Status.Err || found?.task?.Status.Message || waiting;
      if (Date.now() > deadline) {
        await removeService(this.#engine, spec.id);
        throw new KilnError(
          'runtime',
          `instance ${spec.id} was not running within the start timeout: ${waiting}`,
        );
      }
      await sleep(100);
    }
  }

  /** @inheritdoc */
  async stop(id: string, options: StopOptions = {}): Promise<void> {
    this.#checkOpen();
    validateInstanceId(id);
    return stopOnce(this.#stops, id, () => this.#stop(id, options.graceMs ?? DEFAULT_STOP_GRACE_MS));
  }

  async #stop(id: string, graceMs: number): Promise<void> {
    // A start still under way finishes first, so what it made is what gets removed.
    await this.#starting.get(id)?.catch(() => undefined);
    this.#stopping.add(id);
    try {
      const snapshot = await this.#snapshot([id]);
      const found = snapshot.observed.get(id);
      if (found === undefined) return;
      const container = found.task?.Status.ContainerStatus?.ContainerID;
      if (found.status.state === 'running' && container) {
        const node = snapshot.nodes.get(found.task?.NodeID ?? '');
        // With the node's engine, the grace is exactly graceMs; without, Swarm's own (stopGraceMs).
        const engine = await this.#nodes.of(node, id).catch(() => undefined);
        // A node that does not answer (lost, or its engine down) is left to Swarm: removing the
        // service stops the task wherever it still runs.
        if (engine) await stopContainer(engine, container, graceMs).catch(rethrowUnlessUnavailable);
      }
      await removeService(this.#engine, id);
    } finally {
      this.#stopping.delete(id);
      this.#seen.delete(id);
    }
  }

  /** @inheritdoc */
  async kill(id: string, signal: KillSignal = 'SIGKILL'): Promise<void> {
    const { found, node } = await this.#one(id);
    if (found.status.state === 'exited') return;
    const container = found.task?.Status.ContainerStatus?.ContainerID;
    if (!container || found.status.state !== 'running') {
      throw new ConflictError(`instance ${id} is ${found.status.state}: it has no running process to signal`);
    }
    await signalContainer(await this.#nodes.of(node, id), container, signal);
    if (signal !== 'SIGKILL') return;
    const deadline = Date.now() + CONTROL_TIMEOUT_MS;
    while ((await this.#one(id)).found.status.state !== 'exited') {
      if (Date.now() > deadline) {
        throw new KilnError(
          'runtime',
          `instance ${id} did not exit within ${CONTROL_TIMEOUT_MS} ms of SIGKILL`,
        );
      }
      await sleep(50);
    }
  }

  /** @inheritdoc */
  async list(): Promise<InstanceStatus[]> {
    this.#checkOpen();
    const { observed } = await this.#snapshot();
    return [...observed.values()]
      .map((o) => o.status)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** @inheritdoc */
  async inspect(id: string): Promise<InstanceStatus | undefined> {
    this.#checkOpen();
    validateInstanceId(id);
    return (await this.#snapshot([id])).observed.get(id)?.status;
  }

  /** @inheritdoc */
  async logs(id: string, options: LogsOptions = {}): Promise<string> {
    const { found } = await this.#one(id);
    const tail = options.tailLines;
    const body = await this.#engine.raw({
      path: `/services/${found.service.ID}/logs`,
      query: { stdout: true, stderr: true, tail: tail === undefined ? 'all' : Math.max(0, Math.floor(tail)) },
    });
    const text = demux(body).both;
    const kept =
      text.length > DEFAULT_LOG_READ_BYTES
        ? text.slice(text.indexOf('\n', text.length - DEFAULT_LOG_READ_BYTES) + 1)
        : text;
    return tailOf(kept, tail);
  }

  /** @inheritdoc */
  async exec(id: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const { engine, container } = await this.#running(id, args);
    return execInContainer(
      engine,
      container,
      args,
      options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
      this.#ownExecs,
    );
  }

  /** @inheritdoc */
  async attest(id: string): Promise<InstanceAttestation | undefined> {
    const one = await this.#one(id).catch((err: unknown) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    });
    const container = one?.found.task?.Status.ContainerStatus?.ContainerID;
    if (one === undefined || one.found.status.state !== 'running' || !container) return undefined;
    return attestContainer(await this.#nodes.of(one.node, id), container, this.#ownExecs);
  }

  /** @inheritdoc */
  async execCommand(id: string, args: readonly string[], options: { tty?: boolean } = {}): Promise<string[]> {
    const { engine, container } = await this.#running(id, args);
    return dockerExecCommand(engine, container, args, options.tty === true);
  }

  async #running(id: string, args: readonly string[]): Promise<{ engine: Engine; container: string }> {
    assertCommand(args);
    const { found, node } = await this.#one(id);
    const container = found.task?.Status.ContainerStatus?.ContainerID;
    if (found.status.state !== 'running' || !container) {
      throw new ConflictError(`instance ${id} is ${found.status.state}, not running`);
    }
    return { engine: await this.#nodes.of(node, id), container };
  }

  /** @inheritdoc */
  onExit(listener: (status: InstanceStatus) => void): () => void {
    this.#listeners.add(listener);
    this.#watch();
    return () => {
      this.#listeners.delete(listener);
      this.#watch();
    };
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#watch();
    await Promise.allSettled([...this.#stops.values(), ...this.#starting.values()]);
    this.#nodes.close();
    this.#engine.close();
  }

  /** Polls for exits while someone listens (and keeps the process alive meanwhile). */
  #watch(): void {
    const wanted = !this.#closed && this.#listeners.size > 0;
    if (wanted && this.#timer === undefined) {
      const tick = () => {
        this.#snapshot()
          .catch(() => undefined) // the next tick tries again
          .finally(() => {
            if (this.#timer !== undefined)
              this.#timer = setTimeout(tick, this.#o.pollIntervalMs ?? DEFAULT_SWARM_POLL_MS);
          });
      };
      this.#timer = setTimeout(tick, 0);
    } else if (!wanted && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** One instance and its node; NotFoundError when there is none. */
  async #one(
    id: string,
  ): Promise<{ found: Observed & { service: SwarmService }; node: SwarmNode | undefined }> {
    this.#checkOpen();
    validateInstanceId(id);
    const snapshot = await this.#snapshot([id]);
    const found = snapshot.observed.get(id);
    if (found === undefined) throw new NotFoundError(`no instance ${id} on the swarm at ${this.#o.docker}`);
    return { found, node: snapshot.nodes.get(found.task?.NodeID ?? '') };
  }

  /**
   * Reads this scope's services (or just `ids`), their tasks and the nodes; reports exits seen for
   * the first time and has Swarm place again the instances whose node is lost.
   */
  async #snapshot(ids?: readonly string[]): Promise<Snapshot> {
    const { services, tasks, nodes } = await readSwarm(this.#engine, this.#scope, ids);
    const observed: Snapshot['observed'] = new Map();
    for (const service of services) {
      const spec = instanceOf(service);
      if (spec === undefined) continue;
      const o = observe(spec, service, tasks, nodes);
      observed.set(spec.id, { ...o, service });
      this.#note(o);
      const lostTask = o.lost ? o.task?.ID : undefined;
      if (lostTask !== undefined && !this.#replaced.has(lostTask)) {
        this.#replaced.add(lostTask);
        void placeAgain(this.#engine, service).catch(() => this.#replaced.delete(lostTask));
      }
    }
    return { observed, nodes };
  }

  /** Tells the listeners once when an instance seen live (or being started) is now seen exited. */
  #note(o: Observed): void {
    const { id, state } = o.status;
    const before = this.#seen.get(id);
    this.#seen.set(id, state);
    if (state !== 'exited' || before === undefined || before === 'exited') return;
    if (this.#stopping.has(id) || o.failedToStart !== undefined) return;
    tellEach(this.#listeners, o.status);
  }

  #checkOpen(): void {
    if (this.#closed) throw new UnavailableError(`the ${this.name} runtime driver is closed`);
  }
}

function rethrowUnlessUnavailable(err: unknown): void {
  if (!(err instanceof UnavailableError)) throw err;
}
