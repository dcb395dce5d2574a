/**
 * The runtime context: turning an unpacked image into running containers. The fleet drives
 * instances through the `RuntimeDriver` interface, implemented in memory (`FakeRuntimeDriver`) and
 * over the host's crun or runc (`LocalRuntimeDriver`) and as Docker Swarm services over the Engine
 * API (`SwarmRuntimeDriver`); below them, OCI runtime-spec synthesis, a
 * one-off runner and the rootfs per image digest.
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
export {
  ensureRootfs,
  filesManifestPath,
  filesManifestSource,
  processFromImage,
  quarantineRootfs,
  readFilesManifest,
  RUNTIME_MOUNT_POINTS,
} from './image-rootfs.js';
export {
  collectRootfs,
  DEFAULT_MIN_AGE_MS,
  DEFAULT_SET_ASIDE_TTL_MS,
  type RootfsGcOptions,
  type RootfsGcResult,
} from './rootfs-gc.js';
export { attachedFiles, FILES_ARTIFACT_TYPE, filesOfLayers, type FilesArtifact } from './image-files.js';
export {
  compareEntries,
  compareTree,
  describeDrift,
  walkTree,
  type CompareOptions,
  type TreeBaseline,
  type TreeDrift,
  type TreeEntry,
  type TreeEntryType,
} from './tree.js';
export {
  DEFAULT_EXEC_TIMEOUT_MS,
  DEFAULT_LOG_READ_BYTES,
  DEFAULT_STOP_GRACE_MS,
  INSTANCE_ID_PATTERN,
  validateInstanceSpec,
  type ExecOptions,
  type EngineHealthCheck,
  type ExecResult,
  type InstanceDescription,
  type InstanceAttestation,
  type InstanceSpec,
  type InstanceState,
  type InstanceStatus,
  type KillSignal,
  type LogsOptions,
  type RuntimeDriver,
  type StopOptions,
} from './driver.js';
export {
  FAKE_FIRST_PID,
  FakeHost,
  FakeRuntimeDriver,
  type FakeHostOptions,
  type FakeProgram,
  type FakeRuntimeDriverOptions,
} from './fake.js';
export { DEFAULT_EXIT_POLL_INTERVAL_MS } from './exit-watch.js';
export {
  DEFAULT_INSTANCE_RUNTIME_ROOT,
  findInit,
  LocalRuntimeDriver,
  TINI_STATIC,
  type LocalRuntimeDriverOptions,
} from './local.js';
export {
  DEFAULT_SWARM_POLL_MS,
  DEFAULT_SWARM_SCOPE,
  DEFAULT_SWARM_START_TIMEOUT_MS,
  SwarmRuntimeDriver,
  type SwarmRuntimeDriverOptions,
} from './swarm/driver.js';
export { parseEngineUrl, readEngineTls, type EngineTls } from './swarm/engine.js';
export { probeSwarm, type SwarmProbe } from './swarm/probe.js';
