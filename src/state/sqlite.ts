import type BetterSqlite3 from 'better-sqlite3';
import {
  DummyDriver,
  Kysely,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type Compilable,
} from 'kysely';
import { IntegrityError, KilnError, UnavailableError } from '../errors/index.js';
import type { Tables } from './schema.js';

/** Prepared statements kept per connection; queries with `IN (…)` lists of many lengths would grow it without end. */
const STATEMENT_CACHE_SIZE = 256;

/**
 * The synchronous executor every repository shares. Queries are built with kysely (typed against
 * `Tables`) but only compiled by it; better-sqlite3 runs them. kysely's own SqliteDialect is
 * async and starts transactions with a deferred `begin`, which under WAL fails at once with
 * SQLITE_BUSY_SNAPSHOT when another connection commits between a transaction's read and its write;
 * `tx` here takes the write lock up front (`BEGIN IMMEDIATE`) and cannot yield mid-transaction.
 */
export class Sql {
  /** The query builder; call `.compile()`-able builders through `all`, `get` and `run`. */
  readonly q: Kysely<Tables>;
  private readonly statements = new Map<string, BetterSqlite3.Statement<unknown[]>>();

  constructor(
    readonly db: BetterSqlite3.Database,
    private readonly clock: () => Date,
    private readonly busyTimeoutMs: number,
  ) {
    this.q = new Kysely<Tables>({
      dialect: {
        createAdapter: () => new SqliteAdapter(),
        createDriver: () => new DummyDriver(),
        createIntrospector: (k) => new SqliteIntrospector(k),
        createQueryCompiler: () => new SqliteQueryCompiler(),
      },
    });
  }

  /** Every row the query returns. */
  all<R>(query: Compilable<R>): R[] {
    const { sql, parameters } = query.compile();
    return this.guard(() => this.statement(sql).all(...parameters) as R[]);
  }

  /** The first row the query returns, if any. */
  get<R>(query: Compilable<R>): R | undefined {
    const { sql, parameters } = query.compile();
    return this.guard(() => this.statement(sql).get(...parameters) as R | undefined);
  }

  /** Runs a statement that returns no rows; returns how many rows it changed. */
  run(query: Compilable<unknown>): number {
    const { sql, parameters } = query.compile();
    return this.guard(() => this.statement(sql).run(...parameters).changes);
  }

  /**
   * Runs `fn` in a transaction holding the write lock from its first statement; nested calls
   * become savepoints. `fn` must be synchronous: a transaction never spans an `await`.
   */
  tx<T>(fn: () => T): T {
    return this.guard(() => this.db.transaction(fn).immediate());
  }

  /** The clock's time as ISO 8601 UTC text, the form every timestamp column holds. */
  now(): string {
    return this.clock().toISOString();
  }

  /** Forgets prepared statements (before closing the connection). */
  clear(): void {
    this.statements.clear();
  }

  private statement(sql: string): BetterSqlite3.Statement<unknown[]> {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      if (this.statements.size >= STATEMENT_CACHE_SIZE) this.statements.clear();
      stmt = this.db.prepare<unknown[]>(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw translateSqliteError(err, this.db.name, this.busyTimeoutMs);
    }
  }
}

/** The SQLite result code of an error thrown by better-sqlite3 (`SQLITE_CONSTRAINT_UNIQUE`, …), if it is one. */
export function sqliteCode(err: unknown): string | undefined {
  if (err instanceof KilnError || !(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/**
 * Turns the SQLite errors a user can act on into kiln's errors, naming the file and what to do;
 * constraint errors pass through for the repository that knows what they mean.
 */
export function translateSqliteError(err: unknown, file: string, busyTimeoutMs: number): unknown {
  const code = sqliteCode(err);
  if (code === undefined) return err;
  const message = (err as Error).message;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new UnavailableError(
      `${file} is locked by another writer (${code}, after waiting up to ${busyTimeoutMs} ms); ` +
        'wait for the other kiln process to finish, or raise busyTimeoutMs',
      { cause: err },
    );
  }
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new IntegrityError(
      `${file} is not a readable kiln state database (${code}: ${message}); ` +
        'restore it from a backup, or move it aside to start with empty state',
      { cause: err },
    );
  }
  if (code === 'SQLITE_FULL' || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) {
    return new UnavailableError(
      `cannot write ${file} (${code}: ${message}); check free space and permissions`,
      {
        cause: err,
      },
    );
  }
  return err;
}
