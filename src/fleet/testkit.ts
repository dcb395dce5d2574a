/**
 * Fixtures for the controller's tests (not exported from index.ts, not built): an in-memory
 * router that records every route it is given, a catalog of made-up images, and a harness wiring a
 * controller to the fake runtime driver and an in-memory state store.
 */
import { mulberry32 } from '../analysis/index.js';
import { IntegrityError, NotFoundError } from '../errors/index.js';
import type { Digest } from '../oci/index.js';
import { FakeHost, FakeRuntimeDriver } from '../runtime/index.js';
import { serviceSchema, type ServiceInput, type ServiceSpec } from '../spec/index.js';
import { IN_MEMORY, openState, type StateStore } from '../state/index.js';
import type { BackendMetrics, ServiceRoute, ServiceTotals, TrafficRouter } from '../traffic/index.js';
import { FleetController } from './controller.js';
import type { ImageCatalog } from './images.js';
import { deploy, rollback, type Outcome } from './operations.js';
import type { Prober } from './tracker.js';

/** A router that keeps routes in memory and remembers every one it was given. */
export class RecordingRouter implements TrafficRouter {
  readonly history: ServiceRoute[] = [];
  readonly drained: string[] = [];
  readonly #routes = new Map<string, ServiceRoute>();

  async setRoute(route: ServiceRoute): Promise<{ listenPort: number }> {
    this.#routes.set(route.service, route);
    this.history.push(route);
    return { listenPort: route.listenPort };
  }
  async removeRoute(service: string): Promise<void> {
    this.#routes.delete(service);
  }
  async drain(service: string, backendId: string): Promise<void> {
    this.drained.push(backendId);
    const route = this.#routes.get(service);
    if (route)
      this.#routes.set(service, { ...route, backends: route.backends.filter((b) => b.id !== backendId) });
  }
  async routes(): Promise<ServiceRoute[]> {
    return [...this.#routes.values()];
  }
  /**
   * Simulated traffic: each `metrics()` call sends `perCall` requests across the routed backends by
   * weight; `failRate(id)` of a backend's fail with a 500, and each takes `latencyMs(id)`.
   */
  traffic?: {
    readonly perCall: number;
    readonly failRate: (backendId: string) => number;
    readonly latencyMs: (backendId: string) => number;
  };
  readonly #counters = new Map<string, { requests: number; failures: number; fine: Map<number, number> }>();
  /** The same traffic every run. */
  readonly #random = mulberry32(42);

  /** Client-side totals: every simulated request, failed when its backend failed it. */
  async totals(): Promise<ServiceTotals[]> {
    const out = new Map<string, { requests: number; failed: number }>();
    for (const m of await this.peek()) {
      const t = out.get(m.service) ?? { requests: 0, failed: 0 };
      out.set(m.service, { requests: t.requests + m.requests, failed: t.failed + m.responses['5xx'] });
    }
    return [...out].map(([service, t]) => ({ service, ...t }));
  }

  /** The counters as they are, sending nothing. */
  async peek(): Promise<BackendMetrics[]> {
    const perCall = this.traffic?.perCall;
    if (perCall === undefined) return [];
    this.traffic = { ...this.traffic!, perCall: 0 };
    try {
      return await this.metrics();
    } finally {
      this.traffic = { ...this.traffic, perCall };
    }
  }

  async metrics(): Promise<BackendMetrics[]> {
    const t = this.traffic;
    if (!t) return [];
    const out: BackendMetrics[] = [];
    for (const route of this.#routes.values()) {
      const total = route.backends.reduce((n, b) => n + b.weight, 0);
      for (const b of route.backends) {
        const c = this.#counters.get(b.id) ?? { requests: 0, failures: 0, fine: new Map<number, number>() };
        const n = total ? Math.round((t.perCall * b.weight) / total) : 0;
        for (let k = 0; k < n; k++) {
          c.requests++;
          if (this.#random() < t.failRate(b.id)) c.failures++;
          // Latency varies ±20 % around the backend's own, in 1 % steps.
          const ms = Math.round(t.latencyMs(b.id) * (0.8 + 0.4 * this.#random()) * 100) / 100;
          c.fine.set(ms, (c.fine.get(ms) ?? 0) + 1);
        }
        this.#counters.set(b.id, c);
        out.push({
          service: route.service,
          backendId: b.id,
          requests: c.requests,
          responses: { '1xx': 0, '2xx': c.requests - c.failures, '3xx': 0, '4xx': 0, '5xx': c.failures },
          errors: 0,
          retries: 0,
          inFlight: 0,
          latencyMs: {
            buckets: [],
            sum: 0,
            count: c.requests,
            fine: [...c.fine].sort((x, y) => x[0] - y[0]),
          },
        });
      }
    }
    return out;
  }

  async close(): Promise<void> {}
  route(service: string): ServiceRoute | undefined {
    return this.#routes.get(service);
  }
}

export const DIGEST_A: Digest = `sha256:${'a'.repeat(64)}`;
export const DIGEST_B: Digest = `sha256:${'b'.repeat(64)}`;
/** An image the fake catalog refuses to admit, as it would one no trusted key signed. */
export const DIGEST_UNSIGNED: Digest = `sha256:${'e'.repeat(64)}`;

/** Images `v1` and `v2` (digests A and B), and any digest; all admitted but {@link DIGEST_UNSIGNED}. */
export const fakeCatalog: ImageCatalog = {
  async resolve(ref) {
    const digest =
      ref === 'v1' ? DIGEST_A : ref === 'v2' ? DIGEST_B : ref.startsWith('sha256:') ? ref : undefined;
    if (!digest) throw new NotFoundError(`no image "${ref}"`);
    return {
      digest: digest as `sha256:${string}`,
      process: { args: ['/app'], env: {}, cwd: '/', user: { uid: 0, gid: 0 } },
    };
  },
  async admit(service, ref, digest) {
    if (digest === DIGEST_UNSIGNED) {
      throw new IntegrityError(`${service.name}: refusing to deploy ${ref}: it has no signature`);
    }
    return { keyid: `sha256:${'f'.repeat(64)}`, keySource: 'fake', blobs: 1, hashed: 0 };
  },
  async rootfs() {
    return '/nonexistent';
  },
};

/** A controller over a fake host, with a prober that asks `healthy(id)` (default: running means healthy). */
export class Harness {
  readonly host = new FakeHost();
  readonly store: StateStore;
  readonly router = new RecordingRouter();
  driver: FakeRuntimeDriver;
  controller: FleetController;
  readonly services = new Map<string, ServiceSpec>();
  /** Instances that fail their health checks. */
  readonly sick = new Set<string>();
  /** Digests whose instances never pass a health check. */
  readonly brokenDigests = new Set<string>();

  constructor(store: StateStore = openState(IN_MEMORY)) {
    this.store = store;
    this.driver = new FakeRuntimeDriver({ host: this.host });
    this.controller = this.#controller();
  }

  /** Stateful identities (`db-2`) whose `ready` check (an exec of `ready`) does not pass. */
  readonly unready = new Set<string>();
  /** Where stateful volumes and config files go; set it before the controller starts. */
  dataDir: string | undefined;

  readonly prober: Prober = async (target, health) => {
    const inst = this.host.find(target.id);
    if (!inst || inst.state !== 'running' || this.sick.has(target.id)) return false;
    if (health.exec?.[0] === 'ready') return !this.unready.has(inst.spec.labels?.['kiln.identity'] ?? '');
    return !this.brokenDigests.has(inst.spec.digest);
  };

  #controller(): FleetController {
    return new FleetController({
      store: this.store,
      driver: this.driver,
      router: this.router,
      images: fakeCatalog,
      prober: this.prober,
      resyncMs: 100,
      drainTimeoutMs: 100,
      stopGraceMs: 10,
      ...(this.dataDir !== undefined ? { dataDir: this.dataDir } : {}),
    });
  }

  /** A new controller (after setting `dataDir`, say), before `controller.start()`. */
  async renew(): Promise<void> {
    await this.controller.close();
    this.controller = this.#controller();
  }

  declare(input: Partial<ServiceInput> & { name: string }): ServiceSpec {
    const spec = serviceSchema.parse({
      image: 'v1',
      port: 8080,
      replicas: 3,
      health: { tcp: true, interval: '20ms', timeout: '10ms', threshold: 2 },
      ...input,
    });
    this.services.set(spec.name, spec);
    return spec;
  }

  /** What deploy, rollback and the rollout commands need. */
  ctx() {
    return {
      store: this.store,
      images: fakeCatalog,
      clock: Date.now,
      declared: async (name: string) => {
        const spec = this.services.get(name);
        if (!spec) throw new NotFoundError(`service ${name} is not declared`);
        return spec;
      },
      kick: () => this.controller.kick(),
    };
  }

  deploy(
    service: string,
    options: { image?: string; strategy?: 'rolling' | 'bluegreen' | 'canary' } = {},
  ): Promise<Outcome> {
    return deploy(this.ctx(), { service, actor: 'test', ...options });
  }

  rollback(service: string, to?: string): Promise<Outcome> {
    return rollback(this.ctx(), { service, actor: 'test', ...(to ? { to } : {}) });
  }

  /** Simulates a control-plane restart: a new driver and controller over the same host and store. */
  async restart(): Promise<void> {
    await this.controller.close();
    await this.driver.close();
    this.driver = new FakeRuntimeDriver({ host: this.host });
    this.controller = this.#controller();
    await this.controller.start();
  }

  /** Polls `check` until it is true (or fails after `timeoutMs`). */
  async until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  phase(rolloutId: string): string {
    return this.store.rollouts.get(rolloutId).phase;
  }

  live(service: string): { id: string; release: number; state: string }[] {
    return this.store.instances
      .list({ service })
      .map((i) => ({ id: i.id, release: i.release, state: i.state }));
  }

  async close(): Promise<void> {
    await this.controller.close();
    await this.driver.close();
    this.store.close();
  }
}
