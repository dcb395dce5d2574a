import { sql as raw } from 'kysely';
import { ConflictError, NotFoundError } from '../errors/index.js';
import { readLimit } from './events.js';
import type { ChaosRunsTable, ChaosTerminationsTable } from './schema.js';
import type { Sql } from './sqlite.js';
import { Issues, newId } from './validate.js';

/** What a termination does to its victim; the spec's `chaos.mode` (kept in step by a test in chaos/). */
export const CHAOS_MODES = ['kill', 'stop', 'corrupt', 'partition'] as const;

/** What a termination does to its victim. */
export type ChaosMode = (typeof CHAOS_MODES)[number];
/** Where an on-demand chaos run stands: `failed` when it stopped before its last kill. */
export type ChaosRunPhase = 'running' | 'done' | 'failed';

/**
 * What came of one decision of the monkey: `terminated`; `would-terminate` (dry run or leashed);
 * `held` (by the outage checker: a rollout, or errors already); `skipped` (too few healthy).
 */
export const CHAOS_OUTCOMES = ['terminated', 'would-terminate', 'held', 'skipped'] as const;
/** What came of one decision of the monkey. */
export type ChaosOutcome = (typeof CHAOS_OUTCOMES)[number];

/** An on-demand chaos run as stored. */
export interface ChaosRunRecord {
  readonly id: string;
  /** The one service it targets; absent when it targets every service that opted in. */
  readonly service?: string;
  readonly mode: ChaosMode;
  /** Terminations asked for. */
  readonly kills: number;
  /** Time between them. */
  readonly intervalMs: number;
  readonly dryRun: boolean;
  readonly phase: ChaosRunPhase;
  /** One sentence: what it does or did. */
  readonly message: string;
  readonly createdBy: string;
  readonly startedAt: string;
  readonly finishedAt?: string;
  /** Requests and failed requests of the targeted services over the run, once it ended. */
  readonly requests?: number;
  readonly failed?: number;
}

/** What `ChaosRepository.createRun` needs; `id` defaults to a random `chaos-<hex>`. */
export type NewChaosRun = Pick<
  ChaosRunRecord,
  'service' | 'mode' | 'kills' | 'intervalMs' | 'dryRun' | 'createdBy' | 'message'
> & { readonly id?: string };

/** How a run ended, for `ChaosRepository.finishRun`. */
export type ChaosRunEnd = Pick<ChaosRunRecord, 'message' | 'requests' | 'failed'> & {
  readonly phase: 'done' | 'failed';
};

/** One decision of the chaos monkey as stored, with the recovery it measured. */
export interface ChaosTerminationRecord {
  readonly id: string;
  /** The run it belongs to; absent for the scheduled monkey's. */
  readonly runId?: string;
  readonly service: string;
  /** The victim (or would-be victim); '' when none was chosen (held, skipped). */
  readonly instance: string;
  readonly mode: ChaosMode;
  readonly dryRun: boolean;
  readonly outcome: ChaosOutcome;
  /** One sentence: what was done or why not. */
  readonly reason: string;
  readonly startedAt: string;
  /** When the controller noticed the victim was gone. */
  readonly detectedAt?: string;
  /** When a healthy replacement served. */
  readonly recoveredAt?: string;
  /** The instance that replaced the victim. */
  readonly replacement?: string;
  /** Requests clients saw fail between the kill and the recovery. */
  readonly failedRequests?: number;
}

/**
 * What `ChaosRepository.recordTermination` needs: `instance` is '' only for `held` and `skipped`;
 * `startedAt` (as `toISOString` writes it) defaults to the store's clock, `id` to a random `kill-<hex>`.
 */
export type NewChaosTermination = Pick<
  ChaosTerminationRecord,
  'runId' | 'service' | 'instance' | 'mode' | 'dryRun' | 'outcome' | 'reason'
> & { readonly startedAt?: string; readonly id?: string };

/** What `updateTermination` may fill in as a recovery is measured; absent fields stay as they are. */
export type ChaosTerminationPatch = Pick<
  ChaosTerminationRecord,
  'detectedAt' | 'recoveredAt' | 'replacement' | 'failedRequests'
