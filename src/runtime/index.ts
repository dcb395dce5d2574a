/**
 * The runtime context: turning an unpacked image into running containers. For now the low-level
 * pieces: OCI runtime-spec synthesis and a one-off runner over the host's crun or runc; the
 * `RuntimeDriver` interface, its fake and the fleet-facing `local` driver build on these.
 */
export {
  CPU_PERIOD_US,
  cpuQuota,
  DEFAULT_CAPABILITIES,
  DEFAULT_HOSTNAME,
  DEFAULT_NOFILE_LIMIT,
  DEFAULT_PATH_ENV,
  DEFAULT_TMP_SIZE_BYTES,
  MASKED_PATHS,
  OCI_RUNTIME_SPEC_VERSION,
  READONLY_PATHS,
  runtimeSpec,
  type BindMount,
  type ProcessUser,
  type RuntimeSpecOptions,
} from './spec.js';
export {
  assertRootForLocalRuntime,
  CONTROL_TIMEOUT_MS,
  DEFAULT_RUN_TIMEOUT_MS,
  DEFAULT_STATE_DIR,
  detectRuntimes,
  KILL_GRACE_MS,
  listContainers,
  pickRuntime,
  runOnce,
  RUNTIME_NAMES,
  runtimeStateDir,
  type DetectOptions,
  type RunOnceOptions,
  type RunOnceResult,
  type RuntimeInfo,
  type RuntimeName,
} from './oci-runtime.js';
export { inspectCgroups, type CgroupHost, type CgroupMode, type CgroupMount } from './cgroups.js';
export { ensureRootfs, processFromImage } from './image-rootfs.js';
