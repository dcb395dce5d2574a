import type BetterSqlite3 from 'better-sqlite3';
import { ConflictError, IntegrityError, KilnError } from '../errors/index.js';

/** One schema change: numbered from 1 without gaps, applied once, in order, and never edited after release. */
export interface Migration {
  readonly version: number;
  /** A short kebab-case name, recorded beside the version so a mismatched history is caught. */
  readonly name: string;
  /** DDL (and data changes) run as one script inside the migrating transaction. */
  readonly sql: string;
}

/** What `migrate` did. */
export interface MigrationResult {
  /** The schema version before (0 for a new database). */
  readonly from: number;
  /** The schema version now. */
  readonly to: number;
  /** Names of the migrations applied, in order. */
  readonly applied: readonly string[];
}

/**
 * kiln's schema history. Append new migrations at the end; never change one that has shipped.
 * The SQL is written out literally (no interpolated constants) so that no later edit elsewhere can
 * change what a shipped migration does. Immutable tables get three triggers: UPDATE, DELETE, and
 * an INSERT that would overwrite a row, because `INSERT OR REPLACE` deletes the old row without
 * firing DELETE triggers (unless `recursive_triggers` is on, which no tamperer would turn on). The row types in `schema.ts` follow the latest version.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'services-and-releases',
    sql: `
CREATE TABLE services (
  name TEXT PRIMARY KEY,
  spec TEXT NOT NULL CHECK (json_valid(spec)),
  spec_hash TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;
CREATE TABLE releases (
  service TEXT NOT NULL REFERENCES services (name),
  number INTEGER NOT NULL CHECK (number >= 1),
  digest TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  spec TEXT NOT NULL CHECK (json_valid(spec)),
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  reason TEXT NOT NULL,
  PRIMARY KEY (service, number)
) STRICT;
CREATE TRIGGER releases_no_update BEFORE UPDATE ON releases
BEGIN SELECT RAISE(ABORT, 'releases are immutable: create a new release instead of changing one'); END;
CREATE TRIGGER releases_no_delete BEFORE DELETE ON releases
BEGIN SELECT RAISE(ABORT, 'releases are immutable: DELETE is refused'); END;
CREATE TRIGGER releases_no_replace BEFORE INSERT ON releases
WHEN EXISTS (SELECT 1 FROM releases WHERE service = NEW.service AND number = NEW.number)
BEGIN SELECT RAISE(ABORT, 'releases are immutable: REPLACE of an existing release is refused'); END;`,
  },
  {
    version: 2,
    name: 'rollouts-and-instances',
    sql: `
CREATE TABLE rollouts (
  id TEXT PRIMARY KEY,
  service TEXT NOT NULL REFERENCES services (name),
  from_release INTEGER,
  to_release INTEGER NOT NULL,
  strategy TEXT NOT NULL,
  phase TEXT NOT NULL CHECK (
    phase IN ('pending', 'progressing', 'paused', 'analysing', 'succeeded', 'rolled-back', 'failed')),
  status TEXT NOT NULL CHECK (json_valid(status)),
  version INTEGER NOT NULL CHECK (version >= 1),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  finished_at TEXT,
  FOREIGN KEY (service, from_release) REFERENCES releases (service, number),
  FOREIGN KEY (service, to_release) REFERENCES releases (service, number)
) STRICT;
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (service) WHERE phase IN ('pending', 'progressing', 'paused', 'analysing');
CREATE INDEX rollouts_by_service ON rollouts (service, created_at);
CREATE TABLE instances (
  id TEXT PRIMARY KEY,
  service TEXT NOT NULL REFERENCES services (name),
  release INTEGER NOT NULL,
  digest TEXT NOT NULL,
  port INTEGER CHECK (port BETWEEN 1 AND 65535),
  state TEXT NOT NULL CHECK (state IN ('starting', 'healthy', 'unhealthy', 'draining', 'stopped', 'tainted')),
  state_since TEXT NOT NULL,
  desired_state TEXT CHECK (desired_state IN ('running', 'stopped')),
  health TEXT NOT NULL CHECK (json_valid(health)),
  taint TEXT CHECK (taint IS NULL OR json_valid(taint)),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  stopped_at TEXT,
  FOREIGN KEY (service, release) REFERENCES releases (service, number)
) STRICT;
CREATE UNIQUE INDEX instances_live_port ON instances (port) WHERE port IS NOT NULL AND state <> 'stopped';
CREATE INDEX instances_by_service ON instances (service, state);`,
  },
  {
    version: 3,
    name: 'tokens',
    sql: `
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  scopes TEXT NOT NULL CHECK (json_valid(scopes)),
  created_at TEXT NOT NULL,
  revoked_at TEXT
) STRICT;
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;`,
  },
  {
    version: 4,
    name: 'events-and-audit',
    sql: `
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  kind TEXT NOT NULL,
  service TEXT,
  subject TEXT,
  reason TEXT NOT NULL,
  message TEXT NOT NULL,
  data TEXT NOT NULL CHECK (json_valid(data))
) STRICT;
CREATE INDEX events_by_service ON events (service, seq);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE is refused'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE is refused'); END;
CREATE TRIGGER events_no_replace BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'events are append-only: REPLACE of an existing record is refused'); END;
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  result TEXT NOT NULL CHECK (result IN ('ok', 'denied', 'failed')),
  detail TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_actor ON audit (actor, seq);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only: UPDATE is refused'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit records are append-only: DELETE is refused'); END;
CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
WHEN EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'audit records are append-only: REPLACE of an existing record is refused'); END;`,
  },
  {
    version: 5,
    name: 'instance-roles',
    // A canary's baseline runs the old release beside its stable instances; the role tells them apart.
    sql: `ALTER TABLE instances ADD COLUMN role TEXT CHECK (role IN ('baseline', 'canary'));`,
  },
  {
    version: 6,
    name: 'rings',
    sql: `
CREATE TABLE rings (
  id TEXT PRIMARY KEY,
  base TEXT NOT NULL,
  base_digest TEXT NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('running', 'succeeded', 'failed')),
  waves TEXT NOT NULL CHECK (json_valid(waves)),
  message TEXT NOT NULL,
  created_by TEXT NOT NULL,
  version INTEGER NOT NULL CHECK (version >= 1),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  finished_at TEXT
) STRICT;
CREATE UNIQUE INDEX rings_one_running ON rings (phase) WHERE phase = 'running';`,
  },
  {
    version: 7,
    name: 'chaos',
    // run_id is NULL for the scheduled monkey's terminations; a run's requests and failed are the
    // service-level totals over the run, filled in when it ends.
    sql: `
CREATE TABLE chaos_runs (
  id TEXT PRIMARY KEY,
  service TEXT,
  mode TEXT NOT NULL,
  kills INTEGER NOT NULL,
  interval_ms INTEGER NOT NULL,
  dry_run INTEGER NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('running', 'done', 'failed')),
  message TEXT NOT NULL,
  created_by TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  requests INTEGER,
  failed INTEGER
) STRICT;
CREATE TABLE chaos_terminations (
  id TEXT PRIMARY KEY,
  run_id TEXT,
  service TEXT NOT NULL,
  instance TEXT NOT NULL,
  mode TEXT NOT NULL,
  dry_run INTEGER NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('terminated', 'would-terminate', 'held', 'skipped')),
  reason TEXT NOT NULL,
  started_at TEXT NOT NULL,
  detected_at TEXT,
  recovered_at TEXT,
  replacement TEXT,
  failed_requests INTEGER
) STRICT;
CREATE INDEX chaos_terminations_by_run ON chaos_terminations (run_id, started_at);
CREATE INDEX chaos_terminations_by_service ON chaos_terminations (service, started_at);`,
  },
  {
    version: 8,
    name: 'instance ordinals',
    // A stateful service's instances carry their identity's ordinal (db-0, db-1, …). The index is
    // the safety net of one-at-a-time updates: never two live instances of one identity, which
    // would share its port and its volume.
    sql: `
ALTER TABLE instances ADD COLUMN ordinal INTEGER CHECK (ordinal IS NULL OR ordinal >= 0);
CREATE UNIQUE INDEX instances_live_ordinal ON instances (service, ordinal)
  WHERE ordinal IS NOT NULL AND state <> 'stopped';`,
  },
];

/** The schema version this build of kiln writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

/**
 * Brings the database up to the last of `migrations` in one `BEGIN IMMEDIATE` transaction, so a
 * crash leaves the old schema whole and two processes opening at once migrate only once. Refuses
 * (ConflictError) a database whose schema is newer than `migrations` know, and (IntegrityError)
 * one whose recorded history differs from them.
 *
 * @example
 * const { from, to } = migrate(db, MIGRATIONS, () => new Date().toISOString());
 */
