/**
 * `kiln render k8s SERVICE`: a release as Kubernetes manifests, from the release record in the
 * control plane's state (`.kiln/state.db`, read directly as `kiln images` reads the store, so no
 * server needs to run), and with `--apply --target NAME` applied to that target's cluster.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { NotFoundError, ValidationError } from '../errors/index.js';
import { canaryStatusOf, releaseSpec, strategyOf, viewOf, type ServiceView } from '../fleet/index.js';
import {
  allObjects,
  applyManifests,
  renderRelease,
  toYaml,
  type GatewayRef,
  type K8sRelease,
  type Rendered,
  type RenderOptions,
} from '../k8s/index.js';
import { writeFileAtomic } from '../oci/index.js';
import type { StackSpec, TargetSpec } from '../spec/index.js';
import {
  openState,
  parseReleaseRef,
  STATE_DB_FILE,
  type ReleaseRecord,
  type StateStore,
} from '../state/index.js';
import { homeFor, loadFromOptions } from './common.js';
import { parseCount, parseTimeout } from './fleet-common.js';

/** How long `--apply` waits for a release's pods before it leaves traffic where it was, unless `--timeout`. */
export const DEFAULT_APPLY_TIMEOUT = '10m';

interface RenderFlags {
  readonly release?: string;
  readonly registry?: string;
  readonly repository?: string;
  readonly namespace?: string;
  readonly target?: string;
  readonly gateway?: string;
  readonly canaryFrom?: string;
  readonly weight?: string;
  readonly volumeSize?: string;
  readonly out?: string;
  readonly apply?: boolean;
  readonly timeout: string;
}

/** `kiln render k8s SERVICE [--release rN] [--registry R] [--target T [--apply]] [--out DIR] …`. */
export function renderCommand(): Command {
  const k8s = new Command('k8s')
    .description(
      "print a release of a service as Kubernetes manifests (YAML), or apply them to a kubernetes target's cluster",
    )
    .argument('<service>', 'a service with at least one release')
    .option('--release <release>', 'the release, rN (default: the current one; during a rollout, its target)')
    .option(
      '--registry <registry>',
      "host[:port][/prefix] to pull from (default: the registry of the target's region)",
    )
    .option(
      '--repository <name>',
      "the image's repository under the registry (default: the service's image name)",
    )
    .option('--namespace <namespace>', "metadata.namespace of every object (default: the target's namespace)")
    .option(
      '--target <name>',
      'a kubernetes target from the config: its namespace, region registry and cluster',
    )
    .option(
      '--gateway <[namespace/]name>',
      "split a canary's traffic by an HTTPRoute attached to this Gateway",
    )
    .option(
      '--canary-from <release>',
      'render a canary step by hand: the stable release it runs beside (with --weight)',
    )
    .option('--weight <percent>', "with --canary-from, the canary's share of the traffic, 0 to 100")
    .option('--volume-size <size>', 'storage each stateful volume claims', '1Gi')
    .option('--out <dir>', 'write <dir>/<service>.yaml instead of printing')
    .option('--apply', "apply the manifests to --target's cluster (server-side apply) instead of printing")
    .option(
      '--timeout <duration>',
      "with --apply, how long to wait for the release's pods",
      DEFAULT_APPLY_TIMEOUT,
    )
    .action(async (service: string, flags: RenderFlags, cmd: Command) => {
      const config = await loadFromOptions(cmd);
      const target = targetOf(config.stack, flags);
      const timeoutMs = parseTimeout('--timeout', flags.timeout);
      const rendered = withStore(homeFor(config), (store) =>
        renderService(store, service, {
          ...optionsOf(config.stack, flags),
          release: flags.release,
          canaryFrom: flags.canaryFrom,
          weight: flags.weight,
        }),
      );
      for (const note of rendered.notes) process.stderr.write(`${note}\n`);
      const text = toYaml(allObjects(rendered));
      if (flags.out !== undefined) {
        await mkdir(flags.out, { recursive: true });
        const file = path.join(flags.out, `${service}.yaml`);
        await writeFileAtomic(file, text);
        process.stdout.write(`wrote ${file} (${allObjects(rendered).length} objects)\n`);
      }
      if (flags.apply) {
        const k = target!.spec as Extract<TargetSpec, { driver: 'kubernetes' }>;
        await applyManifests(rendered, {
          kubeconfig: path.resolve(config.dir, k.kubeconfig),
          source: `targets.${target!.name}.kubeconfig`,
          ...(k.context === undefined ? {} : { context: k.context }),
          namespace: flags.namespace ?? k.namespace,
          readyTimeoutMs: timeoutMs,
          onProgress: (line) => process.stdout.write(`${line}\n`),
        });
      } else if (flags.out === undefined) {
        process.stdout.write(text);
      }
    });
  return new Command('render')
    .description('render a release for another engine: kiln render k8s SERVICE')
    .addCommand(k8s);
}

/** The `--target` of the flags, which must be a kubernetes target; required with `--apply`. */
function targetOf(stack: StackSpec, flags: RenderFlags): { name: string; spec: TargetSpec } | undefined {
  if (flags.target === undefined) {
    if (flags.apply) {
      throw new ValidationError('--apply', [
        {
          path: '',
          message: 'needs a cluster to apply to',
          fix: "name a kubernetes target: --target prod, with targets: { prod: { driver: 'kubernetes', kubeconfig: '…' } }",
        },
      ]);
    }
    return undefined;
  }
  const spec = stack.targets[flags.target];
  const kubernetes = Object.entries(stack.targets)
    .filter(([, t]) => t.driver === 'kubernetes')
    .map(([n]) => n);
  if (!spec || spec.driver !== 'kubernetes') {
    throw new ValidationError('--target', [
      {
        path: '',
        message: spec
          ? `target "${flags.target}" is driven by ${spec.driver}, not kubernetes`
          : `"${flags.target}" is not a declared target`,
        fix: kubernetes.length
          ? `use a kubernetes target: ${kubernetes.join(', ')}`
          : "declare one: targets: { prod: { driver: 'kubernetes', kubeconfig: 'kubeconfig.yaml', namespace: 'prod' } }",
      },
    ]);
  }
  return { name: flags.target, spec };
}

