/**
 * `HaproxyRouter`: the `TrafficRouter` interface over Debian's HAProxy (2.6), run in master-worker
 * mode from files in one directory. Route changes go through the runtime API (no reload); only
 * adding or removing a service, moving its port or outgrowing its slots reloads, via the master CLI.
 */
import { mkdir, rm } from 'node:fs/promises';
import { ConflictError, NotFoundError, UnavailableError } from '../errors/index.js';
import { isProcessAlive, readPidFile, stopPid, writeFileAtomic } from './files.js';
import {
  applySlot,
  checkHaproxyInstalled,
  haproxyFiles,
  launchHaproxy,
  loadHaproxyState,
  reloadHaproxy,
  type HaproxyFiles,
} from './haproxy-process.js';
import {
  accepts,
  freePort,
  haproxyCommand,
  parseFrontendStat,
  parseShowStat,
  waitFor,
} from './haproxy-runtime.js';
import {
  add,
  delta,
  fillSlots,
  halfName,
  metricsOf,
  prune,
  renderHaproxyConfig,
  renderMap,
  routeOf,
  slotName,
  slotsFor,
  ZERO_COUNTERS,
  type HaproxyService,
  type HaproxyState,
  type Slot,
  type SlotStat,
} from './haproxy-state.js';
import { DEFAULT_MAX_RETRIES } from './proxy.js';
import {
  checkServiceName,
  DEFAULT_DRAIN_TIMEOUT_MS,
  validateRoute,
  type Backend,
  type BackendMetrics,
  type ServiceTotals,
  type DrainOptions,
  type ServiceRoute,
  type TrafficRouter,
} from './router.js';

/** How long a reload (or a start) may take before it counts as failed: 10 s. */
export const DEFAULT_HAPROXY_RELOAD_TIMEOUT_MS = 10_000;
/** How often a drain checks whether the backend's requests have finished: 50 ms. */
export const HAPROXY_DRAIN_POLL_MS = 50;

/** Options for {@link startHaproxyRouter}. */
export interface HaproxyRouterOptions {
  /** Directory for `haproxy.cfg`, the map, sockets, pid file and `state.json`; created 0700. */
  readonly dir: string;
  /**
   * The HAProxy executable.
   * @default 'haproxy' (from PATH)
   */
  readonly haproxy?: string;
  /**
   * Connection retries (`retries`), each redispatched to another server.
   * @default DEFAULT_MAX_RETRIES
   */
  readonly maxRetries?: number;
  /**
   * How long a start or reload may take.
   * @default DEFAULT_HAPROXY_RELOAD_TIMEOUT_MS
   */
  readonly reloadTimeoutMs?: number;
}

/**
 * A {@link TrafficRouter} over HAProxy. `close()` releases only this handle: HAProxy keeps serving
 * (adopt it again with {@link startHaproxyRouter}); `stop()` ends it by its recorded PID.
 */
export class HaproxyRouter implements TrafficRouter {
  private readonly files: HaproxyFiles;
  private readonly haproxy: string;
  private readonly maxRetries: number;
  private readonly reloadTimeoutMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly draining = new Set<string>();

  private constructor(
    options: HaproxyRouterOptions,
    private state: HaproxyState,
    private masterPid: number,
  ) {
    this.files = haproxyFiles(options.dir);
    this.haproxy = options.haproxy ?? 'haproxy';
    this.maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.reloadTimeoutMs = options.reloadTimeoutMs ?? DEFAULT_HAPROXY_RELOAD_TIMEOUT_MS;
  }

  /** @internal Use {@link startHaproxyRouter}. */
  static async start(options: HaproxyRouterOptions): Promise<HaproxyRouter> {
    const files = haproxyFiles(options.dir);
    await checkHaproxyInstalled(options.haproxy ?? 'haproxy');
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    const saved = await loadHaproxyState(files.state);
    const pid = await readPidFile(files.pid);
    if (pid !== undefined && (await isProcessAlive(pid, 'haproxy'))) {
      const adopted = new HaproxyRouter(options, saved, pid);
      await adopted.serially(() => adopted.resync());
      return adopted;
    }
    // A fresh HAProxy counts from zero: what the last one counted is gone with it.
    const router = new HaproxyRouter(options, { ...saved, services: saved.services.map(resetBaselines) }, 0);
    await router.writeFiles(router.state);
    router.masterPid = await launchHaproxy(files, router.haproxy, router.reloadTimeoutMs);
    return router;
  }

