/**
 * The control plane's API: the JSON shapes it answers with (the `--json` output of the CLI is the
 * same shapes, so they are stable and documented in docs/api.md) and the {@link ControlPlane} the
 * HTTP server serves. Times are ISO 8601 strings; releases are named `rN`.
 */

import type { ChaosReportJson, ChaosRunJson, ChaosRunRequest } from './types-chaos.js';
import type { AuditJson, ImageJson } from './types-dashboard.js';
import type { SecurityPlane, TaintJson } from './types-security.js';
import type { TokenCreatedJson, TokenJson, TokenRequest } from './types-tokens.js';

export type * from './types-chaos.js';
export type * from './types-dashboard.js';
export type * from './types-security.js';
export type * from './types-tokens.js';

/** API version prefix of every route. */
export const API_PREFIX = '/v1';

/** A rollout's phase, as stored. */
export type RolloutPhaseJson =
  'pending' | 'progressing' | 'paused' | 'analysing' | 'succeeded' | 'rolled-back' | 'failed';

/** An instance's lifecycle state. */
export type InstanceStateJson = 'starting' | 'healthy' | 'unhealthy' | 'draining' | 'stopped' | 'tainted';

/** `kiln releases SERVICE --json`: one element per release, newest first. */
export interface ReleaseJson {
  readonly service: string;
  /** `r1`, `r2`, … per service. */
  readonly name: string;
  /** Image manifest digest, `sha256:…`. */
  readonly digest: string;
  /** sha256 of the canonical JSON of the service spec this release runs. */
  readonly configHash: string;
  readonly createdAt: string;
  /** Token name that created it. */
  readonly createdBy: string;
  readonly reason: string;
  /** True for the release the service runs (or is rolling out to). */
  readonly current: boolean;
}

/** A rollout from one release to another. */
export interface RolloutJson {
  readonly id: string;
  readonly service: string;
  /** Absent for a service's first release. */
  readonly from?: string;
  readonly to: string;
  readonly strategy: 'rolling' | 'bluegreen' | 'canary';
  readonly phase: RolloutPhaseJson;
  /** True once the phase can no longer change: succeeded, rolled-back or failed. */
  readonly done: boolean;
  /** Why it is where it is, such as `all 3 instances of r4 are healthy`. */
  readonly message?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt?: string;
}

/** `kiln instances --json`: one element per live instance, sorted by service then id. */
export interface InstanceJson {
  readonly id: string;
  readonly service: string;
  readonly release: string;
  readonly digest: string;
  /** The loopback port the instance listens on. */
  readonly port?: number;
  /** The instance's init process as the host sees it, while it runs. */
  readonly pid?: number;
  readonly state: InstanceStateJson;
  readonly stateSince: string;
  /** A canary analysis's `baseline` (old release) or `canary` (new release); absent on stable instances. */
  readonly role?: 'baseline' | 'canary';
  /** A stateful service's identity, such as `db-1`; absent on stateless instances. */
  readonly identity?: string;
  readonly health: {
    readonly status: 'unknown' | 'passing' | 'failing';
    readonly failures: number;
    readonly checkedAt?: string;
  };
  readonly createdAt: string;
  /** Why it is not known to be its release (drift, an exec session); set once, kept. */
  readonly taint?: TaintJson;
}

/** `kiln status --json`: one element per declared service, sorted by name. */
export interface ServiceStatusJson {
  readonly name: string;
  /**
   * The router's URL for the service, such as `http://127.0.0.1:8080/`; for a stateful service,
   * its identities' addresses, `tcp://127.0.0.1:7000-7002` (identity k on port + k).
   */
  readonly url: string;
  readonly port: number;
  /** Present on stateful services: identities with volumes, updated one at a time. */
  readonly kind?: 'stateful';
  readonly replicas: number;
  readonly strategy: 'rolling' | 'bluegreen' | 'canary';
  readonly tier: number;
  /** The current release, absent before the first deploy. */
  readonly release?: string;
  readonly digest?: string;
  /** Live instances (not stopped), and how many of them are healthy. */
  readonly instances: number;
  readonly healthy: number;
  /** Live instances tainted (drift or exec), when any. */
  readonly tainted?: number;
  /** The rollout in flight, or the last one. */
  readonly rollout?: RolloutJson;
  /** Blue/green: the previous release kept warm for an instant rollback, until `until`. */
  readonly standby?: { readonly release: string; readonly until: string };
}

/** One entry of the append-only event log. */
export interface EventJson {
  readonly seq: number;
  readonly at: string;
  readonly kind: string;
  readonly service?: string;
  readonly subject?: string;
  readonly reason: string;
  readonly message: string;
}

/**
 * `GET /v1/metrics`: the router's counters for each backend (instance) since it began serving it,
 * sorted by service then instance. The same figures the router serves as Prometheus text.
 */
