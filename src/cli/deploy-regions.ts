/**
 * `kiln deploy SERVICE --regions eu,us`: one region after another, in the order given, the image
 * is replicated to the region's registry and the region's control plane (its target's `api`) is
 * asked to release it, by digest, with the service's own strategy and analysis; the next region
 * starts only once that rollout succeeded. The first region that fails stops the deploy: later
 * regions are not touched (docs/regions.md).
 */
import type { Command } from 'commander';
import {
  ApiClient,
  readConnection,
  TOKEN_ENV,
  type DeployResultJson,
  type RolloutJson,
} from '../api/index.js';
import { ValidationError } from '../errors/index.js';
import { OciStore, type Replication } from '../oci/index.js';
import type { LoadedConfig } from '../spec/index.js';
import { homeFor, humanBytes, loadFromOptions, printJson } from './common.js';
import { bakeBeforeDeploy } from './deploy-bake.js';
import { describeError, ExitCode, exitCodeFor } from './exit.js';
import { finishedLine, parseTimeout, progressLine, startedLine } from './fleet-common.js';
import {
  chunkSizeOf,
  envSuffix,
  imageToCopy,
  pickRegions,
  regionClient,
  replicateToRegion,
  replicationLine,
  storeDir,
  type NamedRegion,
  type RegistryFlags,
} from './regions.js';

/** What `deploy --regions` takes (the deploy verb's flags). */
export interface RegionDeployFlags extends RegistryFlags {
  readonly regions: string;
  readonly image?: string;
  readonly strategy?: 'rolling' | 'bluegreen' | 'canary';
  readonly reason?: string;
  readonly bake?: boolean;
  readonly token?: string;
  readonly ca?: string;
  readonly timeout: string;
  readonly json?: boolean;
}

/** How one region went. */
export interface RegionDeployJson {
  readonly region: string;
  readonly target: string;
  readonly registry: string;
  /** `skipped`: an earlier region failed, so this one was not touched. */
  readonly result: 'succeeded' | 'unchanged' | 'failed' | 'skipped';
  /** `registry/repository@sha256:…`, as the region's control plane pulled it. */
  readonly reference?: string;
  readonly replication?: Replication;
  readonly release?: string;
  readonly rollout?: RolloutJson;
  /** Why it failed. */
  readonly error?: string;
}

/** `kiln deploy SERVICE --regions … --json`. */
export interface RegionsDeployJson {
  readonly service: string;
  readonly image: { readonly name: string; readonly digest: string };
  readonly regions: readonly RegionDeployJson[];
  /** The region that stopped the deploy, when one did. */
  readonly failedRegion?: string;
}

