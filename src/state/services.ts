import { NotFoundError } from '../errors/index.js';
import { canonicalJson, parseJson, sha256, type JsonObject } from './json.js';
import type { ServicesTable } from './schema.js';
import type { Sql } from './sqlite.js';
import { Issues } from './validate.js';

/** A declared service as stored: the user's spec, canonicalised, and its hash. */
export interface ServiceRecord {
  readonly name: string;
  /** The declared service, as the user wrote it (keys sorted). */
  readonly spec: JsonObject;
  /** `sha256:<hex>` of the canonical JSON of `spec`. */
  readonly specHash: string;
  readonly createdAt: string;
  /** When `spec` last changed; putting an equal spec does not move it. */
  readonly updatedAt: string;
}

/** The declared services. Users own these; controllers only read them. */
export class ServiceRepository {
  /** @internal Created by `openState`. */
  constructor(private readonly sql: Sql) {}

  /**
   * Records the declared spec of `name`, creating the service or replacing its spec. Putting a
   * spec equal to the stored one (same canonical JSON) changes nothing, `updatedAt` included.
   *
   * @example
   * const before = store.services.find('api')?.specHash;
   * const after = store.services.put('api', spec).specHash;
   * if (after !== before) planRelease();
   */
  put(name: string, spec: object): ServiceRecord {
    new Issues()
      .name('name', name)
      .check(typeof spec === 'object' && spec !== null && !Array.isArray(spec), 'spec', 'must be an object')
      .throwIfAny(`service ${JSON.stringify(name)}`);
    const text = canonicalJson(spec, `spec of service ${name}`);
    const specHash = sha256(text);
    return this.sql.tx(() => {
      const current = this.row(name);
      if (current?.spec_hash === specHash) return toService(current);
      const now = this.sql.now();
      this.sql.run(
        this.sql.q
          .insertInto('services')
          .values({ name, spec: text, spec_hash: specHash, created_at: now, updated_at: now })
          .onConflict((oc) =>
            oc.column('name').doUpdateSet({ spec: text, spec_hash: specHash, updated_at: now }),
          ),
      );
      return toService(this.row(name)!);
    });
  }

  /** The service named `name`, or undefined. */
  find(name: string): ServiceRecord | undefined {
    const row = this.row(name);
    return row && toService(row);
  }

  /** The service named `name`; throws NotFoundError listing the known names when there is none. */
  get(name: string): ServiceRecord {
    const found = this.find(name);
    if (found) return found;
    const known = this.names();
    throw new NotFoundError(
      `service '${name}' is not declared${known.length > 0 ? ` (declared: ${known.join(', ')})` : ''}; ` +
        'declare it in kiln.config.ts and deploy again',
    );
  }

  /** Every service, by name. */
  list(): ServiceRecord[] {
    return this.sql.all(this.sql.q.selectFrom('services').selectAll().orderBy('name')).map(toService);
  }

  private names(): string[] {
    return this.sql.all(this.sql.q.selectFrom('services').select('name').orderBy('name')).map((r) => r.name);
  }

  private row(name: string): ServicesTable | undefined {
    return this.sql.get(this.sql.q.selectFrom('services').selectAll().where('name', '=', name));
  }
}

function toService(row: ServicesTable): ServiceRecord {
  return {
    name: row.name,
    spec: parseJson<JsonObject>(row.spec),
    specHash: row.spec_hash,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
