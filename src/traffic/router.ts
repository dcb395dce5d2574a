/**
 * The `TrafficRouter` interface the fleet controller drives, its types, and the checks every
 * implementation applies to a route before using it.
 */
import { isIP } from 'node:net';
import { ValidationError, type ValidationIssue } from '../errors/index.js';

/** One instance a service's traffic can go to. */
export interface Backend {
  /** Stable name, unique within the route (an instance id); letters, digits, `.`, `_`, `-`. */
  readonly id: string;
  /** An IP address (instances listen on loopback: `127.0.0.1`). */
  readonly host: string;
  readonly port: number;
  /** Share of new requests, 0..256 like HAProxy's; 0 = no new requests. */
  readonly weight: number;
}

/** A service's whole backend set and the port the router serves it on. */
export interface ServiceRoute {
  /** Letters, digits, `.`, `_`, `-`; starts with a letter or digit. */
  readonly service: string;
  /** Loopback port the router serves this service on; 0 = the router picks (and keeps) one. */
  readonly listenPort: number;
  readonly backends: readonly Backend[];
}

/** Response counts by status class. */
export interface StatusClassCounts {
  readonly '1xx': number;
  readonly '2xx': number;
  readonly '3xx': number;
  readonly '4xx': number;
  readonly '5xx': number;
}

/** A latency histogram: cumulative bucket counts (`le` in milliseconds), like Prometheus's. */
export interface LatencyHistogram {
  /** Cumulative: `count` requests took at most `le` ms. The `+Inf` bucket is `count` below. */
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
  /** Total milliseconds over all requests. */
  readonly sum: number;
  readonly count: number;
  /**
   * The same latencies in 2 % buckets (see `FINE_LATENCY`), as `[upper bound ms, count]` for the
   * non-empty ones: what the canary judge ranks. Absent when the router cannot give it (HAProxy).
   */
  readonly fine?: readonly (readonly [number, number])[];
}

/** What clients of one service saw: every request, and the failed ones (a 5xx or a cut response). */
export interface ServiceTotals {
  readonly service: string;
  readonly requests: number;
  readonly failed: number;
}

/** Counters for one backend of one service since the router started serving it. */
export interface BackendMetrics {
  readonly service: string;
  readonly backendId: string;
  /** Requests sent to this backend (each attempt, retries included). */
  readonly requests: number;
  /** Responses the backend gave, by status class. */
  readonly responses: StatusClassCounts;
  /** Connection or proxy failures on this backend (refused, reset, cut mid-response). */
  readonly errors: number;
  /** Failed attempts on this backend that were retried on another one, unseen by the client. */
  readonly retries: number;
  /** Requests on this backend now. */
  readonly inFlight: number;
  /** Time from sending the request to the backend until its response ended. */
  readonly latencyMs: LatencyHistogram;
}

/** Options for {@link TrafficRouter.drain}. */
export interface DrainOptions {
  /**
   * How long to wait for in-flight requests before cutting them and dropping the backend.
   * @default DEFAULT_DRAIN_TIMEOUT_MS
   */
  readonly timeoutMs?: number;
}

/** How long `drain` waits for in-flight requests before cutting them: 30 s. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

/** The highest backend weight (HAProxy's limit, so both routers accept the same routes). */
export const MAX_BACKEND_WEIGHT = 256;

/**
 * What the fleet controller drives traffic through: the built-in router (in this process with
 * {@link createLocalRouter}, or in its own process through `RouterClient`) or HAProxy
 * (`HaproxyRouter`). Every implementation passes `runTrafficRouterConformance`.
 *
 * @example
 * const { listenPort } = await router.setRoute({ service: 'web', listenPort: 0, backends: [
 *   { id: 'web-1', host: '127.0.0.1', port: 8001, weight: 90 },
 *   { id: 'web-2', host: '127.0.0.1', port: 8002, weight: 10 },
 * ] });
 * await router.drain('web', 'web-1');
 */
