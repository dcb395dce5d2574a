import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { UnavailableError, wrap } from '../errors/index.js';
import { AuditLog } from './audit.js';
import { ChaosRepository } from './chaos.js';
import { EventLog } from './events.js';
import { InstanceRepository } from './instances.js';
import { migrate, MIGRATIONS, schemaVersion, type MigrationResult } from './migrations.js';
import { ReleaseRepository } from './releases.js';
import { RingRepository } from './rings.js';
import { RolloutRepository } from './rollouts.js';
import { ServiceRepository } from './services.js';
import { Sql, translateSqliteError } from './sqlite.js';
import { TokenRepository } from './tokens.js';

/** The file name of the state database inside `.kiln/`. */
export const STATE_DB_FILE = 'state.db';

/** Pass as the file to `openState` for a private database in memory, gone on `close` (for tests). */
export const IN_MEMORY = ':memory:';

/** How long a write waits for another connection's write lock before failing. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

/** Options for `openState`. */
export interface OpenStateOptions {
  /**
   * How long a write waits for another process's write lock, in milliseconds, before throwing
   * UnavailableError.
   * @default DEFAULT_BUSY_TIMEOUT_MS
   */
  readonly busyTimeoutMs?: number;
  /** The time every record is stamped with. @default () => new Date() */
  readonly clock?: () => Date;
}

/** The settings of a store's connection, as SQLite reports them. */
export interface StateSettings {
  /** `wal` for a file, `memory` for `IN_MEMORY`. */
  readonly journalMode: string;
  /** 0 off, 1 normal, 2 full, 3 extra. */
  readonly synchronous: number;
  readonly foreignKeys: boolean;
  readonly busyTimeoutMs: number;
  readonly sqliteVersion: string;
}

/** kiln's control-plane state: one SQLite connection and the repositories over it. */
export interface StateStore {
  /** The database file, or `:memory:`. */
  readonly file: string;
  /** What opening did to the schema. */
  readonly migration: MigrationResult;
  readonly services: ServiceRepository;
  readonly releases: ReleaseRepository;
  readonly rollouts: RolloutRepository;
  readonly rings: RingRepository;
  /** The chaos monkey's runs and terminations, with the recoveries it measured. */
  readonly chaos: ChaosRepository;
  readonly instances: InstanceRepository;
  readonly tokens: TokenRepository;
  readonly events: EventLog;
  readonly audit: AuditLog;
  /**
   * Runs `fn` as one transaction holding the write lock from the start (`BEGIN IMMEDIATE`), so
   * several repository calls commit together or not at all; repository calls inside it join it.
   * `fn` must be synchronous. Whatever it throws rolls everything back and is rethrown.
   *
   * @example
   * store.transaction(() => {
   *   const r = store.releases.create({ ... });
   *   store.events.append({ kind: 'release.created', service: r.service, subject: r.name, reason: 'Deployed', message: '' });
   * });
   */
  transaction<T>(fn: () => T): T;
  /** The schema version the database is at. */
  schemaVersion(): number;
  /** The connection's settings, for `kiln doctor` and tests. */
  settings(): StateSettings;
  /** Closes the connection; the store is unusable afterwards. Closing twice is harmless. */
  close(): void;
}

/**
 * Opens (creating it and its directory if needed) the state database at `file`, sets WAL,
 * `synchronous=NORMAL`, `foreign_keys=ON` and the busy timeout, and migrates the schema in one
 * transaction. Pass `IN_MEMORY` for a throwaway database.
 *
 * @example
 * const store = openState(path.join(kilnHome, STATE_DB_FILE));
 * try { store.releases.latest('api'); } finally { store.close(); }
 */
export function openState(file: string, options: OpenStateOptions = {}): StateStore {
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const clock = options.clock ?? (() => new Date());
  const memory = file === IN_MEMORY;
  if (!memory) {
    try {
      mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    } catch (err) {
      throw wrap(`creating the directory of ${file}`, new UnavailableError(String(err), { cause: err }));
    }
  }
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: busyTimeoutMs });
  } catch (err) {
    throw wrap(`opening ${file}`, translateSqliteError(err, file, busyTimeoutMs));
  }
  try {
    configure(db, memory, busyTimeoutMs);
    const migration = migrate(db, MIGRATIONS, () => clock().toISOString());
    return createStore(db, file, migration, new Sql(db, clock, busyTimeoutMs));
  } catch (err) {
    db.close();
    throw wrap(`opening ${file}`, translateSqliteError(err, file, busyTimeoutMs));
  }
}

function configure(db: Database.Database, memory: boolean, busyTimeoutMs: number): void {
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  // WAL lets readers (the API, the dashboard) read while the controller writes, and a commit is
  // one append to the log. With WAL, synchronous=NORMAL still survives a killed process; only a
  // power loss can drop the last commits, never corrupt the file.
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (!memory && mode !== 'wal') {
    throw new UnavailableError(
      `SQLite cannot use write-ahead logging for ${db.name} (journal mode stays '${String(mode)}'); ` +
        'keep .kiln on a local file system, not a network share',
    );
  }
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
}

function createStore(db: Database.Database, file: string, migration: MigrationResult, sql: Sql): StateStore {
  return {
    file,
    migration,
    services: new ServiceRepository(sql),
    releases: new ReleaseRepository(sql),
    rollouts: new RolloutRepository(sql),
    rings: new RingRepository(sql),
    chaos: new ChaosRepository(sql),
    instances: new InstanceRepository(sql),
    tokens: new TokenRepository(sql),
    events: new EventLog(sql),
    audit: new AuditLog(sql),
    transaction: (fn) => sql.tx(fn),
    schemaVersion: () => schemaVersion(db),
    settings: () => ({
      journalMode: String(db.pragma('journal_mode', { simple: true })),
      synchronous: Number(db.pragma('synchronous', { simple: true })),
      foreignKeys: db.pragma('foreign_keys', { simple: true }) === 1,
      busyTimeoutMs: Number(db.pragma('busy_timeout', { simple: true })),
      sqliteVersion: String(db.prepare('SELECT sqlite_version()').pluck().get()),
    }),
    close: () => {
      if (!db.open) return;
      sql.clear();
      db.close();
    },
  };
}
