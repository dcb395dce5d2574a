/**
 * The traffic context: the `TrafficRouter` interface the fleet controller drives, the built-in
 * router (in-process, or as its own process behind an admin API), the HAProxy driver, and the
 * pure weight calculators. See docs/traffic.md.
 */
export {
  checkServiceName,
  DEFAULT_DRAIN_TIMEOUT_MS,
  MAX_BACKEND_WEIGHT,
  validateRoute,
  type Backend,
  type BackendMetrics,
  type ServiceTotals,
  type DrainOptions,
  type LatencyHistogram,
  type ServiceRoute,
  type StatusClassCounts,
  type TrafficRouter,
} from './router.js';
export {
  SmoothWeightedPicker,
  smoothWeightedOrder,
  splitWeights,
  spreadWeight,
  type WeightSplit,
} from './weights.js';
export {
  FINE_LATENCY,
  fineBucket,
  fineBucketMs,
  LATENCY_BUCKETS_MS,
  PROMETHEUS_CONTENT_TYPE,
  prometheusText,
} from './metrics.js';
export {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_FAIL_TIMEOUT_MS,
  DEFAULT_IDLE_SOCKET_TIMEOUT_MS,
  DEFAULT_MAX_RETRIES,
} from './proxy.js';
export {
  createLocalRouter,
  DEFAULT_ROUTER_HOST,
  LocalRouter,
  type LocalRouterOptions,
} from './local-router.js';
export { loadRouterState, ROUTER_STATE_VERSION, saveRouterState, type RouterState } from './state-file.js';
export {
  httpStatusOf,
  MAX_ADMIN_BODY_BYTES,
  startRouterServer,
  type RouterServerOptions,
  type RunningRouterServer,
} from './router-server.js';
export {
  parseRouterArgs,
  ROUTER_TOKEN_ENV,
  runRouterProcess,
  type RouterProcessOptions,
} from './router-process.js';
export {
  DEFAULT_ADMIN_TIMEOUT_MS,
  readReadyFile,
  RouterClient,
  type RouterClientOptions,
  type RouterReady,
} from './router-client.js';
export {
  connectRouter,
  DEFAULT_ROUTER_START_TIMEOUT_MS,
  routerFiles,
  spawnRouter,
  type ConnectRouterOptions,
  type RouterFiles,
  type SpawnRouterOptions,
} from './router-spawn.js';
export { DEFAULT_STOP_TIMEOUT_MS } from './files.js';
export {
  DEFAULT_HAPROXY_RELOAD_TIMEOUT_MS,
  HAPROXY_DRAIN_POLL_MS,
  HaproxyRouter,
  startHaproxyRouter,
  type HaproxyRouterOptions,
} from './haproxy.js';
export { haproxyFiles, type HaproxyFiles } from './haproxy-process.js';
export { DEFAULT_HAPROXY_SLOTS, renderHaproxyConfig, type HaproxyState } from './haproxy-state.js';
export { DEFAULT_HAPROXY_COMMAND_TIMEOUT_MS, haproxyCommand } from './haproxy-runtime.js';
export { DEFAULT_ROUTER_CHECK_MS, SupervisedRouter, type SupervisedRouterOptions } from './supervised.js';
