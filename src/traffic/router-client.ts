/**
 * The control plane's side of the router process: {@link RouterClient} speaks its admin API, and
 * {@link spawnRouter} / {@link connectRouter} start it detached or adopt the one already running
 * (how the controller finds the router again after its own restart).
 */
import { rm } from 'node:fs/promises';
import {
  ConflictError,
  KilnError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../errors/index.js';
import { readIfExists, readPidFile, stopPid } from './files.js';
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

/** How long an admin request (other than a drain) may take: 10 s. */
export const DEFAULT_ADMIN_TIMEOUT_MS = 10_000;

/** Options for {@link RouterClient}. */
export interface RouterClientOptions {
  /** Base URL of the admin API, `http://127.0.0.1:PORT`. */
  readonly adminUrl: string;
  readonly token: string;
  /** The router's PID, so {@link RouterClient.stop} can end it. */
  readonly pid?: number;
  /** File holding the PID, removed by {@link RouterClient.stop}. */
  readonly pidFile?: string;
  /**
   * Timeout of one admin request; a drain gets its own timeout on top.
   * @default DEFAULT_ADMIN_TIMEOUT_MS
   */
  readonly timeoutMs?: number;
}

interface ErrorBody {
  readonly error?: {
    readonly code?: string;
    readonly message?: string;
    readonly issues?: ValidationError['issues'];
  };
}

function errorFrom(status: number, body: ErrorBody, what: string): KilnError {
  const message = `${what}: ${body.error?.message ?? `HTTP ${status}`}`;
  switch (status) {
    case 400:
      return new ValidationError(
        undefined,
        (body.error?.issues ?? [{ path: '', message: body.error?.message ?? 'invalid' }]).map((i) => ({
          ...i,
          message: `${what}: ${i.message}`,
        })),
      );
    case 401:
      return new ValidationError(undefined, [
        {
          path: 'token',
          message: `${what}: the router rejected the admin token`,
          fix: 'use the token the router was started with (its token file)',
        },
      ]);
    case 404:
      return new NotFoundError(message);
    case 409:
      return new ConflictError(message);
    case 503:
      return new UnavailableError(message);
    default:
      return new KilnError('internal', message);
  }
}

/**
 * A {@link TrafficRouter} for a router process, through its admin API. `close()` releases only
 * this client: the router keeps serving. `stop()` ends the router process itself.
 */
export class RouterClient implements TrafficRouter {
  private readonly timeoutMs: number;

  constructor(readonly options: RouterClientOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
  }

  /** The router's PID, when known. */
  get pid(): number | undefined {
    return this.options.pid;
  }

  async setRoute(route: ServiceRoute): Promise<{ listenPort: number }> {
    const checked = validateRoute(route);
    return (await this.call('PUT', `/v1/routes/${encodeURIComponent(checked.service)}`, checked)) as {
      listenPort: number;
    };
  }

  async removeRoute(service: string): Promise<void> {
    checkServiceName(service);
    await this.call('DELETE', `/v1/routes/${encodeURIComponent(service)}`);
  }

  async drain(service: string, backendId: string, options: DrainOptions = {}): Promise<void> {
    checkServiceName(service);
    const timeoutMs = options.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    const path = `/v1/routes/${encodeURIComponent(service)}/backends/${encodeURIComponent(backendId)}/drain`;
    await this.call('POST', path, { timeoutMs }, this.timeoutMs + timeoutMs);
  }

  async routes(): Promise<ServiceRoute[]> {
    return (await this.call('GET', '/v1/routes')) as ServiceRoute[];
  }

  async totals(): Promise<ServiceTotals[]> {
    return (await this.call('GET', '/v1/totals')) as ServiceTotals[];
  }

  async metrics(): Promise<BackendMetrics[]> {
    return (await this.call('GET', '/v1/metrics')) as BackendMetrics[];
  }

  /** Prometheus text exposition of the router's metrics (`GET /metrics`). */
  async prometheusMetrics(): Promise<string> {
    return (await this.call('GET', '/metrics')) as string;
  }

  /** The router's `/healthz` answer; throws `UnavailableError` when it does not answer. */
  async health(): Promise<{ status: string; pid: number }> {
    return (await this.call('GET', '/healthz')) as { status: string; pid: number };
  }

  /** Releases this client; the router process keeps serving. */
  async close(): Promise<void> {}

  /**
   * Ends the router process by its recorded PID (SIGTERM, then SIGKILL), and removes its pid file.
   * Its routes stay in its state file for the next start.
   */
  async stop(): Promise<void> {
    if (this.options.pid === undefined) {
      throw new ValidationError(undefined, [
        {
          path: 'pid',
          message: 'this client does not know the router PID',
          fix: 'get the client from spawnRouter or connectRouter',
        },
      ]);
    }
    await stopPid(this.options.pid);
    if (
      this.options.pidFile !== undefined &&
      (await readPidFile(this.options.pidFile)) === this.options.pid
    ) {
      await rm(this.options.pidFile, { force: true });
    }
  }

  private async call(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = this.timeoutMs,
  ): Promise<unknown> {
    const what = `router ${method} ${path}`;
    let res: Response;
    try {
      res = await fetch(`${this.options.adminUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.options.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const reason = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new UnavailableError(
        `${what}: the router admin API at ${this.options.adminUrl} did not answer (${reason}); is the router running? start or adopt it with spawnRouter/connectRouter`,
        { cause: err },
      );
    }
    const text = await res.text();
    if (!res.ok) {
      let parsed: ErrorBody = {};
      try {
        parsed = JSON.parse(text) as ErrorBody;
      } catch {
        parsed = { error: { message: text.slice(0, 200) } };
      }
      throw errorFrom(res.status, parsed, what);
    }
    if (text === '') return undefined;
    return (res.headers.get('content-type') ?? '').startsWith('application/json') ? JSON.parse(text) : text;
  }
}

/** What a router process writes to its ready file once it serves. */
export interface RouterReady {
  readonly pid: number;
  readonly adminPort: number;
  /** Address of the admin API. */
  readonly host: string;
}

/** Reads the ready file a router process wrote, or undefined when absent or unreadable. */
export async function readReadyFile(file: string): Promise<RouterReady | undefined> {
  const text = await readIfExists(file);
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as { pid?: unknown; adminPort?: unknown; host?: unknown };
    if (
      Number.isInteger(parsed.pid) &&
      Number.isInteger(parsed.adminPort) &&
      typeof parsed.host === 'string'
    ) {
      return { pid: parsed.pid as number, adminPort: parsed.adminPort as number, host: parsed.host };
    }
  } catch {
    // A torn or foreign file counts as no file; the router writes it atomically.
  }
  return undefined;
}
