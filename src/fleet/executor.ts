/**
 * Carries out the planner's actions against the state store, the runtime driver and the router,
 * and keeps the tracker true to what the driver runs (adopting instances after a restart, removing
 * exited and orphaned ones). Every instance is recorded before it is started, so a crash between
 * the two leaves a record the next resync resolves, never an instance nobody knows.
 */
import type { InstanceRole, PortRange, StateStore } from '../state/index.js';
import type { Digest } from '../oci/index.js';
import type { InstanceStatus, RuntimeDriver } from '../runtime/index.js';
import type { Backend, TrafficRouter } from '../traffic/index.js';
import { releaseSpec } from './desired.js';
import { engineHealthCheck, instanceEnv, instanceMounts, readyOf } from './stateful.js';
import type { ImageCatalog } from './images.js';
import type { HostPortClaims } from './host-ports.js';
import { PortPicker } from './ports.js';
import { recordOutcome } from './outcome.js';
import type { InstanceTracker, Tracked } from './tracker.js';
import type { Action, DesiredService, StopReason } from './types.js';

/** After a failed start or an instance that died before it was ever healthy: first 500 ms, doubling to 30 s. */
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export interface ExecutorOptions {
  readonly store: StateStore;
  readonly driver: RuntimeDriver;
  readonly router: TrafficRouter;
  readonly images: ImageCatalog;
  readonly tracker: InstanceTracker;
  readonly host: string;
  readonly portRange: PortRange;
  readonly clock: () => number;
  readonly drainTimeoutMs: number;
  readonly stopGraceMs: number;
  readonly kick: () => void;
  readonly log: (line: string) => void;
  /** Where stateful volumes (`volumes/`) and release config files (`config/`) live. */
  readonly dataDir?: string;
  /** Host-wide port claims shared with other control planes. @default none */
  readonly portClaims?: HostPortClaims;
}

export class Executor {
  readonly #o: ExecutorOptions;
  /** The last route applied per service, as a canonical string, so unchanged routes are not re-sent. */
  readonly #routes = new Map<string, string>();
  readonly #stops = new Set<Promise<void>>();
  readonly #backoff = new Map<string, { until: number; delayMs: number }>();
  /** Exited instances whose remains are being removed. */
  readonly #cleaning = new Set<string>();
  readonly #ports: PortPicker;

