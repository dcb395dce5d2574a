import { sql as raw } from 'kysely';
import { ConflictError, NotFoundError } from '../errors/index.js';
import type { Condition } from './conditions.js';
import { canonicalJson, parseJson } from './json.js';
import { parseReleaseRef, releaseName, type ReleaseName } from './releases.js';
import type { RolloutsTable } from './schema.js';
import { sqliteCode, type Sql } from './sqlite.js';
import { Issues, newId } from './validate.js';

/** Every phase a rollout passes through, in lifecycle order. */
export const ROLLOUT_PHASES = [
  'pending',
  'progressing',
  'paused',
  'analysing',
  'succeeded',
  'rolled-back',
  'failed',
] as const;

/** Where a rollout is in its lifecycle. */
export type RolloutPhase = (typeof ROLLOUT_PHASES)[number];

/** The phases a rollout ends in; a rollout in one of them is finished and can no longer change. */
export const TERMINAL_ROLLOUT_PHASES: readonly RolloutPhase[] = ['succeeded', 'rolled-back', 'failed'];

/** True for `succeeded`, `rolled-back` and `failed`. */
export function isTerminalPhase(phase: RolloutPhase): boolean {
  return TERMINAL_ROLLOUT_PHASES.includes(phase);
}

/** How a rollout replaces instances; the `type` of a service's `strategy` in the spec. */
export const ROLLOUT_STRATEGIES = ['rolling', 'bluegreen', 'canary'] as const;

/** How a rollout replaces instances. */
export type RolloutStrategy = (typeof ROLLOUT_STRATEGIES)[number];

/** Progress through one step of a rollout's plan. */
export interface RolloutStepStatus {
  /** What the step does, such as `setWeight 20` or `analyse 5m`. */
  readonly name: string;
  readonly state: 'pending' | 'running' | 'done' | 'failed';
  readonly startedAt?: string;
  readonly finishedAt?: string;
  readonly message?: string;
}

/** What the controller records about a rollout's progress; it owns this document. */
export interface RolloutStatus {
  /** Index into `steps` of the step being worked on. */
  readonly currentStep?: number;
  readonly steps?: readonly RolloutStepStatus[];
  /** Traffic weight (0–100) per release name. */
  readonly weights?: Readonly<Record<ReleaseName, number>>;
  /** Blue/green: when traffic was switched to the new release. */
  readonly switchedAt?: string;
  /**
   * Canary: the step, the analysis window and the judge's looks. The fleet owns its shape; the
   * store keeps it as the JSON document it is.
   */
  readonly canary?: { readonly [key: string]: unknown };
  readonly conditions: readonly Condition[];
}

/** A rollout as stored. */
export interface RolloutRecord {
  readonly id: string;
  readonly service: string;
  /** The release being replaced; absent for a service's first rollout. */
  readonly fromRelease?: number;
  readonly toRelease: number;
  readonly strategy: RolloutStrategy;
  readonly phase: RolloutPhase;
  readonly status: RolloutStatus;
  /** Bumped by every update; pass it back to `update` to detect lost updates. */
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** When it reached a terminal phase. */
  readonly finishedAt?: string;
}

/** What `RolloutRepository.create` needs. */
export interface NewRollout {
  readonly service: string;
  readonly fromRelease?: ReleaseName | number;
  readonly toRelease: ReleaseName | number;
  readonly strategy: RolloutStrategy;
  /** @default { conditions: [] } */
  readonly status?: RolloutStatus;
  /** @default a random `ro-<hex>` */
  readonly id?: string;
}

/** The fields `update` may change. */
export interface RolloutPatch {
  readonly phase?: RolloutPhase;
  readonly status?: RolloutStatus;
}

/**
 * Rollouts, with optimistic concurrency: every record carries a `version`, and `update` refuses
 * (ConflictError) when the stored version moved since the caller read it. The database allows at
 * most one non-terminal rollout per service (a partial unique index on `phase`).
 */
export class RolloutRepository {
  /** @internal Created by `openState`. */
  constructor(private readonly sql: Sql) {}

