/**
 * The control plane the API serves, over the fleet controller and the state store. Records become
 * the documented JSON shapes of `types.ts` in json.ts, and nowhere else.
 */
import { NotFoundError } from '../errors/index.js';
import {
  controlRollout,
  deploy,
  rollback,
  RingRunner,
  startRing,
  viewOf,
  type FleetController,
  type ImageCatalog,
  type OperationsContext,
  type Outcome,
} from '../fleet/index.js';
import { ChaosMonkey } from '../chaos/index.js';
import type { RuntimeDriver } from '../runtime/index.js';
import { parseDuration, type ServiceSpec } from '../spec/index.js';
import type { StateStore } from '../state/index.js';
import { audited } from './audit.js';
import { UNAVAILABLE_SECURITY } from './plane-known.js';
import { imagesJson, type ImageSource } from './images.js';
import { TokenAdmin } from './tokens.js';
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
  SecurityPlane,
  SecurityReportJson,
  ServiceStatusJson,
  TokenCreatedJson,
  TokenJson,
  TokenRequest,
  VerifyJson,
  VerifyRequest,
} from './types.js';
import {
  chaosReportJson,
  chaosRunJson,
  instanceJson,
  releaseJson,
  ringJson,
  rolloutDetailJson,
  rolloutJson,
  serviceStatusJson,
} from './json.js';

/** Time between kills of `kiln chaos run` unless `--interval` says. */
export const DEFAULT_CHAOS_INTERVAL = '2s';

/** Options of {@link FleetPlane}. */
export interface FleetPlaneOptions {
  readonly store: StateStore;
  readonly controller: FleetController;
  readonly driver: RuntimeDriver;
  readonly images: ImageCatalog;
  /** The service as declared now in the project's config. */
  readonly declared: (service: string) => Promise<ServiceSpec>;
  /** Host the router serves services on, for URLs. @default '127.0.0.1' */
  readonly host?: string;
  /** @default Date.now */
  readonly clock?: () => number;
  /** Diagnostics, one line each. @default nothing */
  readonly log?: (line: string) => void;
  /** The image store `images()` lists (`homePaths(home).store` and `.keys`). @default none: no images */
  readonly imageSource?: ImageSource;
  /** Verify, exec and the security report (`KnownStatePlane`). @default none: those calls answer 503 */
  readonly security?: SecurityPlane;
}

/** The {@link ControlPlane} of one project: its store, controller and runtime. */
export class FleetPlane implements ControlPlane {
  readonly #o: FleetPlaneOptions;
  readonly #clock: () => number;
  readonly #rings: RingRunner;
  readonly #monkey: ChaosMonkey;
  readonly #tokens: TokenAdmin;
  readonly #security: SecurityPlane;