export interface BackendMetricsJson {
  readonly service: string;
  /** The instance id. */
  readonly backendId: string;
  /** Requests sent to this instance, retries included. */
  readonly requests: number;
  readonly responses: {
    readonly '1xx': number;
    readonly '2xx': number;
    readonly '3xx': number;
    readonly '4xx': number;
    readonly '5xx': number;
  };
  /** Connection or proxy failures on this instance. */
  readonly errors: number;
  /** Failed attempts retried on another instance, unseen by the client. */
  readonly retries: number;
  readonly inFlight: number;
  /** Cumulative latency buckets (`le` in ms), their sum and count. */
  readonly latencyMs: {
    readonly buckets: readonly { readonly le: number; readonly count: number }[];
    readonly sum: number;
    readonly count: number;
    /** The same latencies in 2 % buckets, `[upper bound ms, count]`; absent behind HAProxy. */
    readonly fine?: readonly (readonly [number, number])[];
  };
}

/** `POST /v1/services/:name/deploy`. */
export interface DeployRequest {
  /** An image name in the server's store or a digest; default: the service's `image`. */
  readonly image?: string;
  /** Override the service's strategy for this rollout. */
  readonly strategy?: 'rolling' | 'bluegreen' | 'canary';
  /** Recorded with the release. */
  readonly reason?: string;
}

/** `POST /v1/services/:name/rollback`. */
export interface RollbackRequest {
  /** The release to go back to, `rN`; default: the one before the current one. */
  readonly to?: string;
}

/** What deploy and rollback answer (`kiln deploy --json`). */
export interface DeployResultJson {
  readonly release: ReleaseJson;
  readonly rollout: RolloutJson;
  /** True when rollback switched traffic back to a warm blue/green standby at once. */
  readonly instant?: boolean;
  /** True when the release equals the current one and nothing had to change. */
  readonly unchanged?: boolean;
}

/** `GET /v1/health` (any live token, `read` and up): is the control plane up. */
export interface HealthJson {
  readonly ok: true;
  readonly version: string;
  readonly pid: number;
}

/** A status condition, as Kubernetes writes them. */
export interface ConditionJson {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
}

/** The judge's verdict on one metric at one look. Numbers it could not compute are null. */
export interface MetricVerdictJson {
  readonly name: string;
  /** `pass`, `high` or `low` (failed in that direction), or `nodata` (too few samples to judge). */
  readonly classification: 'pass' | 'high' | 'low' | 'nodata';
  /** `continuous` (effect relative to the baseline) or `proportion` (effect in rate points). */
  readonly kind: 'continuous' | 'proportion';
  /** Which change is bad. */
  readonly direction: 'increase' | 'decrease' | 'either';
  readonly critical: boolean;
  readonly group: string;
  /** The Mann-Whitney test's p-value and the level it was held to at this look. */
  readonly pValue: number | null;
  readonly alpha: number | null;
  /** The Mann-Whitney U of the canary, and its normal score. */
  readonly u: number | null;
  readonly z: number | null;
  /** Relative shift (latency: 0.2 = 20 % slower) or rate difference (errors: 0.02 = 2 points). */
  readonly effect: number | null;
  readonly tolerance: number;
  /** The Hodges-Lehmann shift of canary over baseline and its confidence interval. */
  readonly shift: {
    readonly estimate: number | null;
    readonly lower: number | null;
    readonly upper: number | null;
    readonly confidence: number;
  };
  readonly baseline: { readonly n: number; readonly median: number | null; readonly mean: number | null };
  readonly canary: { readonly n: number; readonly median: number | null; readonly mean: number | null };
  /** One sentence: what was seen and why it passed or failed. */
  readonly reason: string;
}

/** One look of the canary judge. */
export interface CanaryLookJson {
  /** The step (1-based) and its canary weight in percent. */
  readonly step: number;
  readonly weight: number;
  /** This look's number and how many the step has. */
  readonly look: number;
  readonly looks: number;
  readonly at: string;
  /** 0–100; null when no metric could be judged. */
  readonly score: number | null;
  /** `pass` (the step is promoted), `fail` (rolled back) or `continue` (keep analysing). */
  readonly decision: 'pass' | 'fail' | 'continue';
  readonly reason: string;
  /** Requests each side served in the window so far. */
  readonly samples: { readonly baseline: number; readonly canary: number };
  readonly metrics: readonly MetricVerdictJson[];
  /** Power warnings and metrics that could not be read. */
  readonly warnings: readonly string[];
}

/** A rollout with its conditions and, for a canary, its steps and every look of the judge. */
export interface RolloutDetailJson extends RolloutJson {
  readonly conditions: readonly ConditionJson[];
  readonly canary?: {
    /** The current step, 1-based; `steps.length + 1` while the canary is promoted to 100 %. */
    readonly step: number;
    readonly steps: readonly { readonly weight: number; readonly analyseMs?: number }[];
    /** The canary's traffic weight now, in percent. */
    readonly weight: number;
    /** When the current step's analysis window opened. */
    readonly windowStartedAt?: string;
    readonly looks: readonly CanaryLookJson[];
  };
}