  /** PID of HAProxy's master process. */
  get pid(): number {
    return this.masterPid;
  }

  async setRoute(input: ServiceRoute): Promise<{ listenPort: number }> {
    const route = validateRoute(input);
    return this.serially(async () => {
      for (const key of this.draining) if (key.startsWith(`${route.service}/`)) this.draining.delete(key);
      const old = this.state.services.find((s) => s.service === route.service);
      const samePort = route.listenPort === 0 || route.listenPort === old?.listenPort;
      if (old !== undefined && samePort && route.backends.length <= old.halves[0].length) {
        await this.switchHalves(old, route.backends);
        return { listenPort: old.listenPort };
      }
      const port = route.listenPort !== 0 ? route.listenPort : (old?.listenPort ?? (await freePort()));
      if (port !== old?.listenPort && (await accepts(port))) {
        throw new ConflictError(
          `serving ${route.service}: port 127.0.0.1:${port} is taken; choose another listenPort, or 0`,
        );
      }
      const slots = slotsFor(route.backends.length, old?.halves[0].length);
      const active = old?.active ?? 0;
      const halves: [Slot[], Slot[]] = [
        fillSlots([], slots, () => ZERO_COUNTERS),
        fillSlots([], slots, () => ZERO_COUNTERS),
      ];
      halves[active] = fillSlots(route.backends, slots, () => ZERO_COUNTERS);
      const service: HaproxyService = { service: route.service, listenPort: port, active, halves };
      await this.reload((services) => [...services.filter((s) => s.service !== route.service), service]);
      if (!(await waitFor(() => accepts(port), this.reloadTimeoutMs))) {
        throw new UnavailableError(`HAProxy reloaded but does not accept connections on 127.0.0.1:${port}`);
      }
      return { listenPort: port };
    });
  }

  async removeRoute(service: string): Promise<void> {
    checkServiceName(service);
    await this.serially(async () => {
      const old = this.state.services.find((s) => s.service === service);
      if (old === undefined) return;
      await this.reload((services) => services.filter((s) => s.service !== service));
      // The old worker lets go of the port when it gets the reload's signal; wait for that.
      await waitFor(async () => !(await accepts(old.listenPort)), this.reloadTimeoutMs);
    });
  }

  async drain(service: string, backendId: string, options: DrainOptions = {}): Promise<void> {
    checkServiceName(service);
    const key = `${service}/${backendId}`;
    const found = await this.serially(async () => {
      const s = this.state.services.find((x) => x.service === service);
      if (s === undefined) throw new NotFoundError(`draining ${key}: no route for service ${service}`);
      const i = s.halves[s.active].findIndex((slot) => slot.backend?.id === backendId);
      if (i === -1) return false;
      await this.command(`set server ${halfName(service, s.active)}/${slotName(i)} weight 0`);
      await this.update(s, s.active, i, (slot) => ({ ...slot, backend: { ...slot.backend!, weight: 0 } }));
      this.draining.add(key);
      return true;
    });
    if (!found) return;
    const inFlight = async (): Promise<{ names: string[]; count: number }> => {
      const stats = await this.stats();
      const s = this.state.services.find((x) => x.service === service);
      const names: string[] = [];
      let count = 0;
      for (const h of [0, 1] as const) {
        s?.halves[h].forEach((slot, i) => {
          if (slot.backend?.id !== backendId) return;
          const name = `${halfName(service, h)}/${slotName(i)}`;
          names.push(name);
          count += stats.get(name)?.inFlight ?? 0;
        });
      }
      return { names, count };
    };
    const idle = await waitFor(
      async () => (await inFlight()).count === 0,
      options.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
      HAPROXY_DRAIN_POLL_MS,
    );
    // In maintenance first: otherwise `retry-on empty-response` sends the cut request straight back.
    if (!idle) {
      for (const name of (await inFlight()).names) {
        await this.command(`set server ${name} state maint`);
        await this.command(`shutdown sessions server ${name}`);
      }
    }
    await this.serially(async () => {
      if (!this.draining.delete(key)) return;
      const s = this.state.services.find((x) => x.service === service);
      const i = s?.halves[s.active].findIndex((slot) => slot.backend?.id === backendId) ?? -1;
      if (s === undefined || i === -1) return;
      const name = `${halfName(service, s.active)}/${slotName(i)}`;
      const stat = (await this.stats()).get(name);
      await this.command(`set server ${name} state maint`);
      this.state = fold(this.state, service, backendId, stat, s.halves[s.active][i]!);
      await this.update(s, s.active, i, () => ({ backend: null, baseline: stat?.counters ?? ZERO_COUNTERS }));
    });
  }

