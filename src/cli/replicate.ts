/**
 * `kiln replicate IMAGE --regions eu,us [--from REGION]`: copies an image, by digest and with its
 * SBOM and signature, to each region's registry, one region after another (docs/regions.md).
 */
import { Command } from 'commander';
import { wrap } from '../errors/index.js';
import { OciStore, type Replication } from '../oci/index.js';
import { homeFor, humanBytes, loadFromOptions, printJson } from './common.js';
import {
  chunkSizeOf,
  imageToCopy,
  pickRegions,
  regionClient,
  replicateToRegion,
  replicationLine,
  storeDir,
  type RegistryFlags,
} from './regions.js';

/** The registry flags of `replicate` and `deploy --regions`. */
export function withRegistryFlags(cmd: Command): Command {
  return cmd
    .option('--insecure', 'allow plain HTTP to a registry that is not on loopback')
    .option('--registry-ca <file>', "extra CA certificate (PEM) to trust for the registries' TLS")
    .option(
      '--chunk-size <size>',
      'send blobs in chunks of this size (default 8Mi); the offset a cut copy resumes from is kept per chunk',
    );
}

/** `kiln replicate IMAGE --regions eu,us [--from REGION] [--tag TAG] [--json]`. */
export function replicateCommand(): Command {
  return withRegistryFlags(
    new Command('replicate')
      .description(
        "copy an image by digest, with its SBOM and signature, to each region's registry; a copy cut short resumes where the registry left off",
      )
      .argument('<image>', 'NAME, NAME@sha256:… or sha256:… in the store (or in the --from region)')
      .requiredOption('--regions <list>', 'regions to copy to, in order: eu,us')
      .option('--from <region>', "copy from this region's registry instead of the local store")
      .option('--tag <tag>', 'also point this tag at the image in each registry (default: by digest only)')
      .option('--json', 'print JSON'),
  ).action(
    async (
      arg: string,
      opts: RegistryFlags & { regions: string; from?: string; tag?: string; json?: boolean },
      cmd: Command,
    ) => {
      const config = await loadFromOptions(cmd);
      const home = homeFor(config);
      const regions = pickRegions(opts.regions, config.stack);
      const from = opts.from === undefined ? undefined : pickRegions(opts.from, config.stack, '--from')[0]!;
      const chunkSize = chunkSizeOf(opts);
      const store = await OciStore.open(storeDir(home));
      const fromClient = from === undefined ? undefined : await regionClient(from, opts);
      try {
        const image = await imageToCopy(
          arg,
          store,
          from && fromClient ? { region: from, client: fromClient } : undefined,
        );
        const done: { region: string; replication: Replication }[] = [];
        const copied = new Map<string, string>();
        for (const region of regions) {
          const client = await regionClient(region, opts);
          try {
            const replication = await replicateToRegion(home, image, region, client, {
              ...(chunkSize !== undefined ? { chunkSize } : {}),
              ...(opts.tag !== undefined ? { tag: opts.tag } : {}),
              copied,
            }).catch((err: unknown) => {
              throw wrap(`replicating ${image.name} to region ${region.name} (${region.registry})`, err);
            });
            done.push({ region: region.name, replication });
            if (!opts.json)
              process.stdout.write(`${replicationLine(region.name, replication, humanBytes)}\n`);
          } finally {
            client.close();
          }
        }
        if (opts.json) {
          printJson({
            image: { name: image.name, digest: image.descriptor.digest },
            ...(from ? { from: from.name } : {}),
            regions: done.map((d) => ({ region: d.region, ...d.replication })),
          });
        }
      } finally {
        fromClient?.close();
      }
    },
  );
}
