/**
 * The `state` context: kiln's control-plane state in SQLite (`.kiln/state.db`, WAL), schema
 * migrations, typed repositories, and the append-only event and audit logs. Other contexts
 * import only this file. See docs/state.md.
 */
export {
  openState,
  DEFAULT_BUSY_TIMEOUT_MS,
  IN_MEMORY,
  STATE_DB_FILE,
  type OpenStateOptions,
  type StateSettings,
  type StateStore,
} from './db.js';
export { MIGRATIONS, SCHEMA_VERSION, type Migration, type MigrationResult } from './migrations.js';
export {
  setCondition,
  findCondition,
  isConditionTrue,
  ConditionReason,
  ConditionType,
  type Condition,
  type ConditionInput,
  type ConditionStatus,
} from './conditions.js';
export { canonicalJson, type JsonObject, type JsonValue } from './json.js';
export type { ServiceRecord, ServiceRepository } from './services.js';
export {
  parseReleaseRef,
  releaseName,
  type NewRelease,
  type ReleaseName,
  type ReleaseRecord,
  type ReleaseRepository,
} from './releases.js';
export {
  isTerminalPhase,
  ROLLOUT_PHASES,
  ROLLOUT_STRATEGIES,
  TERMINAL_ROLLOUT_PHASES,
  type NewRollout,
  type RolloutPatch,
  type RolloutPhase,
  type RolloutRecord,
  type RolloutRepository,
  type RolloutStatus,
  type RolloutStepStatus,
  type RolloutStrategy,
} from './rollouts.js';
export {
  RingRepository,
  type NewRing,
  type RingPhase,
  type RingRecord,
  type RingService,
  type RingWave,
  type WavePhase,
} from './rings.js';
export {
  CHAOS_MODES,
  CHAOS_OUTCOMES,
  ChaosRepository,
  type ChaosMode,
  type ChaosOutcome,
  type ChaosRunEnd,
  type ChaosRunPhase,
  type ChaosRunRecord,
  type ChaosTerminationFilter,
  type ChaosTerminationPatch,
  type ChaosTerminationRecord,
  type NewChaosRun,
  type NewChaosTermination,
} from './chaos.js';
export {
  INSTANCE_STATES,
  type InstanceDesiredState,
  type InstanceRole,
  type InstanceHealthRecord,
  type InstancePatch,
  type InstanceRecord,
  type InstanceRepository,
  type InstanceState,
  type InstanceTaint,
  type NewInstance,
  type PortRange,
} from './instances.js';
export {
  TOKEN_PREFIX,
  TOKEN_SCOPES,
  type CreatedToken,
  type TokenRecord,
  type TokenRepository,
  type TokenScope,
} from './tokens.js';
export {
  DEFAULT_READ_LIMIT,
  MAX_READ_LIMIT,
  type EventFilter,
  type EventLog,
  type EventRecord,
  type NewEvent,
} from './events.js';
export type { AuditLog, AuditRecord, AuditResult, NewAuditRecord } from './audit.js';