  async routes(): Promise<ServiceRoute[]> {
    return [...this.state.services].sort((a, b) => (a.service < b.service ? -1 : 1)).map(routeOf);
  }

  /**
   * From the frontends' counters: `req_tot` less `ereq` (a connection that closed before sending a
   * whole request is no request), and `hrsp_5xx` (HAProxy counts a cut response as a 5xx there).
   */
  async totals(): Promise<ServiceTotals[]> {
    const fronts = parseFrontendStat(await this.command('show stat -1 1 -1'));
    return [...this.state.services]
      .map((s) => s.service)
      .sort()
      .map((service) => ({ service, requests: 0, failed: 0, ...fronts.get(`fe_${service}`) }));
  }

  async metrics(): Promise<BackendMetrics[]> {
    const stats = await this.stats();
    return metricsOf(this.state, (service, h, i) => stats.get(`${halfName(service, h)}/${slotName(i)}`));
  }

  /** Releases this handle; HAProxy keeps serving. */
  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
  }

  /** Ends HAProxy by its master's recorded PID (SIGTERM, then SIGKILL) and removes the pid file. */
  async stop(): Promise<void> {
    await this.close();
    if (this.masterPid > 0) await stopPid(this.masterPid);
    await rm(this.files.pid, { force: true });
  }

  /** Fills the idle half with `backends` through the runtime API, then flips the map to it. */
  private async switchHalves(s: HaproxyService, backends: readonly Backend[]): Promise<void> {
    const idle = (1 - s.active) as 0 | 1;
    const be = halfName(s.service, idle);
    const stats = await this.stats();
    let state = this.state;
    const slots = s.halves[idle].map((old, i) => {
      const stat = stats.get(`${be}/${slotName(i)}`);
      if (old.backend !== null) state = fold(state, s.service, old.backend.id, stat, old);
      return { backend: backends[i] ?? null, baseline: stat?.counters ?? ZERO_COUNTERS };
    });
    for (const [i, slot] of slots.entries())
      await applySlot(this.files.statsSocket, `${be}/${slotName(i)}`, slot.backend);
    const halves = (idle === 0 ? [slots, s.halves[1]] : [s.halves[0], slots]) as HaproxyService['halves'];
    const next = { ...s, active: idle, halves };
    await this.commit({ ...state, services: this.state.services.map((x) => (x === s ? next : x)) });
    await this.command(`set map ${this.files.map} ${s.service} ${be}`);
  }

  /** Rewrites the files for a new set of services and reloads HAProxy through the master CLI. */
  private async reload(change: (services: readonly HaproxyService[]) => HaproxyService[]): Promise<void> {
    const previous = this.state;
    // The new worker counts from zero: fold what every slot counted so far, then start over.
    const stats = await this.stats();
    let folded = previous;
    for (const s of previous.services) {
      for (const h of [0, 1] as const) {
        s.halves[h].forEach((slot, i) => {
          const stat = stats.get(`${halfName(s.service, h)}/${slotName(i)}`);
          if (slot.backend !== null) folded = fold(folded, s.service, slot.backend.id, stat, slot);
        });
      }
    }
    const next: HaproxyState = { ...folded, services: change(folded.services.map(resetBaselines)) };
    await this.writeFiles(next);
    try {
      await reloadHaproxy(this.files, this.haproxy, this.reloadTimeoutMs);
    } catch (err) {
      await this.writeFiles(previous);
      throw err;
    }
    this.state = prune(next);
  }

  /** Applies the saved state to a HAProxy that was running before this handle (adoption). */
  private async resync(): Promise<void> {
    for (const s of this.state.services) {
      for (const h of [0, 1] as const) {
        for (const [i, slot] of s.halves[h].entries()) {
          await applySlot(this.files.statsSocket, `${halfName(s.service, h)}/${slotName(i)}`, slot.backend);
        }
      }
      await haproxyCommand(
        this.files.statsSocket,
        `set map ${this.files.map} ${s.service} ${halfName(s.service, s.active)}`,
      );
    }
  }

  private async update(s: HaproxyService, h: 0 | 1, i: number, f: (slot: Slot) => Slot): Promise<void> {
    const current = this.state.services.find((x) => x.service === s.service)!;
    const half = current.halves[h].map((slot, j) => (j === i ? f(slot) : slot));
    const halves = (
      h === 0 ? [half, current.halves[1]] : [current.halves[0], half]
    ) as HaproxyService['halves'];
    await this.commit({
      ...this.state,
      services: this.state.services.map((x) => (x === current ? { ...x, halves } : x)),
    });
  }

  /** Makes `state` current (dropping counters of backends in no slot) and writes it out. */
  private async commit(state: HaproxyState): Promise<void> {
    this.state = prune(state);
    await this.writeFiles(this.state);
  }

  private async writeFiles(state: HaproxyState): Promise<void> {
    const paths = {
      statsSocket: this.files.statsSocket,
      mapFile: this.files.map,
      idleSocket: this.files.idleSocket,
    };
    await writeFileAtomic(this.files.state, `${JSON.stringify(state)}\n`);
    await writeFileAtomic(this.files.map, renderMap(state), 0o644);
    await writeFileAtomic(this.files.config, renderHaproxyConfig(state, paths, this.maxRetries), 0o644);
  }

  private command(command: string): Promise<string> {
    return haproxyCommand(this.files.statsSocket, command);
  }

  private async stats(): Promise<Map<string, SlotStat>> {
    return parseShowStat(await this.command('show stat -1 4 -1'));
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.queue.then(fn, fn);
    this.queue = result.catch(() => undefined);
    return result;
  }
}

