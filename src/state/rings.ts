import { ConflictError, NotFoundError } from '../errors/index.js';
import { canonicalJson, parseJson } from './json.js';
import type { RingsTable } from './schema.js';
import { sqliteCode, type Sql } from './sqlite.js';
import { Issues, newId } from './validate.js';

/** Where a ring (a base image's promotion through every service built on it) stands. */
export type RingPhase = 'running' | 'succeeded' | 'failed';

/** Where one wave stands: `rolled-back` when it failed and its services were returned. */
export type WavePhase = 'pending' | 'running' | 'succeeded' | 'rolled-back';

/** One service of a wave: the image rebaked on the new base, and how its release went. */
export interface RingService {
  readonly service: string;
  readonly image: string;
  readonly digest: string;
  /** The rollout that released it, once started. */
  readonly rollout?: string;
  /** The release it ran before the wave, to return to if the wave fails. */
  readonly previous?: string;
  /**
   * `succeeded`; `unchanged` (it already ran the digest); `failed` (its canary failed and was
   * rolled back); `reverted` (it succeeded, but its wave failed, so it was rolled back);
   * `skipped` (a later wave that never started).
   */
  readonly outcome?: 'succeeded' | 'unchanged' | 'failed' | 'reverted' | 'skipped';
  readonly message?: string;
}

/** One wave: every service of one tier, released together, each by canary. */
export interface RingWave {
  readonly tier: number;
  readonly phase: WavePhase;
  readonly services: readonly RingService[];
  readonly startedAt?: string;
  readonly finishedAt?: string;
}

/** A ring as stored. */
export interface RingRecord {
  readonly id: string;
  /** The base image's name and the digest being promoted. */
  readonly base: string;
  readonly baseDigest: string;
  readonly phase: RingPhase;
  /** Lowest tier first. */
  readonly waves: readonly RingWave[];
  /** One sentence: where it stands and why. */
  readonly message: string;
  readonly createdBy: string;
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly finishedAt?: string;
}

/** What `RingRepository.create` needs. */
export interface NewRing {
  readonly base: string;
  readonly baseDigest: string;
  readonly waves: readonly RingWave[];
  readonly createdBy: string;
  readonly message: string;
}

/**
 * Base-image promotion rings, with optimistic concurrency like rollouts: at most one runs at a
 * time (a partial unique index), and `update` refuses a stale version.
 */
export class RingRepository {
  /** @internal Created by `openState`. */
  constructor(private readonly sql: Sql) {}

  /** Records a new running ring; ConflictError names the running one if there is one. */
  create(input: NewRing): RingRecord {
    const id = newId('ring-');
    new Issues()
      .text('base', input.base, 512)
      .digest('baseDigest', input.baseDigest)
      .check(
        input.waves.length > 0,
        'waves',
        'a ring needs at least one wave',
        'name a base that some service is built on',
      )
      .throwIfAny(`ring of ${JSON.stringify(input.base)}`);
    const waves = canonicalJson(input.waves, `waves of ring ${id}`);
    return this.sql.tx(() => {
      const now = this.sql.now();
      try {
        this.sql.run(
          this.sql.q.insertInto('rings').values({
            id,
            base: input.base,
            base_digest: input.baseDigest,
            phase: 'running',
            waves,
            message: input.message,
            created_by: input.createdBy,
            version: 1,
            created_at: now,
            updated_at: now,
            finished_at: null,
          }),
        );
      } catch (err) {
        if (sqliteCode(err) !== 'SQLITE_CONSTRAINT_UNIQUE') throw err;
        const running = this.running()!;
        throw new ConflictError(
          `ring ${running.id} (base ${running.base}) is still running; wait for it (kiln rings status) before releasing another base`,
          { cause: err },
        );
      }
      return this.get(id);
    });
  }

  /** Applies `patch` if the stored version is still `expectedVersion`; a finished ring cannot change. */
  update(
    id: string,
    expectedVersion: number,
    patch: { readonly phase?: RingPhase; readonly waves?: readonly RingWave[]; readonly message?: string },
  ): RingRecord {
    const waves = patch.waves && canonicalJson(patch.waves, `waves of ring ${id}`);
    return this.sql.tx(() => {
      const current = this.get(id);
      if (current.version !== expectedVersion) {
        throw new ConflictError(
          `ring ${id} is at version ${current.version}, not ${expectedVersion}; re-read it`,
        );
      }
      if (current.phase !== 'running')
        throw new ConflictError(`ring ${id} already finished (${current.phase})`);
      const now = this.sql.now();
      const phase = patch.phase ?? current.phase;
      this.sql.run(
        this.sql.q
          .updateTable('rings')
          .set({
            phase,
            ...(waves === undefined ? {} : { waves }),
            ...(patch.message === undefined ? {} : { message: patch.message }),
            version: expectedVersion + 1,
            updated_at: now,
            finished_at: phase === 'running' ? null : now,
          })
          .where('id', '=', id)
          .where('version', '=', expectedVersion),
      );
      return this.get(id);
    });
  }

  /** The running ring, if any. */
  running(): RingRecord | undefined {
    const row = this.sql.get(this.sql.q.selectFrom('rings').selectAll().where('phase', '=', 'running'));
    return row && toRing(row);
  }

  find(id: string): RingRecord | undefined {
    const row = this.sql.get(this.sql.q.selectFrom('rings').selectAll().where('id', '=', id));
    return row && toRing(row);
  }

  get(id: string): RingRecord {
    const ring = this.find(id);
    if (!ring) throw new NotFoundError(`ring '${id}' does not exist; list them with kiln rings status`);
    return ring;
  }

  /** The newest rings first, at most `limit`. */
  list(limit = 20): RingRecord[] {
    return this.sql
      .all(
        this.sql.q
          .selectFrom('rings')
          .selectAll()
          .orderBy('created_at', 'desc')
          .orderBy('id', 'desc')
          .limit(limit),
      )
      .map(toRing);
  }
}

function toRing(row: RingsTable): RingRecord {
  return {
    id: row.id,
    base: row.base,
    baseDigest: row.base_digest,
    phase: row.phase as RingPhase,
    waves: parseJson<RingWave[]>(row.waves),
    message: row.message,
    createdBy: row.created_by,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ...(row.finished_at === null ? {} : { finishedAt: row.finished_at }),
  };
}
