/**
 * A release as Kubernetes manifests, a pure function of the release and the options: the same
 * inputs give the same objects, in the same order, with the same keys.
 *
 * How each strategy maps (docs/kubernetes.md):
 * - rolling: one Deployment `<svc>` whose pod template names the release, so Kubernetes' own
 *   RollingUpdate (with the service's maxSurge and maxUnavailable) replaces the pods, and a
 *   Service `<svc>` over all of them;
 * - blue/green: a Deployment per release, `<svc>-<release>`, and a Service `<svc>` whose selector
 *   names the active release, applied once that release's pods are available;
 * - canary: a Deployment per release, sized by the step's weight, behind a Service `<svc>` over
 *   both (replica ratio), or at full strength behind a Gateway API HTTPRoute whose backendRefs
 *   weigh a Service per release;
 * - stateful: a StatefulSet `<svc>` (OrderedReady, RollingUpdate: one pod at a time, highest
 *   ordinal first) with a claim template per volume, and a headless Service `<svc>`.
 */
import type { V1ConfigMap, V1Deployment, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { ValidationError, type ValidationIssue } from '../errors/index.js';
import { REGISTRY_RE, type ServiceSpec } from '../spec/index.js';
import { configMapName, labelsOf, podTemplateOf, PORT_NAME, selectorOf, volumeClaimsOf } from './pod.js';
import { gatewayCanaryReplicas, probeSeconds, replicaSplit } from './quantity.js';
import {
  DEFAULT_VOLUME_SIZE,
  DIGEST_ANNOTATION,
  RELEASE_LABEL,
  WEIGHT_ANNOTATION,
  type HttpRoute,
  type K8sObject,
  type K8sRelease,
  type Rendered,
  type RenderOptions,
} from './types.js';

/** The longest name a Service (a DNS-1035 label) may have. */
const MAX_LABEL = 63;
const REPOSITORY_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const QUANTITY_RE = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;

/**
 * The image reference a release's pods pull: `<registry>/<repository>@<digest>`, pinned by digest
 * so every pod runs exactly the released image whatever a tag says later.
 */
export function imageRefOf(release: K8sRelease, registry: string, repository?: string): string {
  const repo = repository ?? release.service.image;
  return `${registry}/${repo}@${release.digest}`;
}

/**
 * The manifests of `release`. Throws a ValidationError naming every option or name Kubernetes
 * would refuse, with the fix.
 *
 * @example
 * const { objects, traffic } = renderRelease(release, { registry: 'registry.example.com/kiln' });
 */
export function renderRelease(release: K8sRelease, options: RenderOptions): Rendered {
  check(release, options);
  const svc = release.service;
  const canaryMode = options.canary !== undefined || svc.strategy.type === 'canary';
  if (svc.kind === 'stateful') return renderStateful(release, options);
  if (canaryMode) return renderCanary(release, options);
  if (svc.strategy.type === 'bluegreen') return renderBlueGreen(release, options);
  return renderRolling(release, options);
}

function check(release: K8sRelease, options: RenderOptions): void {
  const issues: ValidationIssue[] = [];
  const svc = release.service;
  if (!REGISTRY_RE.test(options.registry)) {
    issues.push({
      path: 'registry',
      message: `${JSON.stringify(options.registry)} is not a registry`,
      fix: 'give host[:port] and an optional /prefix, such as --registry registry.example.com/kiln',
    });
  }
  const repo = options.repository ?? svc.image;
  if (!REPOSITORY_RE.test(repo)) {
    issues.push({
      path: 'repository',
      message: `${JSON.stringify(repo)} is not a repository name`,
      fix: svc.image.startsWith('sha256:')
        ? `${svc.name} names its image by digest; give the repository to pull it from, such as --repository ${svc.name}`
        : 'give lowercase path components, such as --repository team/web',
    });
  }
  const longest = `${svc.name}-${release.name}`;
  if (svc.kind !== 'stateful' && longest.length > MAX_LABEL) {
    issues.push({
      path: 'service',
      message: `"${longest}" is longer than the ${MAX_LABEL} characters a Kubernetes Service name may have`,
      fix: `shorten the service's name to at most ${MAX_LABEL - release.name.length - 1} characters`,
    });
  }
  if (options.volumeSize !== undefined && !QUANTITY_RE.test(options.volumeSize)) {
    issues.push({
      path: 'volumeSize',
      message: `${JSON.stringify(options.volumeSize)} is not a storage size`,
      fix: 'give a Kubernetes quantity such as 1Gi or 500Mi',
    });
  }
  const { canary, gateway } = options;
  if (svc.kind === 'stateful' && (canary !== undefined || gateway !== undefined)) {
    issues.push({
      path: canary ? 'canary' : 'gateway',
      message: `${svc.name} is stateful: a StatefulSet replaces one identity at a time, it has no canary`,
      fix: 'render it without a canary or a gateway',
    });
  }
  if (canary && !(canary.weight >= 0 && canary.weight <= 100)) {
    issues.push({
      path: 'canary.weight',
      message: `a canary weight is a percentage, 0 to 100 (it is ${canary.weight})`,
      fix: 'give a weight such as 10',
    });
  }
  if (canary && canary.stable.name === release.name) {
    issues.push({
      path: 'canary.stable',
      message: `the stable release and the canary are both ${release.name}`,
      fix: 'name the release the canary replaces',
    });
  }
  if (gateway && canary === undefined && svc.strategy.type !== 'canary') {
    issues.push({
      path: 'gateway',
      message: `${svc.name} is released by ${svc.strategy.type}; a Gateway route splits only a canary's traffic`,
      fix: 'drop --gateway, or render a canary step',
    });
  }
  if (issues.length) throw new ValidationError(`rendering ${svc.name} ${release.name}`, issues);
}

function metadataOf(
  options: RenderOptions,
  name: string,
  labels: Record<string, string>,
): { name: string; namespace?: string; labels: Record<string, string> } {
  return { name, ...(options.namespace === undefined ? {} : { namespace: options.namespace }), labels };
}

function configMapsOf(releases: readonly K8sRelease[], options: RenderOptions): V1ConfigMap[] {
  return releases.flatMap((r) => {
    const config = r.service.config;
    if (!config) return [];
    const data = Object.fromEntries(Object.entries(config.files).sort(([a], [b]) => (a < b ? -1 : 1)));
    // A release's files never change, so its ConfigMap is immutable, as the release is.
    return [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: metadataOf(options, configMapName(r), labelsOf(r.service.name, r.name)),
        immutable: true,
        data,
      },
    ];
  });
}

