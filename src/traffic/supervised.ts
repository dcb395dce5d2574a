/**
 * The router process, supervised by the control plane that uses it. The router outlives the
 * control plane by design; the reverse must hold too: when the router process dies (a crash, an
 * OOM kill, a stray `kill -9`), the control plane starts a new one, which restores every route
 * from its state file, and goes on through it. A dead router is noticed by a check every
 * {@link DEFAULT_ROUTER_CHECK_MS} and by any call that fails while its process is gone.
 */
import { isProcessAlive } from './files.js';
import type { RouterClient } from './router-client.js';
import { connectRouter, spawnRouter, type SpawnRouterOptions } from './router-spawn.js';
import type { BackendMetrics, DrainOptions, ServiceRoute, ServiceTotals, TrafficRouter } from './router.js';

/** How often the supervisor checks that the router process still runs: 1 s. */
export const DEFAULT_ROUTER_CHECK_MS = 1_000;

/** Options of {@link SupervisedRouter.start}. */
export interface SupervisedRouterOptions extends SpawnRouterOptions {
  /** @default DEFAULT_ROUTER_CHECK_MS */
  readonly checkEveryMs?: number;
  /** Told when the router is started again. @default nothing */
  readonly log?: (line: string) => void;
}

/**
 * A {@link TrafficRouter} over the router process of `dir`: adopts the one that runs or starts
 * one, and starts it again whenever it dies.
 *
 * @example
 * const router = await SupervisedRouter.start({ dir: '.kiln/router' });
 * await router.setRoute({ service: 'web', listenPort: 8080, backends });
 * await router.close(); // the router keeps serving
 */
export class SupervisedRouter implements TrafficRouter {
  readonly #options: SupervisedRouterOptions;
  #client: RouterClient;
  #restarting: Promise<RouterClient> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #restarts = 0;

  private constructor(options: SupervisedRouterOptions, client: RouterClient) {
    this.#options = options;
    this.#client = client;
    this.#timer = setInterval(
      () => void this.check().catch(() => {}),
      options.checkEveryMs ?? DEFAULT_ROUTER_CHECK_MS,
    );
    this.#timer.unref();
  }

  /** Adopts the router running for `options.dir`, or starts one; then watches it. */
  static async start(options: SupervisedRouterOptions): Promise<SupervisedRouter> {
    const client = await connectRouter(options).catch(() => spawnRouter(options));
    return new SupervisedRouter(options, client);
  }

  /** The router process's PID now. */
  get pid(): number | undefined {
    return this.#client.pid;
  }

  /** How many times the router was started again. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The client of the router process now. */
  get client(): RouterClient {
    return this.#client;
  }

  /** Starts the router again if its process is gone; resolves once one runs. */
  async check(): Promise<void> {
    if (!(await this.#alive())) await this.#restart();
  }

  setRoute(route: ServiceRoute): Promise<{ listenPort: number }> {
    return this.#call((c) => c.setRoute(route));
  }

  removeRoute(service: string): Promise<void> {
    return this.#call((c) => c.removeRoute(service));
  }

  drain(service: string, backendId: string, options?: DrainOptions): Promise<void> {
    return this.#call((c) => c.drain(service, backendId, options));
  }

  routes(): Promise<ServiceRoute[]> {
    return this.#call((c) => c.routes());
  }

  metrics(): Promise<BackendMetrics[]> {
    return this.#call((c) => c.metrics());
  }

  totals(): Promise<ServiceTotals[]> {
    return this.#call((c) => c.totals());
  }

  /** Stops watching; the router keeps serving its last configuration. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#client.close();
  }

  /** Stops watching and ends the router process. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#restarting?.catch(() => {});
    await this.#client.stop();
  }

  async #alive(): Promise<boolean> {
    const pid = this.#client.pid;
    return pid !== undefined && (await isProcessAlive(pid, 'router-main'));
  }

  /** A call that fails because the process is gone is made again on a new router. */
  async #call<T>(fn: (client: RouterClient) => Promise<T>): Promise<T> {
    try {
      return await fn(this.#client);
    } catch (err) {
      if (await this.#alive()) throw err;
      return fn(await this.#restart());
    }
  }

  #restart(): Promise<RouterClient> {
    this.#restarting ??= (async () => {
      const dead = this.#client.pid;
      const client = await connectRouter(this.#options).catch(() => spawnRouter(this.#options));
      this.#client = client;
      this.#restarts++;
      this.#options.log?.(
        `router (pid ${dead}) was gone; started it again (pid ${client.pid}) with its last routes`,
      );
      return client;
    })().finally(() => (this.#restarting = undefined));
    return this.#restarting;
  }
}
