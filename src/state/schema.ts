/**
 * Row types of the state database, as kysely sees them: one interface per table, column names as
 * in SQL. Timestamps are ISO 8601 UTC text, JSON columns are text checked by `json_valid`. The DDL
 * that creates these tables is in `migrations.ts`; the two change together.
 */
import type { Generated } from 'kysely';

/** `schema_migrations`: one row per applied migration. */
export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: string;
}

/** `services`: the declared services, as users wrote them. */
export interface ServicesTable {
  name: string;
  spec: string;
  spec_hash: string;
  created_at: string;
  updated_at: string;
}

/** `releases`: immutable; triggers refuse UPDATE and DELETE. */
export interface ReleasesTable {
  service: string;
  number: number;
  digest: string;
  config_hash: string;
  spec: string;
  created_at: string;
  created_by: string;
  reason: string;
}

/** `rings`: base-image promotion rings; at most one `running` (partial unique index). */
export interface RingsTable {
  id: string;
  base: string;
  base_digest: string;
  phase: string;
  waves: string;
  message: string;
  created_by: string;
  version: number;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

/** `chaos_runs`: on-demand chaos runs; `requests` and `failed` are filled in when one ends. */
export interface ChaosRunsTable {
  id: string;
  service: string | null;
  mode: string;
  kills: number;
  interval_ms: number;
  dry_run: number;
  phase: string;
  message: string;
  created_by: string;
  started_at: string;
  finished_at: string | null;
  requests: number | null;
  failed: number | null;
}

/**
 * `chaos_terminations`: every decision of the chaos monkey, taken or held. `run_id` is NULL for
 * scheduled ones; `instance` is '' when none was chosen (held or skipped).
 */
export interface ChaosTerminationsTable {
  id: string;
  run_id: string | null;
  service: string;
  instance: string;
  mode: string;
  dry_run: number;
  outcome: string;
  reason: string;
  started_at: string;
  detected_at: string | null;
  recovered_at: string | null;
  replacement: string | null;
  failed_requests: number | null;
}

/** `rollouts`: at most one non-terminal row per service (partial unique index). */
export interface RolloutsTable {
  id: string;
  service: string;
  from_release: number | null;
  to_release: number;
  strategy: string;
  phase: string;
  status: string;
  version: number;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

/** `instances`: what the controller started; a live instance's port is unique (partial unique index). */
export interface InstancesTable {
  id: string;
  service: string;
  release: number;
  digest: string;
  port: number | null;
  state: string;
  state_since: string;
  desired_state: string | null;
  health: string;
  taint: string | null;
  created_at: string;
  updated_at: string;
  stopped_at: string | null;
  role: string | null;
  ordinal: number | null;
}

/** `tokens`: API tokens, stored as SHA-256 hashes only. */
export interface TokensTable {
  id: string;
  name: string;
  hash: string;
  scopes: string;
  created_at: string;
  revoked_at: string | null;
}

/** `events`: append-only; triggers refuse UPDATE and DELETE. */
export interface EventsTable {
  seq: Generated<number>;
  at: string;
  kind: string;
  service: string | null;
  subject: string | null;
  reason: string;
  message: string;
  data: string;
}

/** `audit`: append-only; triggers refuse UPDATE and DELETE. */
export interface AuditTable {
  seq: Generated<number>;
  at: string;
  actor: string;
  action: string;
  target: string;
  result: string;
  detail: string;
}

/** Every table, for `Kysely<Tables>`. */
export interface Tables {
  schema_migrations: SchemaMigrationsTable;
  services: ServicesTable;
  releases: ReleasesTable;
  rollouts: RolloutsTable;
  instances: InstancesTable;
  rings: RingsTable;
  chaos_runs: ChaosRunsTable;
  chaos_terminations: ChaosTerminationsTable;
  tokens: TokensTable;
  events: EventsTable;
  audit: AuditTable;
}