function resetBaselines(s: HaproxyService): HaproxyService {
  const zero = (half: readonly Slot[]): Slot[] => half.map((slot) => ({ ...slot, baseline: ZERO_COUNTERS }));
  return { ...s, halves: [zero(s.halves[0]), zero(s.halves[1])] };
}

/** Adds what a slot counted for `backendId` since it got it to the ended tenures. */
function fold(
  state: HaproxyState,
  service: string,
  backendId: string,
  stat: SlotStat | undefined,
  slot: Slot,
): HaproxyState {
  if (stat === undefined) return state;
  const key = `${service}/${backendId}`;
  const sum = add(state.accumulated[key] ?? ZERO_COUNTERS, delta(stat.counters, slot.baseline));
  return { ...state, accumulated: { ...state.accumulated, [key]: sum } };
}

/**
 * Starts HAProxy for the routes kept in `options.dir`, or adopts the one already running there
 * (re-applying the kept routes through the runtime API). Throws `UnavailableError` naming
 * `apt-get install haproxy` when HAProxy is missing.
 *
 * @example
 * const router = await startHaproxyRouter({ dir: '.kiln/haproxy' });
 * await router.setRoute({ service: 'web', listenPort: 8080, backends });
 */
export function startHaproxyRouter(options: HaproxyRouterOptions): Promise<HaproxyRouter> {
  return HaproxyRouter.start(options);
}