/** The render options the flags and the config give; the releases are picked from the store later. */
function optionsOf(stack: StackSpec, flags: RenderFlags): Omit<RenderOptions, 'canary'> {
  const target = flags.target === undefined ? undefined : stack.targets[flags.target];
  const namespace = flags.namespace ?? (target?.driver === 'kubernetes' ? target.namespace : undefined);
  return {
    registry: registryOf(stack, flags),
    ...(flags.repository === undefined ? {} : { repository: flags.repository }),
    ...(namespace === undefined ? {} : { namespace }),
    ...(flags.gateway === undefined ? {} : { gateway: gatewayOf(flags.gateway) }),
    ...(flags.volumeSize === undefined ? {} : { volumeSize: flags.volumeSize }),
  };
}

function registryOf(stack: StackSpec, flags: RenderFlags): string {
  if (flags.registry !== undefined) return flags.registry;
  const regions = Object.entries(stack.regions).filter(([, r]) => r.target === flags.target);
  if (flags.target !== undefined && regions.length === 1) return regions[0]![1].registry;
  throw new ValidationError('--registry', [
    {
      path: '',
      message:
        flags.target === undefined
          ? 'no registry to pull the image from'
          : regions.length === 0
            ? `no region runs on target "${flags.target}", so it names no registry`
            : `regions ${regions.map(([n]) => n).join(', ')} all run on target "${flags.target}"`,
      fix: 'give --registry host[:port][/prefix], where the image was pushed or replicated',
    },
  ]);
}

function gatewayOf(text: string): GatewayRef {
  const m = /^(?:([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)\/)?([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)$/.exec(text);
  if (!m) {
    throw new ValidationError('--gateway', [
      { path: '', message: `${JSON.stringify(text)} is not a Gateway`, fix: 'write name or namespace/name' },
    ]);
  }
  return { name: m[3]!, ...(m[1] === undefined ? {} : { namespace: m[1] }) };
}

/** Opens the project's state read for one render and closes it; no state means no release yet. */
function withStore<T>(home: string, fn: (store: StateStore) => T): T {
  const file = path.join(home, STATE_DB_FILE);
  if (!existsSync(file)) {
    throw new NotFoundError(
      `no releases yet: ${file} does not exist; deploy first (kiln up, or kiln deploy SERVICE)`,
    );
  }
  const store = openState(file);
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

function toK8s(r: ReleaseRecord): K8sRelease {
  const spec = releaseSpec(r);
  return {
    name: r.name,
    digest: r.digest,
    configHash: r.configHash,
    service: spec.service,
    process: spec.process,
  };
}

/**
 * The manifests of `service`'s release: `--release`, else the current one. A canary is rendered
 * at the step its rollout is on; once a canary rollout ended, the release it left behind (the
 * old one when it succeeded, the failed one when it was rolled back) is rendered scaled to 0.
 */
export function renderService(
  store: StateStore,
  service: string,
  flags: Omit<RenderOptions, 'canary'> & Pick<RenderFlags, 'release' | 'canaryFrom' | 'weight'>,
): Rendered {
  const view = viewOf(store, service, Date.now());
  const current = view.current;
  const release =
    flags.release === undefined ? current : store.releases.get(service, parseReleaseRef(flags.release));
  if (!release) {
    throw new NotFoundError(`${service} has no release yet; deploy it first (kiln deploy ${service})`);
  }
  const { release: _r, canaryFrom, weight, ...options } = flags;
  const canary =
    canaryFrom !== undefined || weight !== undefined
      ? byHand(store, service, canaryFrom, weight)
      : release.number === current?.number
        ? canaryOf(store, service, view)
        : undefined;
  return renderRelease(toK8s(release), { ...options, ...(canary ? { canary } : {}) });
}

function byHand(store: StateStore, service: string, from?: string, weight?: string): RenderOptions['canary'] {
  if (from === undefined || weight === undefined) {
    throw new ValidationError(from === undefined ? '--weight' : '--canary-from', [
      {
        path: '',
        message: 'a canary step needs both',
        fix: 'give --canary-from rN and --weight 10 together',
      },
    ]);
  }
  const w = parseCount('--weight', weight)!;
  return { stable: toK8s(store.releases.get(service, parseReleaseRef(from))), weight: w };
}

function canaryOf(store: StateStore, service: string, view: ServiceView): RenderOptions['canary'] {
  const last = view.lastRollout;
  if (!last || last.strategy !== 'canary' || last.fromRelease === undefined || !view.current)
    return undefined;
  if (view.active && view.from) {
    const strategy = strategyOf(view.active, releaseSpec(view.current).service);
    const step = canaryStatusOf(view.active).step;
    const weight = strategy.type === 'canary' ? (strategy.steps[step]?.weight ?? 100) : 100;
    return { stable: toK8s(view.from), weight };
  }
  // Ended: the release that is not current (the old one after a promotion, the failed canary
  // after a rollback) is retired, its Deployment scaled to 0.
  const other = view.current.number === last.toRelease ? last.fromRelease : last.toRelease;
  return { stable: toK8s(store.releases.get(service, other)), weight: 100 };
}