>;

/** Narrows `terminations`. */
export interface ChaosTerminationFilter {
  readonly runId?: string;
  readonly service?: string;
  /** ISO 8601 UTC: only those started at or after it. */
  readonly since?: string;
  /** @default DEFAULT_READ_LIMIT (at most MAX_READ_LIMIT) */
  readonly limit?: number;
}

/** Outcomes that count as a kill for `minTimeBetween`: a leashed monkey keeps the same pace. */
const KILL_OUTCOMES: readonly ChaosOutcome[] = ['terminated', 'would-terminate'];

/** Exactly what `toISOString` writes, so stored times sort as text in time order. */
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Checks the chaos-specific shapes on top of `Issues`. */
class ChaosIssues extends Issues {
  /** A time as `toISOString` writes it. */
  iso(path: string, value: unknown): this {
    return this.check(
      typeof value === 'string' && ISO_RE.test(value) && new Date(value).toISOString() === value,
      path,
      `${JSON.stringify(value)} is not an ISO 8601 UTC time`,
      'write it as Date.prototype.toISOString() does, such as "2026-01-05T09:00:00.000Z"',
    );
  }

  /** A whole number of at least `min`. */
  count(path: string, value: unknown, min = 0): this {
    return this.check(
      Number.isSafeInteger(value) && (value as number) >= min,
      path,
      `${JSON.stringify(value)} is not a whole number of at least ${min}`,
    );
  }
}

/**
 * The chaos monkey's record: on-demand runs, and every termination it made, would have made or
 * held back, with the recovery it measured. Recoveries are what chaos is for, so a termination is
 * updated as the controller notices the loss and a replacement serves; nothing else changes it.
 */
export class ChaosRepository {
  /** @internal Created by `openState`. */
  constructor(private readonly sql: Sql) {}

  /** Records a new run in phase `running`, started now. */
  createRun(input: NewChaosRun): ChaosRunRecord {
    const id = input.id ?? newId('chaos-');
    const v = new ChaosIssues().id('id', id);
    if (input.service !== undefined) v.name('service', input.service);
    v.oneOf('mode', input.mode, CHAOS_MODES)
      .count('kills', input.kills, 1)
      .count('intervalMs', input.intervalMs)
      .check(typeof input.dryRun === 'boolean', 'dryRun', 'must be true or false')
      .text('createdBy', input.createdBy, 256)
      .check(typeof input.message === 'string', 'message', 'must be text')
      .throwIfAny(`chaos run ${id}`);
    return this.sql.tx(() => {
      if (this.findRun(id))
        throw new ConflictError(`a chaos run with id '${id}' already exists; choose another id`);
      this.sql.run(
        this.sql.q.insertInto('chaos_runs').values({
          id,
          service: input.service ?? null,
          mode: input.mode,
          kills: input.kills,
          interval_ms: input.intervalMs,
          dry_run: input.dryRun ? 1 : 0,
          phase: 'running',
          message: input.message,
          created_by: input.createdBy,
          started_at: this.sql.now(),
        }),
      );
      return this.getRun(id);
    });
  }

  /** Ends a running run; ConflictError when it already ended, NotFoundError when there is none. */
  finishRun(id: string, end: ChaosRunEnd): ChaosRunRecord {
    const v = new ChaosIssues()
      .oneOf('phase', end.phase, ['done', 'failed'] as const)
      .check(typeof end.message === 'string', 'message', 'must be text');
    if (end.requests !== undefined) v.count('requests', end.requests);
    if (end.failed !== undefined) v.count('failed', end.failed);
    v.check(
      end.requests === undefined || end.failed === undefined || end.failed <= end.requests,
      'failed',
      `${end.failed} failed requests is more than the ${end.requests} requests made`,
      'count failed requests among the requests',
    ).throwIfAny(`end of chaos run ${id}`);
    return this.sql.tx(() => {
      const current = this.getRun(id);
      if (current.phase !== 'running') {
        throw new ConflictError(`chaos run ${id} already ended (${current.phase}) and cannot end again`);
      }
      this.sql.run(
        this.sql.q
          .updateTable('chaos_runs')
          .set({
            phase: end.phase,
            message: end.message,
            finished_at: this.sql.now(),
            requests: end.requests ?? null,
            failed: end.failed ?? null,
          })
          .where('id', '=', id),
      );
      return this.getRun(id);
    });
  }

