/**
 * Applying rendered manifests to a cluster with @kubernetes/client-node: server-side apply of each
 * object (field manager `kiln`, forced, so kiln owns the fields it writes), in the rendered order;
 * the objects that move traffic go only once the new release's Deployments are available.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubernetesObject, KubernetesObjectApi, V1Deployment } from '@kubernetes/client-node';
import { NotFoundError, UnavailableError, ValidationError, wrap } from '../errors/index.js';
import type { K8sObject, Rendered } from './types.js';

/** The field manager kiln applies as. */
export const DEFAULT_FIELD_MANAGER = 'kiln';
/** How long `applyManifests` waits for a release's pods before it leaves traffic where it was. */
export const DEFAULT_READY_TIMEOUT_MS = 10 * 60_000;
/** How often it reads a Deployment's status while waiting. */
export const DEFAULT_READY_POLL_MS = 1_000;

/** Options for `applyManifests`. */
export interface ApplyOptions {
  /** The kubeconfig file. */
  readonly kubeconfig: string;
  /** Where `kubeconfig` was named, for errors: `targets.prod.kubeconfig`. */
  readonly source?: string;
  /** A context of the kubeconfig. @default its current context */
  readonly context?: string;
  /** Set on every object without a namespace. */
  readonly namespace: string;
  /** @default DEFAULT_FIELD_MANAGER */
  readonly fieldManager?: string;
  /** @default DEFAULT_READY_TIMEOUT_MS */
  readonly readyTimeoutMs?: number;
  /** @default DEFAULT_READY_POLL_MS */
  readonly pollMs?: number;
  /** Told one line per step: each object applied, each wait. */
  readonly onProgress?: (line: string) => void;
}

/** An object the cluster accepted. */
export interface AppliedObject {
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
}

/**
 * Applies `rendered` through the API server the kubeconfig names: every object of
 * `rendered.objects`, then (after waiting for `rendered.waitFor`) every object of
 * `rendered.traffic`. A release whose pods do not become available in time leaves the traffic
 * objects unapplied, so the Service or route still points where it did, and throws.
 *
 * @example
 * await applyManifests(renderRelease(release, opts), { kubeconfig: 'kubeconfig.yaml', namespace: 'prod' });
 */
export async function applyManifests(rendered: Rendered, options: ApplyOptions): Promise<AppliedObject[]> {
  const client = await clientFor(options);
  const say = options.onProgress ?? (() => {});
  const applied: AppliedObject[] = [];
  const apply = async (object: K8sObject): Promise<void> => {
    const body = withNamespace(object, options.namespace);
    const what = `${body.kind} ${body.metadata.name}`;
    try {
      await client.patch(
        body,
        undefined,
        undefined,
        options.fieldManager ?? DEFAULT_FIELD_MANAGER,
        true,
        'application/apply-patch+yaml',
      );
    } catch (err) {
      throw wrap(`applying ${what} in namespace ${body.metadata.namespace}`, apiError(err));
    }
    applied.push({ kind: body.kind, name: body.metadata.name, namespace: body.metadata.namespace });
    say(`applied ${what}`);
  };
  for (const object of rendered.objects) await apply(object);
  for (const name of rendered.waitFor) {
    say(`waiting for Deployment ${name} to be available`);
    await waitAvailable(client, name, options);
  }
  for (const object of rendered.traffic) await apply(object);
  return applied;
}

type Namespaced = KubernetesObject & {
  kind: string;
  metadata: { name: string; namespace: string };
};

function withNamespace(object: K8sObject, namespace: string): Namespaced {
  const metadata = { ...object.metadata, namespace: object.metadata?.namespace ?? namespace };
  return { ...object, metadata } as Namespaced;
}

async function clientFor(options: ApplyOptions): Promise<KubernetesObjectApi> {
  // Loaded only here: the client and its dependencies are heavy, and most kiln verbs never need them.
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  const where = options.source ?? 'kubeconfig';
  try {
    kc.loadFromFile(options.kubeconfig);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    if (missing) {
      throw new NotFoundError(
        `${where}: no kubeconfig at ${options.kubeconfig}; write the path of a kubeconfig file (as kubectl uses)`,
      );
    }
    throw new ValidationError(options.kubeconfig, [
      {
        path: '',
        message: `not a kubeconfig: ${(err as Error).message}`,
        fix: `check ${where} names a kubeconfig file (kubectl config view --raw writes one)`,
      },
    ]);
  }
  if (options.context !== undefined) {
    if (!kc.getContexts().some((c) => c.name === options.context)) {
      throw new ValidationError(options.kubeconfig, [
        {
          path: 'contexts',
          message: `no context "${options.context}"`,
          fix: `use one of: ${kc
            .getContexts()
            .map((c) => c.name)
            .join(', ')}`,
        },
      ]);
    }
    kc.setCurrentContext(options.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new ValidationError(options.kubeconfig, [
      {
        path: 'current-context',
        message: 'names no cluster',
        fix: 'set current-context, or give the context',
      },
    ]);
  }
  return k8s.KubernetesObjectApi.makeApiClient(kc);
}

async function waitAvailable(
  client: KubernetesObjectApi,
  name: string,
  options: ApplyOptions,
): Promise<void> {
  const timeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const header = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: options.namespace },
  };
  for (;;) {
    let d: V1Deployment;
    try {
      d = await client.read<V1Deployment>(header);
    } catch (err) {
      throw wrap(`reading Deployment ${name}`, apiError(err));
    }
    const verdict = availability(d);
    if (verdict === 'available') return;
    if (verdict !== 'waiting') {
      throw new UnavailableError(`Deployment ${name} failed (${verdict}); traffic was left where it was`);
    }
    if (Date.now() >= deadline) {
      throw new UnavailableError(
        `Deployment ${name} was not available within ${timeoutMs < 10_000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}; traffic was left ` +
          `where it was (kubectl describe deployment ${name} says why)`,
      );
    }
    await sleep(options.pollMs ?? DEFAULT_READY_POLL_MS);
  }
}

/**
 * Whether a Deployment's current generation is rolled out and every wanted pod is available, as
 * `kubectl rollout status` decides: `available`, `waiting`, or the reason it failed.
 */
export function availability(d: V1Deployment): 'available' | 'waiting' | string {
  const wanted = d.spec?.replicas ?? 1;
  const s = d.status ?? {};
  const stuck = s.conditions?.find(
    (c) => c.type === 'Progressing' && c.status === 'False' && c.reason === 'ProgressDeadlineExceeded',
  );
  if (stuck) return stuck.reason!;
  const current = (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0);
  const done =
    current &&
    (s.updatedReplicas ?? 0) >= wanted &&
    (s.availableReplicas ?? 0) >= wanted &&
    (s.replicas ?? 0) <= wanted;
  return done ? 'available' : 'waiting';
}

/** An API server's refusal with its status and message, as an UnavailableError. */
function apiError(err: unknown): Error {
  const e = err as { code?: unknown; body?: unknown; message?: string };
  if (typeof e.code === 'number') {
    let message = e.message ?? '';
    try {
      const body = typeof e.body === 'string' ? (JSON.parse(e.body) as { message?: string }) : undefined;
      if (body?.message) message = body.message;
    } catch {
      // the body was no Status document; keep the client's message
    }
    return new UnavailableError(`the API server answered ${e.code}: ${message}`, { cause: err });
  }
  return new UnavailableError(`the API server could not be reached: ${e.message ?? String(err)}`, {
    cause: err,
  });
}
