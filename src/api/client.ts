/**
 * The one typed client of the HTTP API, shared by the CLI verbs (and later the dashboard). Answers
 * are the JSON shapes of types.ts; error answers become kiln errors again, so `exit.ts` maps a
 * failed call to the same exit code as the same failure in process.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KilnError, UnavailableError } from '../errors/index.js';
import { nodeTransport, type HttpTransport } from '../oci/index.js';
import { errorFrom, unreachable } from './client-errors.js';
import type {
  AuditJson,
  BackendMetricsJson,
  ChaosReportJson,
  ChaosRunJson,
  ChaosRunRequest,
  DeployRequest,
  DeployResultJson,
  EventJson,
  ExecEndRequest,
  ExecRequest,
  ExecSessionJson,
  HealthJson,
  ImageJson,
  InstanceJson,
  ReleaseJson,
  RingJson,
  RingRequest,
  RollbackRequest,
  RolloutCommandJson,
  RolloutCommandRequest,
  RolloutDetailJson,
  RolloutJson,
  SecurityReportJson,
  ServiceStatusJson,
  TokenCreatedJson,
  TokenJson,
  TokenRequest,
  VerifyJson,
  VerifyRequest,
} from './types.js';

/** How long one request may take before the server counts as unreachable. */
export const DEFAULT_API_TIMEOUT_MS = 30_000;
/** How often {@link ApiClient.waitForRollout} asks by default. */
export const DEFAULT_ROLLOUT_POLL_MS = 500;
/** How long {@link ApiClient.waitForRollout} waits by default. */
export const DEFAULT_ROLLOUT_TIMEOUT_MS = 10 * 60_000;

/** What {@link ApiClient} needs. */
export interface ApiClientOptions {
  /** The server's base URL, such as `http://127.0.0.1:7070`. */
  readonly url: string;
  /** A token secret, `kiln_…`. */
  readonly token: string;
  /** @default DEFAULT_API_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /**
   * PEM certificate(s) trusted for an `https://` URL on top of the system's roots: the server's
   * self-signed certificate or the CA that issued it. @default the system's roots only
   */
  readonly ca?: Buffer;
}

/** Options for {@link ApiClient.waitForRollout}. */
export interface WaitOptions {
  /** @default DEFAULT_ROLLOUT_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /** @default DEFAULT_ROLLOUT_POLL_MS */
  readonly pollMs?: number;
  /** Told each time the rollout's phase, message or update time changes, first read included. */
  readonly onUpdate?: (rollout: RolloutJson) => void;
}

type Query = Readonly<Record<string, string | number | undefined>>;

/**
 * The control plane over HTTP: the {@link ControlPlane} operations (without the actor, which is the
 * token's name) plus `health` and `waitForRollout`.
 *
 * @example
 * const api = new ApiClient(await readConnection(home));
 * const { rollout } = await api.deploy('web', { reason: 'new login page' });
 * const final = await api.waitForRollout(rollout.id, { onUpdate: (r) => console.log(r.message) });
 */
export class ApiClient {
  /** The base URL, without a trailing slash. */
  readonly url: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly ca: Buffer | undefined;
  private https: HttpTransport | undefined;

  constructor(options: ApiClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_API_TIMEOUT_MS;
    this.ca = options.ca;
  }

  /** `GET /v1/health` (any live token). */
  health(): Promise<HealthJson> {
    return this.json('GET', '/v1/health');
  }

  /** Every declared service, or only `service`. */
  status(service?: string): Promise<ServiceStatusJson[]> {
    return this.json('GET', '/v1/status', { query: { service } });
  }

  /** A service's releases, newest first. */
  releases(service: string): Promise<ReleaseJson[]> {
    return this.json('GET', `/v1/services/${encodeURIComponent(service)}/releases`);
  }

  /** Live instances, of every service or only `service`. */
  instances(service?: string): Promise<InstanceJson[]> {
    return this.json('GET', '/v1/instances', { query: { service } });
  }

  /** The last `tail` lines of an instance's output (all when absent). */
  async logs(instance: string, tail?: number): Promise<string> {
    const res = await this.send('GET', `/v1/instances/${encodeURIComponent(instance)}/logs`, {
      query: { tail },
    });
    return res.text();
  }