/** One service of a base-image ring's wave. */
export interface RingServiceJson {
  readonly service: string;
  readonly image: string;
  readonly digest: string;
  readonly rollout?: string;
  /** The release it ran before its wave. */
  readonly previous?: string;
  readonly outcome?: 'succeeded' | 'unchanged' | 'failed' | 'reverted' | 'skipped';
  readonly message?: string;
}

/** A base-image promotion ring: its waves, lowest tier first. */
export interface RingJson {
  readonly id: string;
  readonly base: string;
  readonly baseDigest: string;
  readonly phase: 'running' | 'succeeded' | 'failed';
  readonly message: string;
  readonly createdBy: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt?: string;
  readonly waves: readonly {
    readonly tier: number;
    readonly phase: 'pending' | 'running' | 'succeeded' | 'rolled-back';
    readonly startedAt?: string;
    readonly finishedAt?: string;
    readonly services: readonly RingServiceJson[];
  }[];
}

/** `POST /v1/rings`: release a new base image to the services whose images were rebaked on it. */
export interface RingRequest {
  readonly base: string;
  readonly baseDigest: string;
  readonly targets: readonly { readonly service: string; readonly image: string; readonly digest: string }[];
}

/** What a person can do to a canary rollout in flight. */
export type RolloutCommandJson = 'promote' | 'abort' | 'pause' | 'resume';

/** `POST /v1/services/:name/rollout/:command`. */
export interface RolloutCommandRequest {
  /** promote: skip every remaining step, not only the current one. */
  readonly full?: boolean;
}

/**
 * What the HTTP API serves: the control plane's operations. The fleet controller implements it;
 * tests use fakes. Methods throw kiln errors (NotFoundError, ValidationError, ConflictError), which
 * the server maps to HTTP status codes.
 */
export interface ControlPlane extends SecurityPlane {
  status(service?: string): Promise<ServiceStatusJson[]>;
  releases(service: string): Promise<ReleaseJson[]>;
  instances(service?: string): Promise<InstanceJson[]>;
  /** The last `tailLines` lines of the instance's output (all when absent). */
  logs(instance: string, tailLines?: number): Promise<string>;
  deploy(service: string, request: DeployRequest, actor: string): Promise<DeployResultJson>;
  rollback(service: string, request: RollbackRequest, actor: string): Promise<DeployResultJson>;
  rollout(id: string): Promise<RolloutJson>;
  /** The service's newest rollout (in flight or finished), in detail. */
  serviceRollout(service: string): Promise<RolloutDetailJson>;
  /** Starts an on-demand chaos run. */
  chaosRun(request: ChaosRunRequest, actor: string): Promise<ChaosRunJson>;
  /** Chaos runs, newest first. */
  chaosRuns(limit?: number): Promise<ChaosRunJson[]>;
  /** MTTR and availability of run `runId` (default: the latest run). */
  chaosReport(runId?: string): Promise<ChaosReportJson>;
  /** Starts releasing a new base image in waves by tier. */
  startRing(request: RingRequest, actor: string): Promise<RingJson>;
  /** Rings, newest first. */
  rings(limit?: number): Promise<RingJson[]>;
  /** Promotes, aborts, pauses or resumes the service's canary rollout in flight. */
  controlRollout(
    service: string,
    command: RolloutCommandJson,
    request: RolloutCommandRequest,
    actor: string,
  ): Promise<RolloutDetailJson>;
  /** Events after sequence number `since`, oldest first, at most `limit`. */
  events(since: number, service?: string, limit?: number): Promise<EventJson[]>;
  /** The router's per-instance counters, of one service or all. */
  metrics(service?: string): Promise<BackendMetricsJson[]>;
  /** The last `limit` (default 100) audit records, newest first. */
  audit(limit?: number): Promise<AuditJson[]>;
  /** The images of the control plane's image store, with their SBOM packages and signature. */
  images(): Promise<ImageJson[]>;
  /** Every API token, revoked ones included, oldest first; never a secret or a hash. */
  tokens(): Promise<TokenJson[]>;
  /** Creates a token; the answer holds its secret, which is never stored. */
  createToken(request: TokenRequest, actor: string): Promise<TokenCreatedJson>;
  /** Revokes the live token named `name` (or with id `name`); refuses the last live admin token. */
  revokeToken(name: string, actor: string): Promise<TokenJson>;
}

/** A validation problem in an error answer: the field, what is wrong, and how to fix it. */
export interface ApiIssueJson {
  readonly path: string;
  readonly message: string;
  readonly fix?: string;
}

/**
 * Every error answer: `{ "error": { "code", "message" } }`. `code` is a kiln error code
 * (`validation`, `not-found`, `conflict`, `unavailable`, `internal`) or an HTTP-level one
 * (`unauthorized`, `forbidden`, `method-not-allowed`, `payload-too-large`).
 */
export interface ApiErrorJson {
  readonly error: {
    readonly code: string;
    readonly message: string;
    /** For `validation`: every problem found, each with its field path and a fix. */
    readonly issues?: readonly ApiIssueJson[];
    /** For `validation`: what was validated, such as `request body`. */
    readonly file?: string;
  };
}
