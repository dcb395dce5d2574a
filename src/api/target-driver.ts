/**
 * The runtime driver of a control plane that runs a declared target (`kiln server --target NAME`):
 * the local driver for `local`, the {@link SwarmRuntimeDriver} for `swarm`, whose nodes pull each
 * release's image from the target's registry (kiln pushes it there by digest first).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UnavailableError } from '../errors/index.js';
import { RegistryClient, type Digest, type OciStore } from '../oci/index.js';
import { readEngineTls, SwarmRuntimeDriver, type RuntimeDriver } from '../runtime/index.js';
import type { TargetSpec } from '../spec/index.js';

/** A declared target, by name. */
export interface NamedTarget {
  readonly name: string;
  readonly spec: TargetSpec;
}

type SwarmTarget = Extract<TargetSpec, { driver: 'swarm' }>;

/**
 * The driver for `target`, or undefined for a `local` one (the control plane's own driver). Each
 * project's control plane gets its own scope on a shared swarm, from its home's path.
 */
export async function targetDriver(
  target: NamedTarget,
  deps: {
    readonly home: string;
    readonly store: () => Promise<OciStore>;
    readonly log: (line: string) => void;
    /** Where the registry's credentials come from (`KILN_REGISTRY_*`). @default process.env */
    readonly env?: NodeJS.ProcessEnv;
  },
): Promise<RuntimeDriver | undefined> {
  const { spec } = target;
  const env = deps.env ?? process.env;
  switch (spec.driver) {
    case 'local':
      return undefined;
    case 'swarm':
      return new SwarmRuntimeDriver({
        docker: spec.docker,
        nodes: spec.nodes,
        scope: `kiln-${createHash('sha256').update(path.resolve(deps.home)).digest('hex').slice(0, 12)}`,
        image: pushedImage(spec, deps.store, deps.log, env),
        ...(spec.tls ? { tls: await readEngineTls(spec.tls, `targets.${target.name}.tls`) } : {}),
        // The nodes pull with the credentials kiln pushed with.
        ...(env.KILN_REGISTRY_USERNAME && env.KILN_REGISTRY_PASSWORD
          ? { registryAuth: { username: env.KILN_REGISTRY_USERNAME, password: env.KILN_REGISTRY_PASSWORD } }
          : {}),
      });
    default:
      throw new UnavailableError(
        `target ${target.name} is a ${spec.driver} target, which kiln server does not run; ` +
          'use `kiln render k8s` for Kubernetes, or a local or swarm target',
      );
  }
}

/**
 * Pushes an image from the store to the target's registry once per digest (blobs the registry has
 * are not sent again) and names it there by digest: `REGISTRY/PREFIX/SERVICE@sha256:…`. Credentials
 * come from `KILN_REGISTRY_USERNAME`, `KILN_REGISTRY_PASSWORD` and `KILN_REGISTRY_CA`.
 */
export function pushedImage(
  target: SwarmTarget,
  store: () => Promise<OciStore>,
  log: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): (digest: Digest, instance: { readonly service: string }) => Promise<string> {
  const [host = '', ...prefix] = target.registry.split('/');
  const pushed = new Map<string, Promise<string>>();
  return (digest, instance) => {
    const repository = [...prefix, instance.service].join('/');
    const key = `${repository}@${digest}`;
    let done = pushed.get(key);
    if (done === undefined) {
      done = (async () => {
        const client = new RegistryClient({
          registry: host,
          ...(target.insecureRegistry ? { insecure: true } : {}),
          ...(env.KILN_REGISTRY_USERNAME ? { username: env.KILN_REGISTRY_USERNAME } : {}),
          ...(env.KILN_REGISTRY_PASSWORD ? { password: env.KILN_REGISTRY_PASSWORD } : {}),
          ...(env.KILN_REGISTRY_CA ? { ca: readFileSync(env.KILN_REGISTRY_CA) } : {}),
        });
        try {
          await client.pushImage(await store(), digest, { repository }, { referrers: true });
        } finally {
          client.close();
        }
        log(`pushed ${digest.slice(0, 19)} to ${host}/${repository} for the swarm's nodes`);
        return `${host}/${repository}@${digest}`;
      })();
      done.catch(() => pushed.delete(key));
      pushed.set(key, done);
    }
    return done;
  };
}