export function migrate(
  db: BetterSqlite3.Database,
  migrations: readonly Migration[],
  now: () => string,
): MigrationResult {
  assertNumbered(migrations);
  const latest = migrations.length;
  return db
    .transaction((): MigrationResult => {
      db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT`);
      const rows = db
        .prepare<[], { version: number; name: string }>(
          'SELECT version, name FROM schema_migrations ORDER BY version',
        )
        .all();
      const from = rows.at(-1)?.version ?? 0;
      if (from > latest) {
        throw new ConflictError(
          `${db.name} has schema version ${from}, but this kiln knows versions up to ${latest}: ` +
            'a newer kiln wrote it. Upgrade kiln to open it; kiln never downgrades a state database',
        );
      }
      rows.forEach((row, i) => {
        const known = migrations[row.version - 1];
        if (row.version !== i + 1 || known?.name !== row.name) {
          throw new IntegrityError(
            `${db.name} records migration ${row.version} '${row.name}', but this kiln's migration ` +
              `${row.version} is '${known?.name ?? 'missing'}': the database comes from another build of kiln. ` +
              'Open it with the kiln that created it',
          );
        }
      });
      const insert = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
      const pending = migrations.slice(from);
      for (const m of pending) {
        db.exec(m.sql);
        insert.run(m.version, m.name, now());
      }
      return { from, to: Math.max(from, latest), applied: pending.map((m) => m.name) };
    })
    .immediate();
}

/** The schema version recorded in the database (0 when nothing is). */
export function schemaVersion(db: BetterSqlite3.Database): number {
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  if (table === undefined) return 0;
  const row = db.prepare<[], { v: number | null }>('SELECT max(version) AS v FROM schema_migrations').get();
  return row?.v ?? 0;
}

function assertNumbered(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new KilnError(
        'internal',
        `migration '${m.name}' is numbered ${m.version} but stands at position ${i + 1}; ` +
          'number migrations 1, 2, 3… in the order they apply',
      );
    }
  });
}
