/**
 * The built-in router inside the current process: one {@link ServiceProxy} per service. The router
 * process (`router-server.ts`) serves one of these behind its admin API; tests and single-process
 * set-ups can use it directly.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { NotFoundError, UnavailableError } from '../errors/index.js';
import { DEFAULT_MAX_RETRIES } from './proxy.js';
import {
  checkServiceName,
  DEFAULT_DRAIN_TIMEOUT_MS,
  validateRoute,
  type BackendMetrics,
  type ServiceTotals,
  type DrainOptions,
  type ServiceRoute,
  type TrafficRouter,
} from './router.js';
import { ServiceProxy } from './service-proxy.js';

/** The address the built-in router serves services on. */
export const DEFAULT_ROUTER_HOST = '127.0.0.1';

/** Options for {@link createLocalRouter}. */
export interface LocalRouterOptions {
  /**
   * Address to serve services on.
   * @default DEFAULT_ROUTER_HOST
   */
  readonly host?: string;
  /**
   * Retries of an idempotent request whose connection failed, each on another backend.
   * @default DEFAULT_MAX_RETRIES
   */
  readonly maxRetries?: number;
  /** Called with every route after each change, before the change is acknowledged (to persist it). */
  readonly onChange?: (routes: ServiceRoute[]) => Promise<void>;
  /** Told about drains and failures; the router logs nothing per request. */
  readonly log?: (line: string) => void;
}

/** A {@link TrafficRouter} serving from this process. */
export class LocalRouter implements TrafficRouter {
  private readonly services = new Map<string, ServiceProxy>();
  private readonly host: string;
  private readonly maxRetries: number;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: LocalRouterOptions = {}) {
    this.host = options.host ?? DEFAULT_ROUTER_HOST;
    this.maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
  }

  async setRoute(input: ServiceRoute): Promise<{ listenPort: number }> {
    const route = validateRoute(input);
    return this.serially(async () => {
      let proxy = this.services.get(route.service);
      if (proxy === undefined) {
        proxy = await ServiceProxy.open(route.service, route.listenPort, this.host, this.maxRetries);
        this.services.set(route.service, proxy);
      } else if (route.listenPort !== 0 && route.listenPort !== proxy.listenPort) {
        await proxy.relisten(route.listenPort);
      }
      proxy.apply(route);
      await this.changed();
      return { listenPort: proxy.listenPort };
    });
  }

  async removeRoute(service: string): Promise<void> {
    checkServiceName(service);
    await this.serially(async () => {
      const proxy = this.services.get(service);
      if (proxy === undefined) return;
      this.services.delete(service);
      proxy.close(false);
      await this.changed();
    });
  }

  async drain(service: string, backendId: string, options: DrainOptions = {}): Promise<void> {
    checkServiceName(service);
    const timeoutMs = options.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    const started = await this.serially(async () => {
      const proxy = this.services.get(service);
      if (proxy === undefined)
        throw new NotFoundError(`draining ${service}/${backendId}: no route for service ${service}`);
      const state = proxy.startDrain(backendId);
      if (state !== undefined) await this.changed();
      return state === undefined ? undefined : { proxy, state };
    });
    if (started === undefined) return;
    const { proxy, state } = started;
    // Other changes go on while this one waits: the queue is held only to change the route.
    const abort = new AbortController();
    const timedOut = await Promise.race([
      state.idle().then(() => false),
      sleep(timeoutMs, true, { signal: abort.signal }).catch(() => false),
    ]);
    abort.abort();
    if (timedOut)
      this.options.log?.(
        `drain ${service}/${backendId}: ${state.inFlight} requests still in flight after ${timeoutMs} ms, cutting them`,
      );
    await this.serially(async () => {
      proxy.finishDrain(state, timedOut);
      if (this.services.get(service) === proxy) await this.changed();
    });
  }

  async routes(): Promise<ServiceRoute[]> {
    return this.currentRoutes();
  }

  async totals(): Promise<ServiceTotals[]> {
    return [...this.services.keys()]
      .sort()
      .map((service) => ({ service, ...this.services.get(service)!.totals }));
  }

  async metrics(): Promise<BackendMetrics[]> {
    return [...this.services.keys()].sort().flatMap((name) => this.services.get(name)!.metrics());
  }

  /** Stops every listener and ends every connection at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.serially(this.closing);
  }

  private readonly closing = async (): Promise<void> => {
    for (const proxy of this.services.values()) proxy.close(true);
    this.services.clear();
  };

  private currentRoutes(): ServiceRoute[] {
    return [...this.services.keys()].sort().map((name) => this.services.get(name)!.route());
  }

  private async changed(): Promise<void> {
    if (this.options.onChange === undefined) return;
    try {
      await this.options.onChange(this.currentRoutes());
    } catch (err) {
      throw new UnavailableError(
        `the route changed but saving it failed (${err instanceof Error ? err.message : String(err)}); fix the cause (disk full? permissions?) and apply the route again`,
        { cause: err },
      );
    }
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = (): Promise<T> => {
      if (this.closed && fn !== this.closing)
        throw new UnavailableError('the router is closed; create a new one');
      return fn();
    };
    const run = this.queue.then(guarded, guarded);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/**
 * Starts a built-in router in this process (no admin API, nothing on disk).
 *
 * @example
 * const router = createLocalRouter();
 * const { listenPort } = await router.setRoute({ service: 'web', listenPort: 0, backends });
 * await router.close();
 */
export function createLocalRouter(options: LocalRouterOptions = {}): LocalRouter {
  return new LocalRouter(options);
}
