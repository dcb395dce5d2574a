/**
 * The fleet controller: the loop that makes what runs match what was released. Each pass observes
 * (the tracker's view, resynced from the runtime driver every few seconds and after every exit),
 * derives desired state from the store, asks the pure planner for actions and carries them out.
 * Starts and route changes finish within the pass; stops drain in the background. An exit reported
 * by the driver starts a pass at once, so a killed instance is replaced within milliseconds.
 */
import { KilnError } from '../errors/index.js';
import type { InstanceStatus, RuntimeDriver } from '../runtime/index.js';
import type { PortRange, StateStore } from '../state/index.js';
import type { BackendMetrics, ServiceTotals, TrafficRouter } from '../traffic/index.js';
import { analyseCanaries } from './canary.js';
import { desiredOf, viewOf } from './desired.js';
import { Executor } from './executor.js';
import type { HostPortClaims } from './host-ports.js';
import type { ImageCatalog } from './images.js';
import { plan } from './planner.js';
import { InstanceTracker, liveProber, type Prober, type Tracked } from './tracker.js';
import type { DesiredService, InstancePhase } from './types.js';

/** Instance ports come from here unless configured: below Linux's ephemeral range. */
export const DEFAULT_PORT_RANGE: PortRange = { from: 20000, to: 29999 };
/** How often the controller re-reads the runtime's instances to catch what it was not told: 2 s. */
export const DEFAULT_RESYNC_MS = 2_000;
/** The longest the loop sleeps between passes: 500 ms. */
export const IDLE_PASS_MS = 500;

/** Options of {@link FleetController}. */
export interface ControllerOptions {
  readonly store: StateStore;
  readonly driver: RuntimeDriver;
  readonly router: TrafficRouter;
  readonly images: ImageCatalog;
  /** Where instances listen and the router serves. @default '127.0.0.1' */
  readonly host?: string;
  /** @default DEFAULT_PORT_RANGE */
  readonly portRange?: PortRange;
  /** @default Date.now */
  readonly clock?: () => number;
  /** @default liveProber (HTTP, TCP or exec) */
  readonly prober?: Prober;
  /** @default DEFAULT_RESYNC_MS */
  readonly resyncMs?: number;
  /** How long a stopped instance's in-flight requests may take. @default 10 s */
  readonly drainTimeoutMs?: number;
  /** SIGTERM to SIGKILL when stopping an instance. @default 5 s */
  readonly stopGraceMs?: number;
  /** Diagnostics (one line each). @default nothing */
  readonly log?: (line: string) => void;
  /**
   * Where stateful volumes and release config files live (the control plane's `.kiln` home).
   * @default none: a service with volumes or config files cannot start
   */
  readonly dataDir?: string;
  /** Host-wide port claims shared with the other control planes here; given up on close. @default none */
  readonly portClaims?: HostPortClaims;
}

/**
 * Runs the loop. `start()` adopts what runs (instances started by an earlier control plane) and
 * begins; `kick()` asks for a pass now; `close()` stops the loop, leaving instances running.
 *
 * @example
 * const controller = new FleetController({ store, driver, router, images });
 * await controller.start();
 * controller.kick(); // after recording a rollout
 */
export class FleetController {
  readonly #options: ControllerOptions;
  readonly #clock: () => number;
  readonly #tracker: InstanceTracker;
  readonly #executor: Executor;
  #lastResync = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #passing: Promise<void> | undefined;
  #again = false;
  #closed = false;
  #unsubscribe: (() => void) | undefined;
  readonly #exited = new Map<string, InstanceStatus>();
  readonly #idle = new Set<() => void>();

