/**
 * The `fleet` context: desired versus observed, the pure planner, instance lifecycle and health.
 * The executor and the control loop (`FleetController`), and deploy and rollback.
 */
export { plan } from './planner.js';
export { rollingStep, resolveCountOrPercent, type RollingStep } from './counts.js';
export { transition, type InstanceEvent, type InstanceHealth } from './lifecycle.js';
export { probe, type ExecProbe } from './health.js';
export type {
  Action,
  DesiredService,
  InstancePhase,
  ObservedInstance,
  ReleaseRef,
  RolloutState,
  StopReason,
} from './types.js';
export {
  FleetController,
  DEFAULT_PORT_RANGE,
  DEFAULT_RESYNC_MS,
  IDLE_PASS_MS,
  type ControllerOptions,
} from './controller.js';
export { deploy, rollback, type DeployInput, type OperationsContext, type Outcome } from './operations.js';
export { controlRollout, type RolloutCommand, type RolloutCommandInput } from './rollout-control.js';
export {
  analyseCanaries,
  judgeConfigOf,
  looksOf,
  DEFAULT_ERROR_TOLERANCE_PP,
  DEFAULT_RELATIVE_TOLERANCE_PCT,
} from './canary.js';
export { canaryStatusOf, type CanaryLook, type CanaryStatus } from './canary-status.js';
export { canaryPlacement, instanceWeights, type CanaryPlacement } from './counts.js';
export { fillQuery, queryRange } from './canary-samples.js';
export {
  configHash,
  DEFAULT_CANARY,
  desiredOf,
  strategyOf,
  releaseSpec,
  viewOf,
  DEFAULT_ROLLBACK_WINDOW_MS,
  type ReleaseProcess,
  type ReleaseSpec,
  type ServiceView,
} from './desired.js';
export { storeCatalog, type ImageCatalog, type ResolvedImage, type StoreCatalogOptions } from './images.js';
export { admitImage, trustedKeysOf, type Admission, type AdmissionContext } from './trust.js';
export { liveProber, STARTING_PROBE_MS, type Prober } from './tracker.js';
export { RING_TICK_MS, RingRunner, startRing, type RingInput, type RingTarget } from './rings.js';
export {
  DEFAULT_FULL_EVERY,
  DEFAULT_VERIFY_INTERVAL_MS,
  driftAction,
  DriftWatch,
  type DriftWatchOptions,
  type InstanceVerdict,
} from './drift.js';
export {
  DEFAULT_EXEC_GRACE_MS,
  DEFAULT_EXEC_HEARTBEAT_MS,
  DEFAULT_EXEC_SESSION_TTL_MS,
  EXEC_DETECTED,
  ExecSessions,
  graceOf,
  type ExecSession,
  type ExecSessionsOptions,
} from './exec-sessions.js';
export { planStateful } from './planner-stateful.js';
export { defaultClaimsDir, HostPortClaims } from './host-ports.js';
export {
  DEFAULT_ROOTFS_GC_MS,
  KEEP_RELEASES,
  RootfsCollector,
  type RootfsCollectorOptions,
} from './rootfs-collector.js';
