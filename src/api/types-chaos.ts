/** The chaos monkey's JSON shapes (docs/api.md); types.ts re-exports them. */

/** `POST /v1/chaos/runs`: terminate instances on demand. */
export interface ChaosRunRequest {
  /** One service; absent: every service that opted in to chaos. */
  readonly service?: string;
  /** @default 1 */
  readonly kills?: number;
  /** Time between kills, such as "2s". @default "2s" */
  readonly interval?: string;
  /** @default "kill" */
  readonly mode?: 'kill' | 'stop' | 'corrupt' | 'partition';
  /** Only record what would be terminated. @default false */
  readonly dryRun?: boolean;
}

/** An on-demand chaos run. */
export interface ChaosRunJson {
  readonly id: string;
  readonly service?: string;
  readonly mode: string;
  readonly kills: number;
  readonly intervalMs: number;
  readonly dryRun: boolean;
  readonly phase: 'running' | 'done' | 'failed';
  readonly message: string;
  readonly createdBy: string;
  readonly startedAt: string;
  readonly finishedAt?: string;
  /** The service's client requests and failures over the run (the router's totals). */
  readonly requests?: number;
  readonly failed?: number;
}

/** One termination: the victim, and how the fleet recovered. */
export interface ChaosTerminationJson {
  readonly id: string;
  readonly runId?: string;
  readonly service: string;
  readonly instance: string;
  readonly mode: string;
  readonly dryRun: boolean;
  /** `terminated`, `would-terminate` (leashed), `held` (the outage checker), `skipped` (too few healthy). */
  readonly outcome: 'terminated' | 'would-terminate' | 'held' | 'skipped';
  readonly reason: string;
  readonly startedAt: string;
  /** When the controller recorded the victim gone. */
  readonly detectedAt?: string;
  /** When a healthy replacement served, and which. */
  readonly recoveredAt?: string;
  readonly replacement?: string;
  /** Requests clients saw fail between the termination and the recovery. */
  readonly failedRequests?: number;
  /** recoveredAt − startedAt, and detectedAt − startedAt, in ms. */
  readonly recoveryMs?: number;
  readonly detectionMs?: number;
}

/** `GET /v1/chaos/report`: MTTR and availability over a run (the latest unless named). */
export interface ChaosReportJson {
  readonly run?: ChaosRunJson;
  readonly kills: number;
  readonly recovered: number;
  /** Time to a healthy replacement: median and p99 (nearest rank), ms. */
  readonly mttrMs: { readonly median: number | null; readonly p99: number | null };
  readonly detectMs: { readonly median: number | null; readonly p99: number | null };
  /** 1 − failed / requests over the run, as the router's clients saw it; null without traffic. */
  readonly availability: number | null;
  readonly requests: number;
  readonly failed: number;
  readonly terminations: readonly ChaosTerminationJson[];
}