  /** The run `id`, or undefined. */
  findRun(id: string): ChaosRunRecord | undefined {
    const row = this.sql.get(this.sql.q.selectFrom('chaos_runs').selectAll().where('id', '=', id));
    return row && toRun(row);
  }

  /** The run `id`; throws NotFoundError when there is none. */
  getRun(id: string): ChaosRunRecord {
    const run = this.findRun(id);
    if (!run) throw new NotFoundError(`chaos run '${id}' does not exist; see kiln chaos report`);
    return run;
  }

  /** The newest runs first, at most `limit`. */
  listRuns(limit = 20): ChaosRunRecord[] {
    return this.sql
      .all(
        this.sql.q
          .selectFrom('chaos_runs')
          .selectAll()
          .orderBy('started_at', 'desc')
          .orderBy(raw`rowid`, 'desc')
          .limit(readLimit(limit)),
      )
      .map(toRun);
  }

  /**
   * Records one decision of the monkey. `terminated` needs `dryRun` false and `would-terminate`
   * true, and both name the instance; NotFoundError when `runId` names no run.
   */
  recordTermination(input: NewChaosTermination): ChaosTerminationRecord {
    const id = input.id ?? newId('kill-');
    const v = new ChaosIssues().id('id', id);
    if (input.runId !== undefined) v.id('runId', input.runId);
    if (input.startedAt !== undefined) v.iso('startedAt', input.startedAt);
    const kill = KILL_OUTCOMES.includes(input.outcome);
    v.name('service', input.service)
      .check(
        typeof input.instance === 'string' &&
          input.instance.length <= 200 &&
          (!kill || input.instance !== ''),
        'instance',
        `must be the victim's id (at most 200 characters), or '' when none was chosen`,
        kill ? `a ${input.outcome} termination names its victim` : undefined,
      )
      .oneOf('mode', input.mode, CHAOS_MODES)
      .check(typeof input.dryRun === 'boolean', 'dryRun', 'must be true or false')
      .oneOf('outcome', input.outcome, CHAOS_OUTCOMES)
      .check(
        !kill || input.dryRun === (input.outcome === 'would-terminate'),
        'outcome',
        `${input.outcome} contradicts dryRun ${String(input.dryRun)}`,
        "a dry run records 'would-terminate', a real one 'terminated'",
      )
      .text('reason', input.reason, 4096)
      .throwIfAny(`chaos termination of ${JSON.stringify(input.service)}`);
    return this.sql.tx(() => {
      if (input.runId !== undefined) this.getRun(input.runId);
      if (this.findTermination(id)) {
        throw new ConflictError(`a chaos termination with id '${id}' already exists; choose another id`);
      }
      this.sql.run(
        this.sql.q.insertInto('chaos_terminations').values({
          id,
          run_id: input.runId ?? null,
          service: input.service,
          instance: input.instance,
          mode: input.mode,
          dry_run: input.dryRun ? 1 : 0,
          outcome: input.outcome,
          reason: input.reason,
          started_at: input.startedAt ?? this.sql.now(),
        }),
      );
      return this.getTermination(id);
    });
  }

  /** Fills in what was measured of a recovery; an empty patch changes nothing. */
  updateTermination(id: string, patch: ChaosTerminationPatch): ChaosTerminationRecord {
    const v = new ChaosIssues();
    for (const key of ['detectedAt', 'recoveredAt'] as const)
      if (patch[key] !== undefined) v.iso(key, patch[key]);
    if (patch.replacement !== undefined) v.id('replacement', patch.replacement);
    if (patch.failedRequests !== undefined) v.count('failedRequests', patch.failedRequests);
    v.throwIfAny(`update of chaos termination ${id}`);
    const set = {
      ...(patch.detectedAt === undefined ? {} : { detected_at: patch.detectedAt }),
      ...(patch.recoveredAt === undefined ? {} : { recovered_at: patch.recoveredAt }),
      ...(patch.replacement === undefined ? {} : { replacement: patch.replacement }),
      ...(patch.failedRequests === undefined ? {} : { failed_requests: patch.failedRequests }),
    };
    return this.sql.tx(() => {
      this.getTermination(id);
      if (Object.keys(set).length > 0) {
        this.sql.run(this.sql.q.updateTable('chaos_terminations').set(set).where('id', '=', id));
      }
      return this.getTermination(id);
    });
  }