  /**
   * Starts recording a rollout of `input.service` in phase `pending` at version 1. Throws
   * ConflictError naming the active rollout when the service already has one, and NotFoundError
   * when either release does not exist.
   */
  create(input: NewRollout): RolloutRecord {
    const to = parseReleaseRef(input.toRelease);
    const from = input.fromRelease === undefined ? null : parseReleaseRef(input.fromRelease);
    const id = input.id ?? newId('ro-');
    new Issues()
      .name('service', input.service)
      .id('id', id)
      .oneOf('strategy', input.strategy, ROLLOUT_STRATEGIES)
      .throwIfAny(`rollout of ${JSON.stringify(input.service)}`);
    const status = canonicalJson(input.status ?? { conditions: [] }, `status of rollout ${id}`);
    return this.sql.tx(() => {
      for (const n of from === null ? [to] : [from, to]) this.assertRelease(input.service, n);
      const now = this.sql.now();
      try {
        this.sql.run(
          this.sql.q.insertInto('rollouts').values({
            id,
            service: input.service,
            from_release: from,
            to_release: to,
            strategy: input.strategy,
            phase: 'pending',
            status,
            version: 1,
            created_at: now,
            updated_at: now,
            finished_at: null,
          }),
        );
      } catch (err) {
        if (sqliteCode(err) !== 'SQLITE_CONSTRAINT_UNIQUE') throw err;
        const active = this.active(input.service);
        if (!active) throw new ConflictError(`a rollout with id '${id}' already exists; choose another id`);
        throw new ConflictError(
          `service '${input.service}' already has an active rollout ${active.id} ` +
            `(${active.phase}, to ${releaseName(active.toRelease)}); wait for it to finish or abort it first`,
          { cause: err },
        );
      }
      return this.get(id);
    });
  }

  /**
   * Applies `patch` if the stored version is still `expectedVersion`, bumps the version and
   * returns the new record. Entering a terminal phase sets `finishedAt`. Throws ConflictError when
   * someone else updated it first (re-read with `get` and decide again) or when it already
   * finished, and NotFoundError when there is no such rollout.
   *
   * @example
   * const r = store.rollouts.get(id);
   * store.rollouts.update(r.id, r.version, { phase: 'progressing' });
   */
  update(id: string, expectedVersion: number, patch: RolloutPatch): RolloutRecord {
    new Issues()
      .check(patch.phase === undefined || ROLLOUT_PHASES.includes(patch.phase), 'phase', 'is not a phase')
      .throwIfAny(`update of rollout ${id}`);
    const status = patch.status && canonicalJson(patch.status, `status of rollout ${id}`);
    return this.sql.tx(() => {
      const current = this.get(id);
      if (current.version !== expectedVersion) {
        throw new ConflictError(
          `rollout ${id} is at version ${current.version}, not ${expectedVersion}: it changed since it was read; ` +
            're-read it and apply the change again',
        );
      }
      if (isTerminalPhase(current.phase)) {
        throw new ConflictError(
          `rollout ${id} already finished (${current.phase}) and cannot change; start a new rollout instead`,
        );
      }
      const now = this.sql.now();
      const phase = patch.phase ?? current.phase;
      this.sql.run(
        this.sql.q
          .updateTable('rollouts')
          .set({
            phase,
            ...(status === undefined ? {} : { status }),
            version: expectedVersion + 1,
            updated_at: now,
            finished_at: isTerminalPhase(phase) ? now : null,
          })
          .where('id', '=', id)
          .where('version', '=', expectedVersion),
      );
      return this.get(id);
    });
  }

  /** The rollout `id`, or undefined. */
  find(id: string): RolloutRecord | undefined {
    const row = this.sql.get(this.sql.q.selectFrom('rollouts').selectAll().where('id', '=', id));
    return row && toRollout(row);
  }

  /** The rollout `id`; throws NotFoundError when there is none. */
  get(id: string): RolloutRecord {
    const found = this.find(id);
    if (!found)
      throw new NotFoundError(`rollout '${id}' does not exist; list a service's rollouts to find its id`);
    return found;
  }

  /** The one non-terminal rollout of `service`, if any: what a restarted controller resumes. */
  active(service: string): RolloutRecord | undefined {
    const row = this.sql.get(
      this.sql.q
        .selectFrom('rollouts')
        .selectAll()
        .where('service', '=', service)
        .where('phase', 'in', ['pending', 'progressing', 'paused', 'analysing']),
    );
    return row && toRollout(row);
  }

  /** Rollouts of `service`, newest first, at most `limit`. */
  list(service: string, limit = 100): RolloutRecord[] {
    return this.sql
      .all(
        this.sql.q
          .selectFrom('rollouts')
          .selectAll()
          .where('service', '=', service)
          .orderBy(raw`rowid`, 'desc')
          .limit(limit),
      )
      .map(toRollout);
  }

  private assertRelease(service: string, n: number): void {
    const found = this.sql.get(
      this.sql.q
        .selectFrom('releases')
        .select('number')
        .where('service', '=', service)
        .where('number', '=', n),
    );
    if (!found) {
      throw new NotFoundError(
        `cannot roll out '${service}': release ${releaseName(n)} does not exist; create the release first`,
      );
    }
  }
}

function toRollout(row: RolloutsTable): RolloutRecord {
  return {
    id: row.id,
    service: row.service,
    ...(row.from_release === null ? {} : { fromRelease: row.from_release }),
    toRelease: row.to_release,
    strategy: row.strategy as RolloutStrategy,
    phase: row.phase as RolloutPhase,
    status: parseJson<RolloutStatus>(row.status),
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ...(row.finished_at === null ? {} : { finishedAt: row.finished_at }),
  };
}