  constructor(options: FleetPlaneOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
    this.#tokens = new TokenAdmin(options.store);
    this.#security = options.security ?? UNAVAILABLE_SECURITY;
    this.#rings = new RingRunner(this.#ctx(), options.log);
    this.#monkey = new ChaosMonkey({
      store: options.store,
      driver: options.driver,
      totals: () => options.controller.totals(),
      clock: this.#clock,
      ...(options.log ? { log: options.log } : {}),
    });
  }

  /** Starts moving base-image rings on (the running one, after a restart, included) and the chaos schedule. */
  start(): void {
    this.#rings.start();
    this.#monkey.start();
  }

  async close(): Promise<void> {
    await this.#rings.close();
    await this.#monkey.close();
  }

  async chaosRun(request: ChaosRunRequest, actor: string): Promise<ChaosRunJson> {
    const target = request.service ?? '(opted-in services)';
    const run = await this.#audited(
      actor,
      'chaos.run',
      target,
      async () =>
        this.#monkey.run({
          ...(request.service !== undefined ? { service: request.service } : {}),
          kills: request.kills ?? 1,
          intervalMs: parseDuration(request.interval ?? DEFAULT_CHAOS_INTERVAL)!,
          mode: request.mode ?? 'kill',
          dryRun: request.dryRun ?? false,
          actor,
        }),
      (r) => `run ${r.id}: ${r.message}`,
    );
    return chaosRunJson(run);
  }

  async chaosRuns(limit?: number): Promise<ChaosRunJson[]> {
    return this.#o.store.chaos.listRuns(limit ?? 20).map(chaosRunJson);
  }

  async chaosReport(runId?: string): Promise<ChaosReportJson> {
    const { store } = this.#o;
    const run = runId !== undefined ? store.chaos.getRun(runId) : store.chaos.listRuns(1)[0];
    const terminations = run
      ? store.chaos.terminations({ runId: run.id, limit: run.kills + 100 })
      : store.chaos.terminations({ since: new Date(this.#clock() - 86_400_000).toISOString() });
    return chaosReportJson(run, terminations);
  }

  async startRing(request: RingRequest, actor: string): Promise<RingJson> {
    const ring = await this.#audited(
      actor,
      'ring.start',
      request.base,
      async () => {
        for (const t of request.targets)
          if (!this.#o.store.services.find(t.service)) throw this.#unknown(t.service);
        return startRing(this.#ctx(), { ...request, actor });
      },
      (r) => `ring ${r.id}: ${r.message}`,
    );
    return ringJson(ring);
  }

  async rings(limit?: number): Promise<RingJson[]> {
    return this.#o.store.rings.list(limit).map(ringJson);
  }

  async status(service?: string): Promise<ServiceStatusJson[]> {
    const { store } = this.#o;
    const names = store.services.list().map((s) => s.name);
    if (service !== undefined && !names.includes(service)) throw this.#unknown(service);
    return names
      .filter((n) => service === undefined || n === service)
      .map((n) => serviceStatusJson(store, n, this.#clock(), this.#o.host));
  }

  async releases(service: string): Promise<ReleaseJson[]> {
    const { store } = this.#o;
    if (!store.services.find(service)) throw this.#unknown(service);
    const current = viewOf(store, service, this.#clock()).current?.number;
    return store.releases
      .list(service)
      .reverse()
      .map((r) => releaseJson(r, r.number === current));
  }

  async instances(service?: string): Promise<InstanceJson[]> {
    const pids = new Map((await this.#o.driver.list()).map((s) => [s.id, s.pid]));
    return this.#o.store.instances
      .list(service === undefined ? {} : { service })
      .map((i) => instanceJson(i, pids.get(i.id)))
      .sort((a, b) => (a.service === b.service ? (a.id < b.id ? -1 : 1) : a.service < b.service ? -1 : 1));
  }

  async logs(instance: string, tailLines?: number): Promise<string> {
    this.#o.store.instances.get(instance);
    return this.#o.driver.logs(instance, tailLines === undefined ? {} : { tailLines });
  }

  async deploy(service: string, request: DeployRequest, actor: string): Promise<DeployResultJson> {
    return this.#audited(
      actor,
      'deploy',
      service,
      async () =>
        this.#outcome(
          await deploy(this.#ctx(), {
            service,
            actor,
            ...(request.image !== undefined ? { image: request.image } : {}),
            ...(request.strategy !== undefined ? { strategy: request.strategy } : {}),
            ...(request.reason !== undefined ? { reason: request.reason } : {}),
          }),
        ),
      outcomeDetail,
    );
  }

  async rollback(service: string, request: RollbackRequest, actor: string): Promise<DeployResultJson> {
    return this.#audited(
      actor,
      'rollback',
      service,
      async () => {
        if (!this.#o.store.services.find(service)) throw this.#unknown(service);
        return this.#outcome(
          await rollback(this.#ctx(), {
            service,
            actor,
            ...(request.to !== undefined ? { to: request.to } : {}),
          }),
        );
      },
      outcomeDetail,
    );
  }

  /** Runs a change and records who asked for it, and how it went, in the append-only audit log. */
  #audited<T>(
    actor: string,
    action: string,
    target: string,
    change: () => Promise<T>,
    detail: (done: T) => string,
  ): Promise<T> {
    return audited(this.#o.store.audit, actor, action, target, change, detail);
  }

  async rollout(id: string): Promise<RolloutJson> {
    return rolloutJson(this.#o.store.rollouts.get(id));
  }

  async serviceRollout(service: string): Promise<RolloutDetailJson> {
    const { store } = this.#o;
    if (!store.services.find(service)) throw this.#unknown(service);
    const last = viewOf(store, service, this.#clock()).lastRollout;
    if (!last)
      throw new NotFoundError(`${service} has no rollouts yet; deploy it with kiln deploy ${service}`);
    return rolloutDetailJson(store, last);
  }

  async controlRollout(
    service: string,
    command: RolloutCommandJson,
    request: RolloutCommandRequest,
    actor: string,
  ): Promise<RolloutDetailJson> {
    const { store } = this.#o;
    const rollout = await this.#audited(
      actor,
      `rollout.${command}`,
      service,
      async () => {
        if (!store.services.find(service)) throw this.#unknown(service);
        return controlRollout(this.#ctx(), {
          service,
          command,
          actor,
          ...(request.full !== undefined ? { full: request.full } : {}),
        });
      },
      (r) => `rollout ${r.id}${request.full ? ' (full)' : ''}`,
    );
    return rolloutDetailJson(store, rollout);
  }

  async metrics(service?: string): Promise<BackendMetricsJson[]> {
    if (service !== undefined && !this.#o.store.services.find(service)) throw this.#unknown(service);
    const all = await this.#o.controller.metrics();
    return all.filter((m) => service === undefined || m.service === service);
  }

  async events(since: number, service?: string, limit?: number): Promise<EventJson[]> {
    return this.#o.store.events
      .since(since, {
        ...(service !== undefined ? { service } : {}),
        ...(limit !== undefined ? { limit } : {}),
      })
      .map((e) => ({
        seq: e.seq,
        at: e.at,
        kind: e.kind,
        ...(e.service !== undefined ? { service: e.service } : {}),
        ...(e.subject !== undefined ? { subject: e.subject } : {}),
        reason: e.reason,
        message: e.message,
      }));
  }

  async audit(limit?: number): Promise<AuditJson[]> {
    return this.#o.store.audit
      .tail(limit ?? 100)
      .reverse()
      .map((r) => ({ ...r }));
  }

  async images(): Promise<ImageJson[]> {
    return this.#o.imageSource ? imagesJson(this.#o.imageSource) : [];
  }

  verify(request: VerifyRequest): Promise<VerifyJson> {
    return this.#security.verify(request);
  }

  execOpen(instance: string, request: ExecRequest, actor: string): Promise<ExecSessionJson> {
    return this.#security.execOpen(instance, request, actor);
  }

  execHeartbeat(session: string, actor: string): Promise<ExecSessionJson> {
    return this.#security.execHeartbeat(session, actor);
  }

  execEnd(session: string, request: ExecEndRequest, actor: string): Promise<ExecSessionJson> {
    return this.#security.execEnd(session, request, actor);
  }

  securityReport(): Promise<SecurityReportJson> {
    return this.#security.securityReport();
  }

  async tokens(): Promise<TokenJson[]> {
    return this.#tokens.list();
  }

  createToken(request: TokenRequest, actor: string): Promise<TokenCreatedJson> {
    return this.#tokens.create(request, actor);
  }

  revokeToken(name: string, actor: string): Promise<TokenJson> {
    return this.#tokens.revoke(name, actor);
  }

  #ctx(): OperationsContext {
    return {
      store: this.#o.store,
      images: this.#o.images,
      clock: this.#clock,
      declared: this.#o.declared,
      kick: () => this.#o.controller.kick(),
    };
  }

  #outcome(o: Outcome): DeployResultJson {
    const current = viewOf(this.#o.store, o.release.service, this.#clock()).current?.number;
    return {
      release: releaseJson(o.release, o.release.number === current),
      rollout: rolloutJson(o.rollout),
      ...(o.instant ? { instant: true } : {}),
      ...(o.unchanged ? { unchanged: true } : {}),
    };
  }

  #unknown(service: string): NotFoundError {
    const known = this.#o.store.services.list().map((s) => s.name);
    return new NotFoundError(
      `no service "${service}" has been deployed` +
        (known.length ? ` (deployed: ${known.join(', ')})` : '') +
        `; deploy it with kiln deploy ${service}`,
    );
  }
}

/** What the audit log says of a deploy or rollback that went through. */
function outcomeDetail(result: DeployResultJson): string {
  const { release, rollout } = result;
  return `${release.name} (${release.digest}), rollout ${rollout.id}${result.unchanged ? ', unchanged' : ''}`;
}