  constructor(options: ExecutorOptions) {
    this.#o = options;
    this.#ports = new PortPicker({
      range: options.portRange,
      host: options.host,
      clock: options.clock,
      held: () => options.store.instances.list().map((i) => i.port),
      ...(options.portClaims ? { claims: options.portClaims } : {}),
    });
  }

  /**
   * Reconciles the tracker with the driver and the store: adopts running instances it does not
   * track, finalises records whose instance is gone, and stops instances no record claims.
   */
  async resync(): Promise<void> {
    const { store, driver, tracker } = this.#o;
    const statuses = new Map((await driver.list()).map((s) => [s.id, s]));
    const records = store.instances.list();
    const recorded = new Set(records.map((r) => r.id));
    for (const record of records) {
      const status = statuses.get(record.id);
      const tracked = tracker.get(record.id);
      if (tracked?.stopping) continue;
      // An instance the engine placed on another node (a lost node's) is reached there from now on.
      if (tracked && status?.host !== undefined) tracked.host = status.host;
      if (!status || status.state === 'exited') {
        if (tracked && !status && tracked.state.phase === 'starting') continue; // being started right now
        await this.#finalise(record.id, status, 'exited');
        continue;
      }
      if (!tracked) {
        const spec = releaseSpec(store.releases.get(record.service, record.release)).service;
        const t = tracker.track(record, spec.health, readyOf(spec));
        if (status.host !== undefined) t.host = status.host;
        this.#o.log(`adopted ${t.id} (${t.service} ${t.release}, ${t.state.phase})`);
        // An instance whose start was in flight when the last control plane died has no
        // `instance.started`; this is where the log learns it runs.
        store.events.append({
          kind: 'instance.adopted',
          service: t.service,
          subject: t.id,
          reason: 'adopted',
          message: `${t.id} (${t.release}, ${t.state.phase}) was running and is adopted by this control plane`,
        });
        if (t.state.phase === 'draining' || t.state.phase === 'tainted' || t.state.phase === 'unhealthy') {
          this.#stop(
            t,
            t.state.phase === 'draining' ? 'superseded' : t.state.phase,
            t.state.phase === 'draining',
          );
        }
      }
    }
    for (const status of statuses.values()) {
      if (recorded.has(status.id) || tracker.get(status.id) || this.#cleaning.has(status.id)) continue;
      if (status.state === 'exited') {
        await driver.stop(status.id, { graceMs: 0 }).catch(() => {});
        continue;
      }
      this.#o.log(`stopping ${status.id}: no record claims it (an orphan)`);
      store.events.append({
        kind: 'instance.orphan',
        service: status.service,
        subject: status.id,
        reason: 'orphan',
        message: `${status.id} ran without a record and was stopped`,
      });
      await driver.stop(status.id, { graceMs: this.#o.stopGraceMs }).catch(() => {});
    }
    for (const t of tracker.all()) {
      if (!t.stopping && !recorded.has(t.id) && t.state.phase !== 'starting') tracker.untrack(t.id);
    }
  }

  /** Removes instances whose process exited (as the driver reported them) and records why. */
  async reapExited(exits: readonly InstanceStatus[]): Promise<void> {
    for (const status of exits) {
      const t = this.#o.tracker.get(status.id);
      if (!t || t.stopping) continue;
      await this.#finalise(status.id, status, 'exited');
    }
  }

  /**
   * Carries out one pass's actions. Stops are marked first (so routes keep them at weight 0 while
   * they drain), but their drains begin only once the routes are set: a pass that retires the last
   * serving instances while it routes their successors never leaves a moment with no backend.
   */
  async execute(actions: readonly Action[], desired: readonly DesiredService[]): Promise<void> {
    const now = this.#o.clock();
    let routed!: () => void;
    const gate = new Promise<void>((resolve) => (routed = resolve));
    try {
      for (const a of actions) {
        if (a.type !== 'stop') continue;
        const t = this.#o.tracker.get(a.id);
        if (t && !t.stopping) this.#stop(t, a.reason, a.drain, gate);
      }
      // Routes before starts: a route never names an instance still starting, and an instance that
      // died leaves the route now rather than after its replacement's start returns.
      for (const a of actions) if (a.type === 'route') await this.#route(a.service, a.backends, desired);
    } finally {
      routed();
    }
    const starts = actions.filter((a) => a.type === 'start');
    await Promise.all(
      starts.map(async (a) => {
        const backoff = this.#backoff.get(a.service);
        if (backoff && backoff.until > now) return;
        await this.#start(a.service, a.release.name, a.role, a.ordinal);
      }),
    );
    for (const a of actions) if (a.type === 'rollout') this.#rollout(a);
  }

  /** Waits for the stops in flight. */
  async settle(): Promise<void> {
    while (this.#stops.size) await Promise.allSettled([...this.#stops]);
  }

  /** Stops every instance (draining the healthy ones) and removes every route. */
  async stopAll(): Promise<void> {
    await this.resync().catch(() => {});
    for (const t of this.#o.tracker.all())
      if (!t.stopping) this.#stop(t, 'surplus', t.state.phase === 'healthy');
    await this.settle();
    for (const route of await this.#o.router.routes().catch(() => [])) {
      await this.#o.router.removeRoute(route.service).catch(() => {});
    }
    this.#routes.clear();
  }

  async #start(service: string, release: string, role?: InstanceRole, ordinal?: number): Promise<void> {
    const { store, driver, tracker } = this.#o;
    const rel = store.releases.get(service, release as `r${number}`);
    const spec = releaseSpec(rel);
    const record =
      ordinal === undefined
        ? await this.#record(service, rel.number, role)
        : this.#recordIdentity(service, rel.number, spec.service.port + ordinal, ordinal);
    if (!record) return;
    const tracked = tracker.track(record, spec.service.health, readyOf(spec.service));
    const port = record.port!;
    try {
      const mounts = await instanceMounts(this.#o.dataDir, spec, rel.name, ordinal);
      const started = await driver.start({
        id: record.id,
        service,
        release: rel.name,
        digest: rel.digest as Digest,
        args: spec.process.args,
        env: instanceEnv(spec, record, this.#o.host),
        cwd: spec.process.cwd,
        user: spec.process.user,
        port,
        ...(spec.service.resources.memory !== undefined
          ? { memoryBytes: spec.service.resources.memory }
          : {}),
        ...(spec.service.resources.cpus !== undefined ? { cpus: spec.service.resources.cpus } : {}),
        ...(mounts.length > 0 ? { mounts } : {}),
        ...engineHealthCheck(spec.service.health),
        labels: {
          'kiln.service': service,
          'kiln.release': rel.name,
          ...(role ? { 'kiln.role': role } : {}),
          ...(ordinal === undefined ? {} : { 'kiln.identity': `${service}-${ordinal}` }),
        },
      });
      if (started.host !== undefined) tracked.host = started.host;
      store.events.append({
        kind: 'instance.started',
        service,
        subject: record.id,
        reason: 'start',
        message: `${record.id} started from ${rel.name} (${rel.digest.slice(0, 19)}) on port ${port}`,
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#o.log(`start of ${record.id} failed: ${message}`);
      tracker.untrack(record.id);
      store.instances.update(record.id, { state: 'stopped' });
      store.events.append({
        kind: 'instance.start-failed',
        service,
        subject: record.id,
        reason: 'start-failed',
        message: `${record.id} could not start: ${message}`,
      });
      this.#delay(service);
      await driver.stop(record.id).catch(() => {});
    }
  }

  /**
   * Records a stateful identity's new instance on its fixed port. The store refuses a second live
   * instance of one identity; that, or the port held by another program, backs the service off.
   */
  #recordIdentity(service: string, release: number, port: number, ordinal: number) {
    try {
      return this.#o.store.instances.create({ service, release, port, ordinal });
    } catch (err) {
      this.#o.log(`${service}-${ordinal}: not started: ${err instanceof Error ? err.message : String(err)}`);
      this.#delay(service);
      return undefined;
    }
  }

  /** Records a new instance on a free port ({@link PortPicker}); none free: the service backs off. */
  async #record(service: string, release: number, role?: InstanceRole) {
    const { value, skipped } = await this.#ports.pick((port) =>
      this.#o.store.instances.create({ service, release, port, ...(role ? { role } : {}) }),
    );
    if (skipped.length > 0) {
      this.#o.log(
        `${service}: skipping ${skipped.length} port(s) other programs listen on ` +
          `(${skipped[0]}${skipped.length > 1 ? `–${skipped.at(-1)}` : ''}) for a minute`,
      );
    }
    if (value) return value;
    this.#o.log(`${service}: no free port in ${this.#o.portRange.from}-${this.#o.portRange.to}`);
    this.#delay(service);
    return undefined;
  }

  /**
   * Marks `t` stopping and stops it in the background, once `after` resolves (the pass's routes are
   * set): drain (if asked), stop, record, untrack.
   */
  #stop(
    t: Tracked,
    reason: StopReason | 'unhealthy' | 'tainted',
    drain: boolean,
    after: Promise<void> = Promise.resolve(),
  ): void {
    const { store, driver, router, tracker } = this.#o;
    if (drain) tracker.apply(t, { type: 'drain' });
    const work = (async () => {
      await after;
      if (drain) {
        await router.drain(t.service, t.id, { timeoutMs: this.#o.drainTimeoutMs }).catch((err: unknown) => {
          this.#o.log(`drain of ${t.id} failed: ${err instanceof Error ? err.message : String(err)}`);
        });
      }
      await driver.stop(t.id, { graceMs: this.#o.stopGraceMs });
      const record = store.instances.find(t.id);
      if (record && record.state !== 'stopped') store.instances.update(t.id, { state: 'stopped' });
      store.events.append({
        kind: 'instance.stopped',
        service: t.service,
        subject: t.id,
        reason,
        message: `${t.id} (${t.release}) stopped: ${reason}`,
      });
    })()
      .catch((err: unknown) => {
        this.#o.log(`stop of ${t.id} failed: ${err instanceof Error ? err.message : String(err)}`);
      })
      .finally(() => {
        tracker.untrack(t.id);
        this.#stops.delete(work);
        this.#o.kick();
      });
    t.stopping = work;
    this.#stops.add(work);
  }

  /** An instance whose process is gone: remove what is left of it and record the exit. */
  async #finalise(id: string, status: InstanceStatus | undefined, reason: string): Promise<void> {
    const { store, driver, tracker } = this.#o;
    const t = tracker.get(id);
    if (t) tracker.apply(t, { type: 'exited' });
    if (t && !t.everHealthy) this.#delay(t.service);
    else if (t) this.#backoff.delete(t.service);
    // What is left of the container is removed in the background: the replacement need not wait.
    this.#cleaning.add(id);
    const cleanup = driver
      .stop(id, { graceMs: 0 })
      .catch(() => {})
      .finally(() => {
        this.#cleaning.delete(id);
        this.#stops.delete(cleanup);
      });
    this.#stops.add(cleanup);
    const record = store.instances.find(id);
    if (record && record.state !== 'stopped') {
      store.instances.update(id, { state: 'stopped' });
      const code = status?.exitCode;
      store.events.append({
        kind: 'instance.exited',
        service: record.service,
        subject: id,
        reason,
        message: `${id} exited${code === undefined ? '' : ` with code ${code}`}; a new instance replaces it`,
        data: { exitCode: code ?? null },
      });
    }
    tracker.untrack(id);
  }

  #delay(service: string): void {
    const prev = this.#backoff.get(service);
    const delayMs = prev ? Math.min(BACKOFF_MAX_MS, prev.delayMs * 2) : BACKOFF_MIN_MS;
    this.#backoff.set(service, { until: this.#o.clock() + delayMs, delayMs });
  }

  async #route(
    service: string,
    backends: readonly { readonly id: string; readonly weight: number }[],
    desired: readonly DesiredService[],
  ): Promise<void> {
    const { tracker, router } = this.#o;
    const listenPort = desired.find((d) => d.name === service)?.port;
    if (listenPort === undefined) return;
    const out: Backend[] = [];
    for (const b of backends) {
      const t = tracker.get(b.id);
      if (t) out.push({ id: b.id, host: t.host ?? this.#o.host, port: t.port, weight: b.weight });
    }
    // Instances draining stay in the route at weight 0 until their requests finish.
    for (const t of tracker.all()) {
      if (t.service === service && t.state.phase === 'draining' && !out.some((b) => b.id === t.id)) {
        out.push({ id: t.id, host: t.host ?? this.#o.host, port: t.port, weight: 0 });
      }
    }
    out.sort((a, b) => (a.id < b.id ? -1 : 1));
    const key = JSON.stringify([listenPort, out]);
    if (this.#routes.get(service) === key) return;
    await router.setRoute({ service, listenPort, backends: out });
    this.#routes.set(service, key);
  }

  #rollout(a: Extract<Action, { type: 'rollout' }>): void {
    const message = recordOutcome(this.#o.store, a, this.#o.clock());
    if (message) this.#o.log(`${a.service}: rollout ${a.id} ${message}`);
  }
}
