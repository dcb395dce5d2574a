/**
 * The `dev` context: the developer loop (`kiln dev SERVICE`). A service's base image with the
 * app's folder mounted read-only, restarted on every change, marked dev and kept apart from the
 * fleet: no release, no control-plane record, no route. See docs/runtime.md (dev instances).
 */
export {
  DEFAULT_DEV_HEALTH_TIMEOUT_MS,
  DEFAULT_DEV_STOP_GRACE_MS,
  startDev,
  type DevOptions,
  type DevSession,
} from './session.js';
export { DevLoop, describeCycle, type DevCycle, type DevLoopOptions, type DevOutcome } from './loop.js';
export {
  ancestorsOf,
  planDevRoot,
  prepareDevRoot,
  RUNTIME_MOUNT_POINTS,
  type BaseEntry,
  type DevRoot,
  type DevRootInput,
  type DevRootPlan,
  type SkeletonEntry,
} from './root.js';
export {
  DEV_LABEL,
  DEV_PORT_OFFSET,
  DEV_RELEASE,
  devInstanceId,
  devInstanceSpec,
  devPort,
  INSTANCE_PORTS,
  serviceOmissions,
  type DevInstanceInput,
} from './settings.js';
export {
  createSession,
  DEFAULT_DEV_RUNTIME_ROOT,
  devDir,
  processStart,
  removeSession,
  sweepStaleSessions,
  type SessionPaths,
  type SessionRecord,
} from './sessions.js';
export { Debouncer, DEFAULT_DEBOUNCE_MS, ignoreMatcher, watchFolder, type ChangeBatch } from './watch.js';
export { DEFAULT_FOLLOW_INTERVAL_MS, LogFollower } from './follow.js';