  constructor(options: ControllerOptions) {
    this.#options = options;
    this.#clock = options.clock ?? Date.now;
    const host = options.host ?? '127.0.0.1';
    this.#tracker = new InstanceTracker({
      store: options.store,
      host,
      clock: this.#clock,
      prober: options.prober ?? liveProber,
      exec: (id) => async (args, timeoutMs) => options.driver.exec(id, args, { timeoutMs }),
      changed: (t, from, phaseChanged) => this.#changed(t, from, phaseChanged),
    });
    this.#executor = new Executor({
      store: options.store,
      driver: options.driver,
      router: options.router,
      images: options.images,
      tracker: this.#tracker,
      host,
      portRange: options.portRange ?? DEFAULT_PORT_RANGE,
      clock: this.#clock,
      drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
      stopGraceMs: options.stopGraceMs ?? 5_000,
      kick: () => this.kick(),
      log: options.log ?? (() => {}),
      ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
      ...(options.portClaims ? { portClaims: options.portClaims } : {}),
    });
  }

  /**
   * Taints instance `id`: the cause is recorded (the first one stays) with a `drift.detected`
   * event, and with `replace` the instance enters phase `tainted`, so the next pass replaces it.
   * An instance already stopped is left alone.
   */
  taint(id: string, reason: string, message: string, replace: boolean): void {
    const { store } = this.#options;
    const record = store.instances.find(id);
    if (!record || record.state === 'stopped') return;
    if (record.taint === undefined) {
      store.instances.update(id, { taint: { reason, message } });
      store.events.append({ kind: 'drift.detected', service: record.service, subject: id, reason, message });
    }
    const t = this.#tracker.get(id);
    if (replace && t && !t.stopping) this.#tracker.apply(t, { type: 'tainted', reason });
  }

  /** The router's per-backend counters, for `kiln status`, the API and the canary judge. */
  metrics(): Promise<BackendMetrics[]> {
    return this.#options.router.metrics();
  }

  /** The router's per-service client totals, for chaos's availability figures. */
  totals(): Promise<ServiceTotals[]> {
    return this.#options.router.totals();
  }

  /** Adopts the instances and routes there are, then reconciles continuously. */
  async start(): Promise<void> {
    this.#unsubscribe = this.#options.driver.onExit((status) => {
      this.#exited.set(status.id, status);
      this.kick();
    });
    await this.pass();
  }

  /** Asks for a pass as soon as the current one (if any) ends. */
  kick(): void {
    if (this.#closed) return;
    if (this.#passing) {
      this.#again = true;
      return;
    }
    this.#schedule(0);
  }

  /** Resolves once a pass has run after this call (for callers that need the effect, and tests). */
  async settle(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#idle.add(resolve);
      this.kick();
    });
  }

  /** One reconcile: observe, plan, act. Passes never overlap. */
  async pass(): Promise<void> {
    if (this.#passing) {
      this.#again = true;
      return this.#passing;
    }
    clearTimeout(this.#timer);
    this.#passing = this.#pass().finally(() => {
      this.#passing = undefined;
      for (const resolve of this.#idle) resolve();
      this.#idle.clear();
    });
    await this.#passing;
  }

  /** Stops the loop; instances keep running and the router keeps serving (they are adopted later). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#unsubscribe?.();
    await this.#passing?.catch(() => {});
    await this.#executor.settle();
    // What still runs listens on its port, which the bind check sees; claims only guard a start.
    this.#options.portClaims?.releaseAllBut(new Set());
  }

  /**
   * Stops every instance of every service (draining them first) and forgets the routes: what
   * `kiln up` does on Ctrl-C. The loop is closed first so nothing is restarted.
   */
  async stopAll(): Promise<void> {
    await this.close();
    await this.#executor.stopAll();
  }

  async #pass(): Promise<void> {
    try {
      const now = this.#clock();
      if (now - this.#lastResync >= (this.#options.resyncMs ?? DEFAULT_RESYNC_MS)) {
        this.#lastResync = now;
        await this.#executor.resync();
      }
      await this.#executor.reapExited(this.#takeExited());
      const desired = this.#desired(now);
      const actions = plan(desired, this.#tracker.observed(), now);
      await this.#executor.execute(actions, desired);
      const analyst = {
        store: this.#options.store,
        metrics: () => this.#options.router.metrics(),
        clock: this.#clock,
        log: this.#options.log ?? (() => {}),
      };
      if (await analyseCanaries(analyst, desired, this.#tracker.observed())) this.#again = true;
    } catch (err) {
      this.#options.log?.(`controller: pass failed: ${err instanceof Error ? err.message : String(err)}`);
      if (!(err instanceof KilnError)) this.#options.log?.(err instanceof Error ? (err.stack ?? '') : '');
    } finally {
      const nextProbe = this.#tracker.probeDue();
      if (!this.#closed) {
        const wait = this.#again ? 0 : Math.max(0, Math.min(IDLE_PASS_MS, nextProbe - this.#clock()));
        this.#again = false;
        this.#schedule(wait);
      }
    }
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.pass(), ms);
  }

  #takeExited(): InstanceStatus[] {
    const ids = [...this.#exited.values()];
    this.#exited.clear();
    return ids;
  }

  #desired(now: number): DesiredService[] {
    const out: DesiredService[] = [];
    for (const service of this.#options.store.services.list()) {
      const desired = desiredOf(viewOf(this.#options.store, service.name, now));
      if (desired) out.push(desired);
    }
    return out;
  }

  #changed(t: Tracked, from: InstancePhase, phaseChanged = true): void {
    if (!phaseChanged) {
      this.kick();
      return;
    }
    this.#options.store.events.append({
      kind: `instance.${t.state.phase}`,
      service: t.service,
      subject: t.id,
      reason: `${from}->${t.state.phase}`,
      message: `${t.id} (${t.release}) is ${t.state.phase}`,
    });
    this.kick();
  }
}
