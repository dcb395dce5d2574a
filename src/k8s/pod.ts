/**
 * The pod of a release: one container pinned by digest, with a read-only root, the image's user,
 * probes from the service's checks, resources, env, a memory-backed /tmp as the local runtime
 * gives, and the release's config files and a stateful service's volumes mounted.
 */
import type {
  V1Container,
  V1EnvVar,
  V1PersistentVolumeClaim,
  V1PodTemplateSpec,
  V1Probe,
  V1ResourceRequirements,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { DEFAULT_STOP_GRACE_MS, DEFAULT_TMP_SIZE_BYTES } from '../runtime/index.js';
import type { HealthSpec, ServiceSpec } from '../spec/index.js';
import { cpuQuantity, memoryQuantity, probeSeconds } from './quantity.js';
import {
  CONFIG_HASH_ANNOTATION,
  DIGEST_ANNOTATION,
  MANAGED_BY_LABEL,
  NAME_LABEL,
  RELEASE_LABEL,
  type K8sRelease,
} from './types.js';

/** The name of the container port and Service port every release serves on. */
export const PORT_NAME = 'main';
/** The pod-index label the StatefulSet controller puts on each pod (Kubernetes 1.28 and later). */
export const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';

/** Labels every object of `service` carries; `release` adds the release label. */
export function labelsOf(service: string, release?: string): Record<string, string> {
  return {
    [MANAGED_BY_LABEL]: 'kiln',
    [NAME_LABEL]: service,
    ...(release === undefined ? {} : { [RELEASE_LABEL]: release }),
  };
}

/** The selector of a release's pods (or of every pod of the service, without `release`). */
export function selectorOf(service: string, release?: string): Record<string, string> {
  return { [NAME_LABEL]: service, ...(release === undefined ? {} : { [RELEASE_LABEL]: release }) };
}

/** The ConfigMap holding a release's config files: `<service>-<release>-config`. */
export function configMapName(release: K8sRelease): string {
  return `${release.service.name}-${release.name}-config`;
}

/**
 * A health check as a probe: `http` → httpGet on the service's port, `tcp` → tcpSocket on it,
 * `exec` → exec. kiln's durations are milliseconds; probe fields are whole seconds, rounded up.
 */
export function probeOf(check: HealthSpec): V1Probe {
  const handler: V1Probe =
    check.http !== undefined
      ? { httpGet: { path: check.http, port: PORT_NAME } }
      : check.exec !== undefined
        ? { exec: { command: [...check.exec] } }
        : { tcpSocket: { port: PORT_NAME } };
  return {
    ...handler,
    periodSeconds: probeSeconds(check.interval),
    timeoutSeconds: probeSeconds(check.timeout),
    failureThreshold: check.threshold,
  };
}

function resourcesOf(service: ServiceSpec): V1ResourceRequirements | undefined {
  const { cpus, memory } = service.resources;
  if (cpus === undefined && memory === undefined) return undefined;
  const quantities: Record<string, string> = {
    ...(cpus === undefined ? {} : { cpu: cpuQuantity(cpus) }),
    ...(memory === undefined ? {} : { memory: memoryQuantity(memory) }),
  };
  // Requests equal to limits: the pod gets what kiln's cgroup limits give an instance, no more.
  return { limits: quantities, requests: { ...quantities } };
}

/**
 * The environment kiln gives an instance, as the local runtime does (`instanceEnv`): the service's
 * own, then `PORT`, `KILN_SERVICE`, `KILN_RELEASE`, `KILN_INSTANCE` (the pod's name) and, for a
 * stateful identity, `KILN_IDENTITY`, `KILN_ORDINAL` and `KILN_PEERS`, sorted by name.
 */
export function envOf(release: K8sRelease): V1EnvVar[] {
  const { service } = release;
  const values: Record<string, string> = {
    ...service.env,
    PORT: String(service.port),
    KILN_SERVICE: service.name,
    KILN_RELEASE: release.name,
  };
  const fields: Record<string, string> = { KILN_INSTANCE: 'metadata.name' };
  if (service.kind === 'stateful') {
    // Every identity listens on the same port in its own pod; peers are found by the headless
    // Service's per-pod DNS names, which resolve within the namespace.
    values.KILN_PEERS = [...Array(service.replicas).keys()]
      .map((k) => `${service.name}-${k}=${service.name}-${k}.${service.name}:${service.port}`)
      .join(',');
    fields.KILN_IDENTITY = 'metadata.name';
    fields.KILN_ORDINAL = `metadata.labels['${POD_INDEX_LABEL}']`;
  }
  for (const name of Object.keys(fields)) delete values[name];
  const env: V1EnvVar[] = [
    ...Object.entries(values).map(([name, value]) => ({ name, value })),
    ...Object.entries(fields).map(([name, fieldPath]) => ({ name, valueFrom: { fieldRef: { fieldPath } } })),
  ];
  return env.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The claims a stateful service's identities each get, one per declared volume. */
export function volumeClaimsOf(service: ServiceSpec, size: string): V1PersistentVolumeClaim[] {
  return service.volumes.map((v) => ({
    metadata: { name: v.name, labels: labelsOf(service.name) },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } } },
  }));
}