  /** The termination `id`, or undefined. */
  findTermination(id: string): ChaosTerminationRecord | undefined {
    const row = this.sql.get(this.sql.q.selectFrom('chaos_terminations').selectAll().where('id', '=', id));
    return row && toTermination(row);
  }

  /** The termination `id`; throws NotFoundError when there is none. */
  getTermination(id: string): ChaosTerminationRecord {
    const found = this.findTermination(id);
    if (!found) throw new NotFoundError(`chaos termination '${id}' does not exist; see kiln chaos report`);
    return found;
  }

  /**
   * Terminations matching `filter`, oldest first (a timeline reads forwards, and `since` pages
   * on): the first `limit` started at or after `since`.
   */
  terminations(filter: ChaosTerminationFilter = {}): ChaosTerminationRecord[] {
    if (filter.since !== undefined)
      new ChaosIssues().iso('since', filter.since).throwIfAny('chaos terminations');
    let q = this.sql.q.selectFrom('chaos_terminations').selectAll();
    if (filter.runId !== undefined) q = q.where('run_id', '=', filter.runId);
    if (filter.service !== undefined) q = q.where('service', '=', filter.service);
    if (filter.since !== undefined) q = q.where('started_at', '>=', filter.since);
    return this.sql
      .all(
        q
          .orderBy('started_at')
          .orderBy(raw`rowid`)
          .limit(readLimit(filter.limit)),
      )
      .map(toTermination);
  }

  /**
   * The latest termination of `service` that counts toward `minTimeBetween`: `terminated` or
   * `would-terminate`, so a leashed monkey reports at the pace it would kill.
   */
  lastTermination(service: string): ChaosTerminationRecord | undefined {
    const row = this.sql.get(
      this.sql.q
        .selectFrom('chaos_terminations')
        .selectAll()
        .where('service', '=', service)
        .where('outcome', 'in', KILL_OUTCOMES)
        .orderBy('started_at', 'desc')
        .orderBy(raw`rowid`, 'desc')
        .limit(1),
    );
    return row && toTermination(row);
  }
}

function toRun(row: ChaosRunsTable): ChaosRunRecord {
  return {
    id: row.id,
    ...(row.service === null ? {} : { service: row.service }),
    mode: row.mode as ChaosMode,
    kills: row.kills,
    intervalMs: row.interval_ms,
    dryRun: row.dry_run === 1,
    phase: row.phase as ChaosRunPhase,
    message: row.message,
    createdBy: row.created_by,
    startedAt: row.started_at,
    ...(row.finished_at === null ? {} : { finishedAt: row.finished_at }),
    ...(row.requests === null ? {} : { requests: row.requests }),
    ...(row.failed === null ? {} : { failed: row.failed }),
  };
}

function toTermination(row: ChaosTerminationsTable): ChaosTerminationRecord {
  return {
    id: row.id,
    ...(row.run_id === null ? {} : { runId: row.run_id }),
    service: row.service,
    instance: row.instance,
    mode: row.mode as ChaosMode,
    dryRun: row.dry_run === 1,
    outcome: row.outcome as ChaosOutcome,
    reason: row.reason,
    startedAt: row.started_at,
    ...(row.detected_at === null ? {} : { detectedAt: row.detected_at }),
    ...(row.recovered_at === null ? {} : { recoveredAt: row.recovered_at }),
    ...(row.replacement === null ? {} : { replacement: row.replacement }),
    ...(row.failed_requests === null ? {} : { failedRequests: row.failed_requests }),
  };
}
