/**
 * An in-memory {@link ControlPlane} for tests of the API, the client and the CLI: seed it with
 * services, releases and instances, script how a rollout moves, inject faults, and assert the
 * exact ordered list of calls it received.
 */
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../errors/index.js';
import { TokenAdmin, type TokenStore } from './tokens.js';
import type {
  AuditJson,
  BackendMetricsJson,
  ChaosReportJson,
  ChaosRunJson,
  ChaosRunRequest,
  ControlPlane,
  DeployRequest,
  DeployResultJson,
  EventJson,
  ExecEndRequest,
  ExecRequest,
  ExecSessionJson,
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

/** One call the fake received, with its arguments. */
export interface PlaneCall {
  readonly method: keyof ControlPlane;
  readonly args: readonly unknown[];
}

/** The time every record the fake makes carries. */
export const FAKE_TIME = '2026-01-01T00:00:00.000Z';
/** The digest of releases made without an image digest. */
export const FAKE_DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

/**
 * A control plane in memory. `deploy` makes release r(N+1) current and a `progressing` rollout;
 * `rollback` goes back to `to` (or the release before the current), instantly when the service's
 * `standby` is that release. `rollout(id)` plays the steps given to {@link script}, one per call,
 * the last one repeating. Tokens are the server's own state, not the fleet's: given a `store` (the
 * one whose `tokens` the server verifies), the token methods manage it as `FleetPlane` does, so a
 * token created through the API works at once.
 *
 * @example
 * const plane = new FakeControlPlane({ store });
 * plane.seedService('web');
 * plane.failNext('status', new UnavailableError('the state store is locked'));
 */
export class FakeControlPlane implements ControlPlane {
  /** Every call, in order. */
  readonly calls: PlaneCall[] = [];
  readonly services = new Map<string, ServiceStatusJson>();
  readonly releaseLog = new Map<string, ReleaseJson[]>();
  readonly rolloutLog = new Map<string, RolloutJson>();
  instanceList: InstanceJson[] = [];
  eventLog: EventJson[] = [];
  readonly logText = new Map<string, string>();
  private readonly faults = new Map<keyof ControlPlane, unknown>();
  private readonly scripts = new Map<string, Partial<RolloutJson>[]>();
  private rolloutCount = 0;
  private readonly tokenAdmin: TokenAdmin | undefined;

  constructor(options: { readonly store?: TokenStore } = {}) {
    this.tokenAdmin = options.store === undefined ? undefined : new TokenAdmin(options.store);
  }

  /** Declares service `name` (port 8080 + n, 2 replicas, rolling) unless `status` says otherwise. */
  seedService(name: string, status: Partial<ServiceStatusJson> = {}): ServiceStatusJson {
    const s: ServiceStatusJson = {
      name,
      url: `http://127.0.0.1:${8080 + this.services.size}/`,
      port: 8080 + this.services.size,
      replicas: 2,
      strategy: 'rolling',
      tier: 0,
      instances: 0,
      healthy: 0,
      ...status,
    };
    this.services.set(name, s);
    return s;
  }

  /** Makes the next call of `method` throw `err` (once). */
  failNext(method: keyof ControlPlane, err: unknown): void {
    this.faults.set(method, err);
  }

  /** What successive `rollout(id)` calls answer, each step merged over the stored rollout. */
  script(id: string, steps: readonly Partial<RolloutJson>[]): void {
    this.scripts.set(id, [...steps]);
  }

  async status(service?: string): Promise<ServiceStatusJson[]> {
    this.record('status', service);
    if (service !== undefined) return [this.service(service)];
    return [...this.services.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async releases(service: string): Promise<ReleaseJson[]> {
    this.record('releases', service);
    this.service(service);
    return [...(this.releaseLog.get(service) ?? [])].reverse();
  }

  async instances(service?: string): Promise<InstanceJson[]> {
    this.record('instances', service);
    return this.instanceList.filter((i) => service === undefined || i.service === service);
  }

  async logs(instance: string, tailLines?: number): Promise<string> {
    this.record('logs', instance, tailLines);
    const text = this.logText.get(instance);
    if (text === undefined) throw new NotFoundError(`no instance ${instance}`);
    if (tailLines === undefined) return text;
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return tailLines === 0 ? '' : lines.slice(-tailLines).join('\n') + '\n';
  }

  async deploy(service: string, request: DeployRequest, actor: string): Promise<DeployResultJson> {
    this.record('deploy', service, request, actor);
    const s = this.service(service);
    const list = this.releaseLog.get(service) ?? [];
    const from = list.find((r) => r.current);
    const release: ReleaseJson = {
      service,
      name: `r${list.length + 1}`,
      digest: request.image?.startsWith('sha256:') ? request.image : FAKE_DIGEST,
      configHash: FAKE_DIGEST,
      createdAt: FAKE_TIME,
      createdBy: actor,
      reason: request.reason ?? '',
      current: true,
    };
    this.releaseLog.set(service, [...list.map((r) => ({ ...r, current: false })), release]);
    return {
      release,
      rollout: this.startRollout(s, from?.name, release.name, request.strategy ?? s.strategy),
    };
  }

  async rollback(service: string, request: RollbackRequest, actor: string): Promise<DeployResultJson> {
    this.record('rollback', service, request, actor);
    const s = this.service(service);
    const list = this.releaseLog.get(service) ?? [];
    const current = list.findIndex((r) => r.current);
    const target = request.to === undefined ? list[current - 1] : list.find((r) => r.name === request.to);
    if (target === undefined) {
      throw new ValidationError(undefined, [
        { path: 'to', message: `${service} has no release ${request.to ?? 'before the current one'}` },
      ]);
    }
    this.releaseLog.set(
      service,
      list.map((r) => ({ ...r, current: r.name === target.name })),
    );
    const instant = s.standby?.release === target.name;
    const rollout = this.startRollout(s, list[current]?.name, target.name, s.strategy, instant);
    return { release: { ...target, current: true }, rollout, ...(instant ? { instant } : {}) };
  }

  async rollout(id: string): Promise<RolloutJson> {
    this.record('rollout', id);
    const stored = this.rolloutLog.get(id);
    if (stored === undefined) throw new NotFoundError(`no rollout ${id}`);
    const steps = this.scripts.get(id);
    const step = steps && steps.length > 1 ? steps.shift() : steps?.[0];
    const next = { ...stored, ...step };
    this.rolloutLog.set(id, next);
    return next;
  }

  /** Rollout details the test sets, by service. */
  readonly rolloutDetails = new Map<string, RolloutDetailJson>();

  async serviceRollout(service: string): Promise<RolloutDetailJson> {
    this.record('serviceRollout', service);
    const detail = this.rolloutDetails.get(service);
    if (detail === undefined) throw new NotFoundError(`${service} has no rollouts yet`);
    return detail;
  }

  async controlRollout(
    service: string,
    command: RolloutCommandJson,
    request: RolloutCommandRequest,
    actor: string,
  ): Promise<RolloutDetailJson> {
    this.record('controlRollout', service, command, request, actor);
    const detail = this.rolloutDetails.get(service);
    if (detail === undefined || detail.done) throw new ConflictError(`${service} has no rollout in progress`);
    const phase = command === 'pause' ? 'paused' : command === 'abort' ? 'rolled-back' : 'progressing';
    const next = { ...detail, phase, done: command === 'abort' } as RolloutDetailJson;
    this.rolloutDetails.set(service, next);
    return next;
  }

  /** Chaos runs the test sets or `chaosRun` made, newest first, and the report `chaosReport` gives. */
  readonly chaosLog: ChaosRunJson[] = [];
  chaosReportValue: ChaosReportJson | undefined;

  async chaosRun(request: ChaosRunRequest, actor: string): Promise<ChaosRunJson> {
    this.record('chaosRun', request, actor);
    const run: ChaosRunJson = {
      id: `chaos-${this.chaosLog.length + 1}`,
      ...(request.service ? { service: request.service } : {}),
      mode: request.mode ?? 'kill',
      kills: request.kills ?? 1,
      intervalMs: 2000,
      dryRun: request.dryRun ?? false,
      phase: 'running',
      message: 'terminating',
      createdBy: actor,
      startedAt: new Date().toISOString(),
    };
    this.chaosLog.unshift(run);
    return run;
  }

  async chaosRuns(limit?: number): Promise<ChaosRunJson[]> {
    this.record('chaosRuns', limit);
    return this.chaosLog.slice(0, limit ?? 20);
  }

  async chaosReport(runId?: string): Promise<ChaosReportJson> {
    this.record('chaosReport', runId);
    if (!this.chaosReportValue) throw new NotFoundError('no chaos run yet');
    return this.chaosReportValue;
  }

  /** Rings the test sets or `startRing` made, newest first. */
  readonly ringLog: RingJson[] = [];

  async startRing(request: RingRequest, actor: string): Promise<RingJson> {
    this.record('startRing', request, actor);
    const now = new Date().toISOString();
    const ring: RingJson = {
      id: `ring-${this.ringLog.length + 1}`,
      base: request.base,
      baseDigest: request.baseDigest,
      phase: 'running',
      message: `releasing base ${request.base}`,
      createdBy: actor,
      createdAt: now,
      updatedAt: now,
      waves: [{ tier: 1, phase: 'pending', services: request.targets.map((t) => ({ ...t })) }],
    };
    this.ringLog.unshift(ring);
    return ring;
  }

  async rings(limit?: number): Promise<RingJson[]> {
    this.record('rings', limit);
    return this.ringLog.slice(0, limit ?? 20);
  }

  /** Counters the test sets in `metricsLog`. */
  readonly metricsLog: BackendMetricsJson[] = [];

  async metrics(service?: string): Promise<BackendMetricsJson[]> {
    this.record('metrics', service);
    return this.metricsLog.filter((m) => service === undefined || m.service === service);
  }

  async events(since: number, service?: string, limit?: number): Promise<EventJson[]> {
    this.record('events', since, service, limit);
    const matching = this.eventLog.filter(
      (e) => e.seq > since && (service === undefined || e.service === service),
    );
    return limit === undefined ? matching : matching.slice(0, limit);
  }

  /** Audit records the test sets, oldest first (the order the log keeps). */
  auditLog: AuditJson[] = [];

  async audit(limit?: number): Promise<AuditJson[]> {
    this.record('audit', limit);
    return this.auditLog.slice(-(limit ?? 100)).reverse();
  }

  /** Images the test sets. */
  imageList: ImageJson[] = [];

  async images(): Promise<ImageJson[]> {
    this.record('images');
    return [...this.imageList];
  }

  /** What `verify`, the exec calls and `securityReport` answer; the test sets them. */
  verifyValue: VerifyJson = { checkedAt: FAKE_TIME, instances: [], clean: 0, drifted: 0, unverified: 0 };
  execValue: ExecSessionJson | undefined;
  reportValue: SecurityReportJson = { generatedAt: FAKE_TIME, taintedSince: FAKE_TIME, services: [] };

  async verify(request: VerifyRequest): Promise<VerifyJson> {
    this.record('verify', request);
    return this.verifyValue;
  }
  async execOpen(instance: string, request: ExecRequest, actor: string): Promise<ExecSessionJson> {
    this.record('execOpen', instance, request, actor);
    return this.exec(instance);
  }
  async execHeartbeat(session: string, actor: string): Promise<ExecSessionJson> {
    this.record('execHeartbeat', session, actor);
    return this.exec(session);
  }
  async execEnd(session: string, request: ExecEndRequest, actor: string): Promise<ExecSessionJson> {
    this.record('execEnd', session, request, actor);
    return { ...this.exec(session), state: 'ended', ...request };
  }
  async securityReport(): Promise<SecurityReportJson> {
    this.record('securityReport');
    return this.reportValue;
  }
  private exec(what: string): ExecSessionJson {
    if (this.execValue === undefined) throw new NotFoundError(`no exec session or instance ${what}`);
    return this.execValue;
  }

  async tokens(): Promise<TokenJson[]> {
    this.record('tokens');
    return this.tokenStore().list();
  }

  async createToken(request: TokenRequest, actor: string): Promise<TokenCreatedJson> {
    this.record('createToken', request, actor);
    return this.tokenStore().create(request, actor);
  }

  async revokeToken(name: string, actor: string): Promise<TokenJson> {
    this.record('revokeToken', name, actor);
    return this.tokenStore().revoke(name, actor);
  }

  private tokenStore(): TokenAdmin {
    if (this.tokenAdmin === undefined) {
      throw new UnavailableError('this FakeControlPlane has no token store: create it with { store }');
    }
    return this.tokenAdmin;
  }

  private startRollout(
    s: ServiceStatusJson,
    from: string | undefined,
    to: string,
    strategy: RolloutJson['strategy'],
    instant = false,
  ): RolloutJson {
    const rollout: RolloutJson = {
      id: `rollout-${++this.rolloutCount}`,
      service: s.name,
      ...(from === undefined ? {} : { from }),
      to,
      strategy,
      phase: instant ? 'succeeded' : 'progressing',
      done: instant,
      message: instant ? `traffic switched back to standby ${to}` : `starting ${to}`,
      createdAt: FAKE_TIME,
      updatedAt: FAKE_TIME,
      ...(instant ? { finishedAt: FAKE_TIME } : {}),
    };
    this.rolloutLog.set(rollout.id, rollout);
    this.services.set(s.name, { ...s, release: to, rollout });
    return rollout;
  }

  private service(name: string): ServiceStatusJson {
    const s = this.services.get(name);
    if (s === undefined) throw new NotFoundError(`no service ${name} is declared`);
    return s;
  }

  private record(method: keyof ControlPlane, ...args: unknown[]): void {
    while (args.length > 0 && args.at(-1) === undefined) args.pop();
    this.calls.push({ method, args });
    const fault = this.faults.get(method);
    if (fault !== undefined) {
      this.faults.delete(method);
      throw fault;
    }
  }
}
