import { sql as raw } from 'kysely';
import { NotFoundError, ValidationError } from '../errors/index.js';
import { canonicalJson, parseJson, type JsonObject } from './json.js';
import type { ReleasesTable } from './schema.js';
import type { Sql } from './sqlite.js';
import { Issues } from './validate.js';

/** A release's name within its service: `r1`, `r2`, … */
export type ReleaseName = `r${number}`;

/** An immutable record of what was released: the image digest and config a service runs. */
export interface ReleaseRecord {
  readonly service: string;
  /** 1, 2, 3… per service, without gaps or reuse. */
  readonly number: number;
  /** `r` and the number. */
  readonly name: ReleaseName;
  /** The image manifest digest, `sha256:<hex>`. */
  readonly digest: string;
  /** `sha256:<hex>` over the configuration released with the image. */
  readonly configHash: string;
  /** The service spec as released. */
  readonly spec: JsonObject;
  readonly createdAt: string;
  /** Who released it: a token name, or the local user for the CLI. */
  readonly createdBy: string;
  /** Why, in a few words: `deploy`, `rollback to r3`, `config change`. */
  readonly reason: string;
}

/** What `ReleaseRepository.create` needs; the number and time are allocated by the store. */
export interface NewRelease {
  readonly service: string;
  readonly digest: string;
  readonly configHash: string;
  readonly spec: object;
  readonly createdBy: string;
  readonly reason: string;
}

/** `r` and the number. */
export function releaseName(n: number): ReleaseName {
  return `r${n}`;
}

/**
 * The number of a release written as `r7`, `7`, or 7. Throws a ValidationError for anything else.
 *
 * @example
 * parseReleaseRef('r7'); // 7
 */
export function parseReleaseRef(ref: string | number): number {
  const text = String(ref);
  const m = /^r?([1-9][0-9]{0,8})$/.exec(text);
  if (!m) {
    throw new ValidationError(undefined, [
      { path: 'release', message: `${JSON.stringify(ref)} is not a release`, fix: 'name one as r1, r2, …' },
    ]);
  }
  return Number(m[1]);
}

/**
 * Releases: append-only and numbered per service. There is no update or delete: the database's
 * triggers refuse both, and a change is always a new release.
 */
export class ReleaseRepository {
  /** @internal Created by `openState`. */
  constructor(private readonly sql: Sql) {}

  /**
   * Records a new release of `input.service` with the next number. The number is taken and the
   * row written in one `BEGIN IMMEDIATE` transaction, so concurrent writers (other processes
   * included) never get the same number and numbers never go back.
   *
   * @example
   * const r = store.releases.create({ service: 'api', digest, configHash, spec, createdBy: 'ci', reason: 'deploy' });
   * r.name; // 'r1' for the first
   */
  create(input: NewRelease): ReleaseRecord {
    new Issues()
      .name('service', input.service)
      .digest('digest', input.digest)
      .digest('configHash', input.configHash)
      .text('createdBy', input.createdBy, 256)
      .text('reason', input.reason)
      .throwIfAny(`release of ${JSON.stringify(input.service)}`);
    const spec = canonicalJson(input.spec, `spec of the release of ${input.service}`);
    return this.sql.tx(() => {
      const service = this.sql.get(
        this.sql.q.selectFrom('services').select('name').where('name', '=', input.service),
      );
      if (!service) {
        throw new NotFoundError(
          `cannot release '${input.service}': no such service is declared; record its spec first (services.put)`,
        );
      }
      const next = this.sql.get(
        this.sql.q
          .selectFrom('releases')
          .select(raw<number>`coalesce(max(number), 0) + 1`.as('n'))
          .where('service', '=', input.service),
      )!.n;
      const row: ReleasesTable = {
        service: input.service,
        number: next,
        digest: input.digest,
        config_hash: input.configHash,
        spec,
        created_at: this.sql.now(),
        created_by: input.createdBy,
        reason: input.reason,
      };
      this.sql.run(this.sql.q.insertInto('releases').values(row));
      return toRelease(row);
    });
  }

  /** The release `ref` (`r3` or 3) of `service`, or undefined. */
  find(service: string, ref: ReleaseName | number): ReleaseRecord | undefined {
    const row = this.sql.get(
      this.sql.q
        .selectFrom('releases')
        .selectAll()
        .where('service', '=', service)
        .where('number', '=', parseReleaseRef(ref)),
    );
    return row && toRelease(row);
  }

  /** The release `ref` of `service`; throws NotFoundError saying which releases exist. */
  get(service: string, ref: ReleaseName | number): ReleaseRecord {
    const found = this.find(service, ref);
    if (found) return found;
    const latest = this.latest(service);
    throw new NotFoundError(
      `release ${releaseName(parseReleaseRef(ref))} of '${service}' does not exist; ` +
        (latest ? `its releases are r1 to ${latest.name}` : `'${service}' has no releases yet`),
    );
  }

  /** Every release of `service`, oldest first. */
  list(service: string): ReleaseRecord[] {
    return this.sql
      .all(this.sql.q.selectFrom('releases').selectAll().where('service', '=', service).orderBy('number'))
      .map(toRelease);
  }

  /** The newest release of `service`, or undefined when it has none. */
  latest(service: string): ReleaseRecord | undefined {
    const row = this.sql.get(
      this.sql.q
        .selectFrom('releases')
        .selectAll()
        .where('service', '=', service)
        .orderBy('number', 'desc')
        .limit(1),
    );
    return row && toRelease(row);
  }
}

function toRelease(row: ReleasesTable): ReleaseRecord {
  return {
    service: row.service,
    number: row.number,
    name: releaseName(row.number),
    digest: row.digest,
    configHash: row.config_hash,
    spec: parseJson<JsonObject>(row.spec),
    createdAt: row.created_at,
    createdBy: row.created_by,
    reason: row.reason,
  };
}