function serviceOf(
  options: RenderOptions,
  name: string,
  service: ServiceSpec,
  selector: Record<string, string>,
  headless = false,
): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadataOf(options, name, labelsOf(service.name, selector[RELEASE_LABEL])),
    spec: {
      ...(headless ? { clusterIP: 'None', publishNotReadyAddresses: true } : { type: 'ClusterIP' }),
      selector,
      ports: [{ name: PORT_NAME, port: service.port, targetPort: PORT_NAME, protocol: 'TCP' }],
    },
  };
}

/** A Deployment of one release: `name`, `replicas` pods selected by service and release. */
function deploymentOf(
  release: K8sRelease,
  options: RenderOptions,
  name: string,
  replicas: number,
  perRelease: boolean,
  extra: Record<string, string> = {},
): V1Deployment {
  const svc = release.service;
  const strategy = svc.strategy.type === 'rolling' ? svc.strategy : { maxSurge: '25%', maxUnavailable: 0 };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      ...metadataOf(options, name, labelsOf(svc.name, perRelease ? release.name : undefined)),
      annotations: { [DIGEST_ANNOTATION]: release.digest, ...extra },
    },
    spec: {
      replicas,
      selector: { matchLabels: selectorOf(svc.name, perRelease ? release.name : undefined) },
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate: { maxSurge: strategy.maxSurge, maxUnavailable: strategy.maxUnavailable },
      },
      progressDeadlineSeconds: probeSeconds(svc.progressDeadline),
      template: podTemplateOf(release, imageRefOf(release, options.registry, options.repository)),
    },
  };
}

function renderRolling(release: K8sRelease, options: RenderOptions): Rendered {
  const svc = release.service;
  return {
    objects: [
      ...configMapsOf([release], options),
      deploymentOf(release, options, svc.name, svc.replicas, false),
      serviceOf(options, svc.name, svc, selectorOf(svc.name)),
    ],
    traffic: [],
    waitFor: [],
    notes: [`${svc.name}: Deployment ${svc.name} rolls its pods over to ${release.name}`],
  };
}

function renderBlueGreen(release: K8sRelease, options: RenderOptions): Rendered {
  const svc = release.service;
  const name = `${svc.name}-${release.name}`;
  return {
    objects: [...configMapsOf([release], options), deploymentOf(release, options, name, svc.replicas, true)],
    traffic: [serviceOf(options, svc.name, svc, selectorOf(svc.name, release.name))],
    waitFor: [name],
    notes: [
      `${svc.name}: Service ${svc.name} selects ${release.name} once Deployment ${name} is available; ` +
        'the Deployment of the release before stays as the standby until you delete it',
    ],
  };
}

