/**
 * The `k8s` context: a release as Kubernetes manifests (`renderRelease`, pure), written as YAML
 * (`toYaml`), and applied to a cluster through a kubeconfig (`applyManifests`, with
 * @kubernetes/client-node). See docs/kubernetes.md.
 */
export { renderRelease, imageRefOf, allObjects } from './render.js';
export { toYaml } from './yaml.js';
export {
  applyManifests,
  availability,
  DEFAULT_FIELD_MANAGER,
  DEFAULT_READY_POLL_MS,
  DEFAULT_READY_TIMEOUT_MS,
  type AppliedObject,
  type ApplyOptions,
} from './apply.js';
export {
  cpuQuantity,
  memoryQuantity,
  probeSeconds,
  replicaSplit,
  gatewayCanaryReplicas,
} from './quantity.js';
export { PORT_NAME, POD_INDEX_LABEL, envOf, probeOf } from './pod.js';
export {
  CONFIG_HASH_ANNOTATION,
  DEFAULT_VOLUME_SIZE,
  DIGEST_ANNOTATION,
  MANAGED_BY_LABEL,
  NAME_LABEL,
  RELEASE_LABEL,
  WEIGHT_ANNOTATION,
  type GatewayRef,
  type HttpRoute,
  type K8sObject,
  type K8sRelease,
  type Rendered,
  type RenderOptions,
} from './types.js';