  /** Makes a release of `service` and starts rolling it out. */
  deploy(service: string, request: DeployRequest = {}): Promise<DeployResultJson> {
    return this.json('POST', `/v1/services/${encodeURIComponent(service)}/deploy`, { body: request });
  }

  /** Goes back to an earlier release of `service` (the one before the current by default). */
  rollback(service: string, request: RollbackRequest = {}): Promise<DeployResultJson> {
    return this.json('POST', `/v1/services/${encodeURIComponent(service)}/rollback`, { body: request });
  }

  /** One rollout. */
  rollout(id: string): Promise<RolloutJson> {
    return this.json('GET', `/v1/rollouts/${encodeURIComponent(id)}`);
  }

  /** Starts terminating instances on demand; the run goes on in the control plane. */
  chaosRun(request: ChaosRunRequest = {}): Promise<ChaosRunJson> {
    return this.json('POST', '/v1/chaos/runs', { body: request });
  }

  /** Chaos runs, newest first. */
  chaosRuns(limit?: number): Promise<ChaosRunJson[]> {
    return this.json('GET', '/v1/chaos/runs', { query: { limit } });
  }

  /** MTTR and availability of a chaos run (the latest unless named). */
  chaosReport(run?: string): Promise<ChaosReportJson> {
    return this.json('GET', '/v1/chaos/report', { query: { run } });
  }

  /** Starts releasing a new base image to the services rebaked on it, in waves by tier. */
  startRing(request: RingRequest): Promise<RingJson> {
    return this.json('POST', '/v1/rings', { body: request });
  }

  /** Base-image rings, newest first. */
  rings(limit?: number): Promise<RingJson[]> {
    return this.json('GET', '/v1/rings', { query: { limit } });
  }

  /** The service's newest rollout in detail: conditions and, for a canary, its steps and every look. */
  serviceRollout(service: string): Promise<RolloutDetailJson> {
    return this.json('GET', `/v1/services/${encodeURIComponent(service)}/rollout`);
  }

  /** Promotes (`full`: to 100 %), aborts, pauses or resumes the service's canary rollout. */
  controlRollout(
    service: string,
    command: RolloutCommandJson,
    request: RolloutCommandRequest = {},
  ): Promise<RolloutDetailJson> {
    return this.json(
      'POST',
      `/v1/services/${encodeURIComponent(service)}/rollout/${encodeURIComponent(command)}`,
      { body: request },
    );
  }

  /** The router's per-instance counters (requests, status classes, errors, latency), of one service or all. */
  metrics(service?: string): Promise<BackendMetricsJson[]> {
    return this.json('GET', '/v1/metrics', { query: { service } });
  }

  /** Events after sequence number `since`, oldest first. */
  events(since = 0, service?: string, limit?: number): Promise<EventJson[]> {
    return this.json('GET', '/v1/events', { query: { since, service, limit } });
  }

  /** The last `limit` (default 100) audit records, newest first. */
  audit(limit?: number): Promise<AuditJson[]> {
    return this.json('GET', '/v1/audit', { query: { limit } });
  }

  /** The images of the control plane's store, with SBOM packages and signature. */
  images(): Promise<ImageJson[]> {
    return this.json('GET', '/v1/images');
  }

  /** Every API token, revoked ones included, oldest first (admin). */
  tokens(): Promise<TokenJson[]> {
    return this.json('GET', '/v1/tokens');
  }

  /** Creates a token (admin); the answer holds its secret, shown this once. */
  createToken(request: TokenRequest): Promise<TokenCreatedJson> {
    return this.json('POST', '/v1/tokens', { body: request });
  }

  /** Revokes the live token named `name` (admin); the last live admin token is refused (409). */
  revokeToken(name: string): Promise<TokenJson> {
    return this.json('POST', `/v1/tokens/${encodeURIComponent(name)}/revoke`, { body: {} });
  }

  /** A full check of live instances (one, a service's, or all) against their releases. */
  verify(request: VerifyRequest = {}): Promise<VerifyJson> {
    return this.json('GET', '/v1/verify', { query: { ...request } });
  }

  /** Opens an audited exec session in `instance` (which taints it); run the answer's `argv`. */
  execOpen(instance: string, request: ExecRequest): Promise<ExecSessionJson> {
    return this.json('POST', `/v1/instances/${encodeURIComponent(instance)}/exec`, { body: request });
  }