function renderCanary(release: K8sRelease, options: RenderOptions): Rendered {
  const svc = release.service;
  const { canary, gateway } = options;
  const name = (r: K8sRelease): string => `${svc.name}-${r.name}`;
  const stable = canary && canary.weight < 100 ? canary.stable : undefined;
  const retired = canary && canary.weight >= 100 ? canary.stable : undefined;
  const weight = stable ? canary!.weight : 100;
  const notes: string[] = [];
  const retire = retired ? [deploymentOf(retired, options, name(retired), 0, true)] : [];
  if (retired)
    notes.push(`${svc.name}: ${retired.name} is retired (Deployment ${name(retired)} scaled to 0)`);
  if (gateway) {
    const canaryPods = gatewayCanaryReplicas(svc.replicas, weight);
    const sides = stable ? [stable, release] : [release];
    const route: HttpRoute = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: metadataOf(options, svc.name, labelsOf(svc.name)),
      spec: {
        parentRefs: [
          {
            group: 'gateway.networking.k8s.io',
            kind: 'Gateway',
            name: gateway.name,
            ...(gateway.namespace === undefined ? {} : { namespace: gateway.namespace }),
          },
        ],
        rules: [
          {
            backendRefs: sides.map((r) => ({
              group: '',
              kind: 'Service',
              name: name(r),
              port: svc.port,
              weight: r === release ? weight : 100 - weight,
            })),
          },
        ],
      },
    };
    notes.push(
      `${svc.name}: HTTPRoute ${svc.name} sends ${weight} % to ${release.name}` +
        (stable
          ? ` (${pods(canaryPods)}) and ${100 - weight} % to ${stable.name} (${pods(svc.replicas)})`
          : ''),
    );
    return {
      objects: [
        ...configMapsOf(sides, options),
        ...sides.map((r) => serviceOf(options, name(r), svc, selectorOf(svc.name, r.name))),
        ...(stable ? [deploymentOf(stable, options, name(stable), svc.replicas, true)] : []),
        deploymentOf(release, options, name(release), stable ? canaryPods : svc.replicas, true),
      ],
      traffic: [route, ...retire],
      waitFor: [name(release)],
      notes,
    };
  }
  const split = stable
    ? replicaSplit(svc.replicas, weight)
    : { stable: 0, canary: svc.replicas, weight: 100 };
  const share = (w: number): Record<string, string> => ({ [WEIGHT_ANNOTATION]: String(w) });
  if (stable) {
    notes.push(
      `${svc.name}: ${pods(split.canary)} of ${release.name} beside ${split.stable} of ${stable.name}: ` +
        `${split.weight} % of the traffic for a step of ${weight} %`,
    );
  }
  // The canary's pods start first; the stable set shrinks only once they are available, so the
  // service never runs below its size.
  return {
    objects: [
      ...configMapsOf(stable ? [stable, release] : [release], options),
      deploymentOf(release, options, name(release), split.canary, true, share(split.weight)),
    ],
    traffic: [
      ...(stable
        ? [deploymentOf(stable, options, name(stable), split.stable, true, share(100 - split.weight))]
        : []),
      serviceOf(options, svc.name, svc, selectorOf(svc.name)),
      ...retire,
    ],
    waitFor: [name(release)],
    notes,
  };
}

function renderStateful(release: K8sRelease, options: RenderOptions): Rendered {
  const svc = release.service;
  const set: V1StatefulSet = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: {
      ...metadataOf(options, svc.name, labelsOf(svc.name)),
      annotations: { [DIGEST_ANNOTATION]: release.digest },
    },
    spec: {
      serviceName: svc.name,
      replicas: svc.replicas,
      // Identities start in order, each once the one before is Ready; an update replaces one pod
      // at a time from the highest ordinal down, each once its replacement is Ready.
      podManagementPolicy: 'OrderedReady',
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
      selector: { matchLabels: selectorOf(svc.name) },
      template: podTemplateOf(release, imageRefOf(release, options.registry, options.repository)),
      volumeClaimTemplates: volumeClaimsOf(svc, options.volumeSize ?? DEFAULT_VOLUME_SIZE),
    },
  };
  return {
    objects: [
      ...configMapsOf([release], options),
      serviceOf(options, svc.name, svc, selectorOf(svc.name), true),
      set,
    ],
    traffic: [],
    waitFor: [],
    notes: [
      `${svc.name}: StatefulSet ${svc.name} replaces ${svc.name}-${svc.replicas - 1} … ${svc.name}-0 with ${release.name}, one at a time`,
    ],
  };
}

function pods(n: number): string {
  return `${n} pod${n === 1 ? '' : 's'}`;
}

/** Every object of `rendered`, in apply order. */
export function allObjects(rendered: Rendered): K8sObject[] {
  return [...rendered.objects, ...rendered.traffic];
}