/**
 * The pod template of `release`, pulling `image` (`registry/repo@sha256:…`).
 *
 * The root file system is read-only, as every kiln instance's is; /tmp is a memory-backed
 * emptyDir of the local runtime's tmpfs size. The pod runs as the image's user (non-root unless
 * that user is root), with no privilege escalation, the runtime's default seccomp profile and no
 * service account token, since an instance has no business with the Kubernetes API.
 */
export function podTemplateOf(release: K8sRelease, image: string): V1PodTemplateSpec {
  const { service, process } = release;
  const mounts: V1VolumeMount[] = [{ name: 'tmp', mountPath: '/tmp' }];
  const volumes: V1Volume[] = [
    { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: memoryQuantity(DEFAULT_TMP_SIZE_BYTES) } },
  ];
  if (service.config) {
    mounts.push({ name: 'config', mountPath: service.config.path, readOnly: true });
    volumes.push({ name: 'config', configMap: { name: configMapName(release) } });
  }
  if (service.kind === 'stateful') {
    for (const v of service.volumes) mounts.push({ name: v.name, mountPath: v.path });
  }
  const check = service.health;
  // A stateful update moves on once the replaced pod is Ready, so its `ready` check (when it has
  // one) is the readiness probe; the StatefulSet controller waits for it as kiln's planner does.
  const ready = service.kind === 'stateful' && service.ready ? service.ready : check;
  const resources = resourcesOf(service);
  const container: V1Container = {
    name: service.name,
    image,
    command: [...process.args],
    workingDir: process.cwd,
    env: envOf(release),
    ports: [{ name: PORT_NAME, containerPort: service.port, protocol: 'TCP' }],
    ...(resources ? { resources } : {}),
    // kiln probes a starting instance until it is healthy or the progress deadline passes.
    startupProbe: {
      ...probeOf(check),
      periodSeconds: 1,
      failureThreshold: probeSeconds(service.progressDeadline),
    },
    livenessProbe: probeOf(check),
    readinessProbe: probeOf(ready),
    securityContext: {
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    },
    volumeMounts: mounts,
  };
  const { uid, gid } = process.user;
  return {
    metadata: {
      labels: labelsOf(service.name, release.name),
      annotations: { [CONFIG_HASH_ANNOTATION]: release.configHash, [DIGEST_ANNOTATION]: release.digest },
    },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: probeSeconds(DEFAULT_STOP_GRACE_MS),
      securityContext: {
        runAsUser: uid,
        runAsGroup: gid,
        runAsNonRoot: uid !== 0,
        // Volumes are group-owned by the image's group, as the local runtime chowns them.
        ...(service.kind === 'stateful' && service.volumes.length > 0 ? { fsGroup: gid } : {}),
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [container],
      volumes,
    },
  };
}