  /** Keeps exec session `session` open. */
  execHeartbeat(session: string): Promise<ExecSessionJson> {
    return this.json('POST', `/v1/exec/${encodeURIComponent(session)}/heartbeat`, { body: {} });
  }

  /** Ends exec session `session`; its instance's grace period starts. */
  execEnd(session: string, request: ExecEndRequest = {}): Promise<ExecSessionJson> {
    return this.json('POST', `/v1/exec/${encodeURIComponent(session)}/end`, { body: request });
  }

  /** Every service's running images (signer, SBOM) and its instances tainted in the last day. */
  securityReport(): Promise<SecurityReportJson> {
    return this.json('GET', '/v1/audit/report');
  }

  /**
   * Polls rollout `id` until it is `done` and returns it. A server that cannot be reached for a
   * moment (restarting) is asked again; at the deadline a KilnError (`runtime`) says where it stood.
   */
  async waitForRollout(id: string, options: WaitOptions = {}): Promise<RolloutJson> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_ROLLOUT_TIMEOUT_MS;
    const pollMs = options.pollMs ?? DEFAULT_ROLLOUT_POLL_MS;
    const deadline = Date.now() + timeoutMs;
    let last: RolloutJson | undefined;
    let lastError: unknown;
    for (;;) {
      try {
        const rollout = await this.rollout(id);
        lastError = undefined;
        if (
          last === undefined ||
          rollout.phase !== last.phase ||
          rollout.message !== last.message ||
          rollout.updatedAt !== last.updatedAt
        ) {
          options.onUpdate?.(rollout);
        }
        last = rollout;
        if (rollout.done) return rollout;
      } catch (err) {
        if (!(err instanceof UnavailableError)) throw err;
        lastError = err;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        if (last === undefined && lastError !== undefined) throw lastError;
        const where = last ? `${last.phase}${last.message ? ` (${last.message})` : ''}` : 'unknown';
        throw new KilnError(
          'runtime',
          `rollout ${id} is not done after ${Math.round(timeoutMs / 1000)} s; it is ${where}. ` +
            `It goes on without us: follow it with \`kiln status ${last?.service ?? ''}\``.trimEnd(),
        );
      }
      await sleep(Math.min(pollMs, left));
    }
  }

  private async json<T>(
    method: string,
    path: string,
    options: { query?: Query; body?: unknown } = {},
  ): Promise<T> {
    const res = await this.send(method, path, options);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new UnavailableError(
        `${this.url} answered ${method} ${path} with something that is not JSON: is it a kiln server?`,
        { cause: err },
      );
    }
  }

  private async send(
    method: string,
    path: string,
    options: { query?: Query; body?: unknown } = {},
  ): Promise<Response> {
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) search.set(k, String(v));
    const target = `${this.url}${path}${search.size > 0 ? `?${search.toString()}` : ''}`;
    const headers = {
      authorization: `Bearer ${this.token}`,
      accept: 'application/json',
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
    };
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    let res: Response;
    try {
      res = target.startsWith('https:')
        ? await this.sendHttps(method, target, headers, body)
        : await fetch(target, {
            method,
            headers,
            ...(body === undefined ? {} : { body }),
            signal: AbortSignal.timeout(this.timeoutMs),
          });
    } catch (err) {
      throw unreachable(this.url, this.timeoutMs, err);
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    throw errorFrom(this.url, res.status, text);
  }

  /**
   * HTTPS over node:https, which (unlike `fetch`) can trust {@link ApiClientOptions.ca} on top of
   * the system's roots without a dependency. Idle keep-alive sockets do not hold the process open.
   */
  private async sendHttps(
    method: string,
    target: string,
    headers: Readonly<Record<string, string>>,
    body: string | undefined,
  ): Promise<Response> {
    this.https ??= nodeTransport({
      ...(this.ca ? { ca: this.ca } : {}),
      timeoutMs: this.timeoutMs,
    }).transport;
    const res = await this.https({
      method,
      url: new URL(target),
      headers,
      ...(body === undefined ? {} : { body: Buffer.from(body) }),
    });
    const empty = res.status === 204 || res.status === 205 || res.status === 304;
    return new Response(empty ? null : res.body, { status: res.status, headers: res.headers });
  }
}
