/**
 * Where services run beyond this machine: `targets` (an engine, each run by its own kiln control
 * plane) and `regions` (a target and the OCI registry its images are replicated to).
 *
 * @example
 * targets: { eu: { driver: 'local', api: 'https://kiln-eu.example.com:7070' } },
 * regions: { eu: { target: 'eu', registry: 'registry-eu.example.com/kiln' } },
 */
import path from 'node:path';
import { z } from 'zod';
import type { ValidationIssue } from '../errors/index.js';

/** Target and region names: lowercase letters, digits and dashes (they go into flags and env names). */
export const PLACE_NAME_RE = /^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/;

const HOST =
  '(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?';
const REPO_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
/** `host[:port][/prefix/…]`: a registry and an optional repository prefix, no scheme. */
export const REGISTRY_RE = new RegExp(`^${HOST}(?:/${REPO_COMPONENT})*$`);

/** The URL of the kiln control plane (`kiln server`) that runs a target. */
const apiUrl = z
  .string()
  .regex(/^https?:\/\/[^\s/]+(\/[^\s]*)?$/, 'must be the http:// or https:// URL of a kiln server');

/** A Docker Engine API address. */
const dockerEngine = z
  .string()
  .regex(/^(unix:\/\/\/\S+|tcp:\/\/\S+)$/, 'must be "unix:///path/docker.sock" or "tcp://host:port"');

/** Fields every target has, whatever its driver. */
const common = {
  /** The kiln control plane that runs this target; `kiln deploy --regions` talks to it. */
  api: apiUrl.optional(),
};

/** Instances on the machine the control plane runs on (crun/runc). */
export const localTargetSchema = z.object({ driver: z.literal('local'), ...common }).strict();

/** A Docker Swarm, through the Docker Engine API. */
export const swarmTargetSchema = z
  .object({
    driver: z.literal('swarm'),
    ...common,
    /** The Docker Engine API: `unix:///var/run/docker.sock` or `tcp://host:2375`. */
    docker: dockerEngine,
    /**
     * `host[:port][/prefix]`: the registry kiln pushes each release's image to, by digest, for the
     * nodes to pull (image `web` goes to repository `prefix/web`).
     */
    registry: z
      .string()
      .regex(REGISTRY_RE, 'must be host[:port] and an optional /prefix, such as "registry.example.com/kiln"'),
    /** Plain HTTP to `registry` (its nodes' dockerd need it under --insecure-registry too). @default false */
    insecureRegistry: z.boolean().default(false),
    /**
     * The engines of the other nodes, by node hostname, ID or address: kiln signals (chaos, stop)
     * and execs into instances there through them. @default {} (only the manager's node)
     */
    nodes: z.record(z.string().min(1), dockerEngine).default({}),
    /**
     * TLS to engines at `tcp://` addresses (dockerd `--tlsverify`, usually port 2376): the CA that
     * signed the engines' certificates, and kiln's client certificate and key, as PEM files
     * (relative to the config's directory). The same for the manager and every node.
     */
    tls: z
      .object({ ca: z.string().min(1), cert: z.string().min(1), key: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.tls === undefined) return;
    for (const [field, url] of [
      ['docker', t.docker],
      ...Object.entries(t.nodes).map(([n, u]) => [`nodes.${n}`, u]),
    ]) {
      if (!url!.startsWith('tcp://')) {
        ctx.addIssue({
          code: 'custom',
          path: field!.split('.'),
          message: `"${url}" is a unix socket, which takes no TLS: with tls, every engine must be a tcp:// address`,
        });
      }
    }
  });

/** A Kubernetes cluster, through a kubeconfig. */
export const kubernetesTargetSchema = z
  .object({
    driver: z.literal('kubernetes'),
    ...common,
    /** The kubeconfig file (relative to the config file). */
    kubeconfig: z.string().min(1),
    /** A context of the kubeconfig. @default its current-context */
    context: z.string().min(1).optional(),
    namespace: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a Kubernetes namespace name')
      .default('default'),
  })
  .strict();

/** One target: the engine it is and how to reach it, told apart by `driver`. */
export const targetSchema = z.discriminatedUnion('driver', [
  localTargetSchema,
  swarmTargetSchema,
  kubernetesTargetSchema,
]);

/** One region: the target that runs it and the registry its images are replicated to. */
export const regionSchema = z
  .object({
    /** The name of a target under `targets`. */
    target: z.string().min(1),
    /** `host[:port][/prefix]`: image `web` goes to repository `prefix/web` of that registry. */
    registry: z
      .string()
      .regex(REGISTRY_RE, 'must be host[:port] and an optional /prefix, such as "registry.example.com/kiln"'),
  })
  .strict();

const placeName = z
  .string()
  .regex(
    PLACE_NAME_RE,
    'must be lowercase letters, digits and dashes, starting with a letter, such as "eu-west"',
  );

export const targetsSchema = z.record(placeName, targetSchema);
export const regionsSchema = z.record(placeName, regionSchema);

export type TargetSpec = z.output<typeof targetSchema>;

/** `target` with its file paths (a swarm's TLS files, a kubeconfig) resolved against the config's `dir`. */
export function resolveTargetPaths<T extends TargetSpec>(target: T, dir: string): T {
  if (target.driver === 'swarm' && target.tls) {
    const tls = target.tls;
    return {
      ...target,
      tls: {
        ca: path.resolve(dir, tls.ca),
        cert: path.resolve(dir, tls.cert),
        key: path.resolve(dir, tls.key),
      },
    };
  }
  if (target.driver === 'kubernetes') return { ...target, kubeconfig: path.resolve(dir, target.kubeconfig) };
  return target;
}
export type RegionSpec = z.output<typeof regionSchema>;

/** Every region's `target` must name a declared target. */
export function checkRegions(stack: {
  readonly targets: Readonly<Record<string, TargetSpec>>;
  readonly regions: Readonly<Record<string, RegionSpec>>;
}): ValidationIssue[] {
  const known = Object.keys(stack.targets);
  return Object.entries(stack.regions).flatMap(([name, region]) =>
    Object.hasOwn(stack.targets, region.target)
      ? []
      : [
          {
            path: `regions.${name}.target`,
            message: `"${region.target}" is not a declared target`,
            fix: known.length
              ? `use one of: ${known.join(', ')}`
              : `declare it under targets, e.g. targets: { ${region.target}: { driver: 'local', api: 'http://…' } }`,
          },
        ],
  );
}
