/**
 * What the Kubernetes renderer reads and writes. The input is a release as the state store keeps
 * it (its frozen service spec and image process); the output is plain Kubernetes objects, typed
 * with @kubernetes/client-node's models so a misspelt field fails the typecheck.
 */
import type { V1ConfigMap, V1Deployment, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import type { ServiceSpec } from '../spec/index.js';

/** The label every object carries with its service's name. */
export const NAME_LABEL = 'app.kubernetes.io/name';
/** The label on per-release objects and their pods: `r4`. */
export const RELEASE_LABEL = 'kiln.dev/release';
/** `app.kubernetes.io/managed-by: kiln` on every object. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
/** Annotations with the image digest and the release's config hash, on workloads and pods. */
export const DIGEST_ANNOTATION = 'kiln.dev/digest';
export const CONFIG_HASH_ANNOTATION = 'kiln.dev/config-hash';
/** The share of traffic (percent) a replica-ratio canary gives each release's Deployment. */
export const WEIGHT_ANNOTATION = 'kiln.dev/weight';

/** A release as the renderer needs it: fleet's `ReleaseSpec` with the record's name, digest and hash. */
export interface K8sRelease {
  /** `r4`. */
  readonly name: string;
  /** The image manifest digest, `sha256:<hex>`. */
  readonly digest: string;
  readonly configHash: string;
  /** The service spec frozen in the release, every default filled in. */
  readonly service: ServiceSpec;
  /** The image's process, frozen in the release. */
  readonly process: {
    readonly args: readonly string[];
    readonly cwd: string;
    readonly user: { readonly uid: number; readonly gid: number };
  };
}

/** The parent Gateway of an HTTPRoute. */
export interface GatewayRef {
  readonly name: string;
  /** @default the route's own namespace */
  readonly namespace?: string;
}

/** Options for `renderRelease`. */
export interface RenderOptions {
  /**
   * Where images are pulled from: `host[:port][/prefix]`. A release of image `web` is pulled as
   * `<registry>/web@<digest>`.
   */
  readonly registry: string;
  /** The repository under `registry`. @default the release's image name */
  readonly repository?: string;
  /** Set as `metadata.namespace` on every object. @default none (kubectl's current namespace) */
  readonly namespace?: string;
  /**
   * A canary step: `stable` keeps `100 - weight` % of the traffic and the rendered release gets
   * `weight` %. At 100 the stable release is retired: its Deployment is rendered scaled to 0 (a
   * promoted canary, or after a rollback the failed canary, with the roles the other way round).
   */
  readonly canary?: { readonly stable: K8sRelease; readonly weight: number };
  /** Split a canary's traffic by a Gateway API HTTPRoute instead of by replica counts. */
  readonly gateway?: GatewayRef;
  /** The storage each stateful volume's claim asks for. @default DEFAULT_VOLUME_SIZE */
  readonly volumeSize?: string;
}

/** What a PersistentVolumeClaim asks for when `volumeSize` is not given. */
export const DEFAULT_VOLUME_SIZE = '1Gi';

/** A Gateway API HTTPRoute (gateway.networking.k8s.io/v1), only the fields kiln writes. */
export interface HttpRoute {
  readonly apiVersion: 'gateway.networking.k8s.io/v1';
  readonly kind: 'HTTPRoute';
  readonly metadata: { name: string; namespace?: string; labels: Record<string, string> };
  readonly spec: {
    parentRefs: { group: string; kind: string; name: string; namespace?: string }[];
    rules: {
      backendRefs: { group: string; kind: string; name: string; port: number; weight: number }[];
    }[];
  };
}

/** One rendered object. */
export type K8sObject = V1ConfigMap | V1Service | V1Deployment | V1StatefulSet | HttpRoute;

/**
 * The manifests of a release, in apply order: `objects` first (config, per-release Services,
 * workloads), then `traffic`, the objects that move traffic, which `applyManifests` applies only
 * once every Deployment named in `waitFor` is available.
 */
export interface Rendered {
  readonly objects: readonly K8sObject[];
  readonly traffic: readonly K8sObject[];
  /** Deployments whose pods must be available before `traffic` is applied. */
  readonly waitFor: readonly string[];
  /** One line per decision worth telling a person (the replica split, the release a Service selects). */
  readonly notes: readonly string[];
}
