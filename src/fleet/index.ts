/**
 * The `fleet` context: desired versus observed, the pure planner, instance lifecycle and health.
 * The executor and the control loop build on these.
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