export interface TrafficRouter {
  /**
   * Replaces a service's whole backend set and weights atomically (no request ever sees a
   * half-applied set), creating the service's listener if needed. Returns the port it listens on.
   * Throws `ValidationError` for a bad route and `ConflictError` when the port is taken.
   */
  setRoute(route: ServiceRoute): Promise<{ listenPort: number }>;
  /** Stops serving a service (its listener closes; requests in flight finish). Absent is fine. */
  removeRoute(service: string): Promise<void>;
  /**
   * Stops sending new requests to a backend, waits until its in-flight requests finish (or the
   * timeout passes, when they are cut), then drops it from the route. A backend no longer in the
   * route counts as drained, so a controller that restarted can drain again. Throws
   * `NotFoundError` for an unknown service.
   */
  drain(service: string, backendId: string, options?: DrainOptions): Promise<void>;
  /** Every route served, sorted by service, with the listen ports in use. */
  routes(): Promise<ServiceRoute[]>;
  /** Counters per backend, sorted by service then backend id. */
  metrics(): Promise<BackendMetrics[]>;
  /**
   * Per service, the requests clients sent and how many of them failed as the clients saw it
   * (5xx, or cut off), since the service's listener opened. Unlike per-backend counters these
   * survive backends leaving the route, so a window's availability is one subtraction.
   */
  totals(): Promise<ServiceTotals[]>;
  /**
   * Releases this handle. A router running in its own process keeps serving its last
   * configuration (the data plane outlives the control plane); an in-process one stops.
   */
  close(): Promise<void>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Throws a `ValidationError` listing every problem in `name` as a service name. */
export function checkServiceName(name: string): void {
  if (!NAME.test(name)) {
    throw new ValidationError(undefined, [
      {
        path: 'service',
        message: `invalid service name ${JSON.stringify(name)}`,
        fix: 'use 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit',
      },
    ]);
  }
}

function isPort(n: unknown, allowZero: boolean): boolean {
  return Number.isInteger(n) && (n as number) >= (allowZero ? 0 : 1) && (n as number) <= 65535;
}

/**
 * Checks a route from any source (the API, a state file, the controller) and throws one
 * `ValidationError` carrying every problem with its path. Returns the route, typed.
 */
export function validateRoute(route: unknown, file?: string): ServiceRoute {
  const issues: ValidationIssue[] = [];
  const r = (route ?? {}) as Partial<Record<keyof ServiceRoute, unknown>>;
  if (typeof r.service !== 'string' || !NAME.test(r.service)) {
    issues.push({
      path: 'service',
      message: `invalid service name ${JSON.stringify(r.service)}`,
      fix: 'use 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit',
    });
  }
  if (!isPort(r.listenPort, true)) {
    issues.push({
      path: 'listenPort',
      message: `invalid listen port ${JSON.stringify(r.listenPort)}`,
      fix: 'use a port from 1 to 65535, or 0 to let the router pick one',
    });
  }
  if (!Array.isArray(r.backends)) {
    issues.push({ path: 'backends', message: 'expected a list of backends', fix: 'give [] for none' });
  } else {
    const seen = new Set<string>();
    r.backends.forEach((b: Partial<Record<keyof Backend, unknown>> | null, i) => {
      const at = `backends[${i}]`;
      const backend = b ?? {};
      if (typeof backend.id !== 'string' || !NAME.test(backend.id)) {
        issues.push({
          path: `${at}.id`,
          message: `invalid backend id ${JSON.stringify(backend.id)}`,
          fix: 'use 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit',
        });
      } else if (seen.has(backend.id)) {
        issues.push({
          path: `${at}.id`,
          message: `duplicate backend id "${backend.id}"`,
          fix: 'give each backend its own id',
        });
      } else {
        seen.add(backend.id);
      }
      if (typeof backend.host !== 'string' || isIP(backend.host) === 0) {
        issues.push({
          path: `${at}.host`,
          message: `invalid host ${JSON.stringify(backend.host)}`,
          fix: 'use an IP address such as 127.0.0.1',
        });
      }
      if (!isPort(backend.port, false)) {
        issues.push({
          path: `${at}.port`,
          message: `invalid port ${JSON.stringify(backend.port)}`,
          fix: 'use 1 to 65535',
        });
      }
      const w = backend.weight;
      if (!Number.isInteger(w) || (w as number) < 0 || (w as number) > MAX_BACKEND_WEIGHT) {
        issues.push({
          path: `${at}.weight`,
          message: `invalid weight ${JSON.stringify(w)}`,
          fix: `use a whole number from 0 (no new requests) to ${MAX_BACKEND_WEIGHT}`,
        });
      }
    });
  }
  if (issues.length > 0) throw new ValidationError(file, issues);
  return {
    service: r.service as string,
    listenPort: r.listenPort as number,
    backends: (r.backends as Backend[]).map((b) => ({
      id: b.id,
      host: b.host,
      port: b.port,
      weight: b.weight,
    })),
  };
}