/** Runs `deploy --regions`; sets the exit code (1 when a rollout failed) rather than throwing for a region. */
export async function deployToRegions(cmd: Command, service: string, opts: RegionDeployFlags): Promise<void> {
  const config = await loadFromOptions(cmd);
  const timeoutMs = parseTimeout('--timeout', opts.timeout);
  const regions = pickRegions(opts.regions, config.stack);
  // Everything a region needs is checked before the first one is touched.
  const apis = regions.map((region) => controlPlaneOf(config, region, opts));
  const chunkSize = chunkSizeOf(opts);
  const imageName = opts.image ?? config.stack.services.find((s) => s.name === service)?.image;
  if (imageName === undefined) {
    throw new ValidationError(config.file, [
      {
        path: 'services',
        message: `no service "${service}" here, so the image to release is unknown`,
        fix: `declare ${service} in this config, or give --image NAME`,
      },
    ]);
  }
  if (opts.bake !== false) await bakeBeforeDeploy(cmd, service, { image: imageName });
  const home = homeFor(config);
  const image = await imageToCopy(imageName, await OciStore.open(storeDir(home)));
  const say = (line: string) => {
    if (!opts.json) process.stdout.write(`${line}\n`);
  };

  const results: RegionDeployJson[] = [];
  const copied = new Map<string, string>();
  let failed: { region: string; code: number; why: string } | undefined;
  for (const [i, region] of regions.entries()) {
    const base = { region: region.name, target: region.target, registry: region.registry };
    if (failed !== undefined) {
      results.push({ ...base, result: 'skipped' });
      continue;
    }
    let replication: Replication | undefined;
    let deployed: DeployResultJson | undefined;
    try {
      const client = await regionClient(region, opts);
      try {
        replication = await replicateToRegion(home, image, region, client, {
          ...(chunkSize !== undefined ? { chunkSize } : {}),
          copied,
        });
      } finally {
        client.close();
      }
      say(replicationLine(region.name, replication, humanBytes));
      const api = new ApiClient(await apis[i]!());
      deployed = await api.deploy(service, {
        image: replication.reference,
        reason: opts.reason ?? `deploy of ${image.name} to region ${region.name}`,
        ...(opts.strategy ? { strategy: opts.strategy } : {}),
      });
      say(`${region.name}: ${startedLine('deploy', deployed)}`);
      let shown = '';
      const rollout =
        deployed.unchanged && deployed.rollout.done
          ? deployed.rollout
          : await api.waitForRollout(deployed.rollout.id, {
              timeoutMs,
              onUpdate: (r) => {
                const now = `${r.phase}\0${r.message ?? ''}`;
                if (now === shown || r.done) return;
                shown = now;
                say(`${region.name}: ${progressLine(r).trimStart()}`);
              },
            });
      const ok = rollout.phase === 'succeeded' || (deployed.unchanged === true && rollout.done);
      if (!deployed.unchanged || !rollout.done) say(`${region.name}: ${finishedLine(rollout)}`);
      results.push({
        ...base,
        result: ok ? (deployed.unchanged ? 'unchanged' : 'succeeded') : 'failed',
        reference: replication.reference,
        replication,
        release: deployed.release.name,
        rollout,
      });
      if (!ok) {
        failed = {
          region: region.name,
          code: ExitCode.Failed,
          why: `${rollout.to} ${rollout.phase}${rollout.message ? `: ${rollout.message}` : ''}`,
        };
      }
    } catch (err) {
      const why = describeError(err).replace(/^kiln: /, '');
      results.push({
        ...base,
        result: 'failed',
        ...(replication ? { reference: replication.reference, replication } : {}),
        ...(deployed ? { release: deployed.release.name, rollout: deployed.rollout } : {}),
        error: why,
      });
      failed = { region: region.name, code: exitCodeFor(err), why };
    }
  }

  if (opts.json) {
    const out: RegionsDeployJson = {
      service,
      image: { name: image.name, digest: image.descriptor.digest },
      regions: results,
      ...(failed ? { failedRegion: failed.region } : {}),
    };
    printJson(out);
  }
  if (failed !== undefined) {
    const untouched = results.filter((r) => r.result === 'skipped').map((r) => r.region);
    process.stderr.write(
      `kiln: deploy of ${service} stopped at region ${failed.region}: ${failed.why}` +
        (untouched.length ? `; not deployed to: ${untouched.join(', ')}` : '') +
        '\n',
    );
    process.exitCode = failed.code;
  }
}

/**
 * The connection to the control plane that runs `region`'s target: its `api`, a token from
 * `KILN_TOKEN_<TARGET>` (else `--token`, else `KILN_TOKEN`), and `--ca`/`KILN_CA` for HTTPS.
 * Returned as a function so nothing is read until the region's turn, but checked now.
 */
function controlPlaneOf(
  config: LoadedConfig,
  region: NamedRegion,
  opts: RegionDeployFlags,
  env: NodeJS.ProcessEnv = process.env,
): () => ReturnType<typeof readConnection> {
  const target = config.stack.targets[region.target]!;
  if (target.api === undefined) {
    throw new ValidationError(config.file, [
      {
        path: `targets.${region.target}.api`,
        message: `region ${region.name} runs on target ${region.target}, which names no control plane`,
        fix: `set targets.${region.target}.api to the URL of the kiln server that runs it`,
      },
    ]);
  }
  const tokenEnv = `${TOKEN_ENV}_${envSuffix(region.target)}`;
  const token = env[tokenEnv] || opts.token || env[TOKEN_ENV];
  if (!token) {
    throw new ValidationError(undefined, [
      {
        path: '--token',
        message: `no API token for target ${region.target} (region ${region.name})`,
        fix: `set ${tokenEnv} (or --token / ${TOKEN_ENV} for every target) to a token with the deploy scope`,
      },
    ]);
  }
  const api = target.api;
  return () => readConnection(undefined, env, { server: api, token, ...(opts.ca ? { ca: opts.ca } : {}) });
}
