import path from 'node:path';
import { Command, Option } from 'commander';
import { ValidationError } from '../errors/index.js';
import { bake, homePaths, type BakedImage } from '../bake/index.js';
import { OciStore } from '../oci/index.js';
import { aptRootFromEnv, homeFor, humanBytes, loadFromOptions, printJson } from './common.js';

/** `kiln bake [NAME...]`: bake images into the store, following kiln.lock. */
export function bakeCommand(): Command {
  return new Command('bake')
    .description('bake images (with their bases) into the store, following kiln.lock')
    .argument('[names...]', 'images to bake; all when none are named')
    .option('--all', 'bake every image, in dependency order')
    .option('--update', 'resolve packages again to the newest versions and rewrite kiln.lock')
    .option('--frozen', 'fail rather than change kiln.lock (for CI)')
    .option('--offline', 'use only cached archive indexes and packages')
    .option('--out <target>', 'also export the image, as oci:DIR')
    .addOption(new Option('--runtime <name>', 'OCI runtime for run steps').choices(['crun', 'runc']))
    .option('--json', 'print the result as JSON')
    .action(
      async (
        names: string[],
        opts: {
          all?: boolean;
          update?: boolean;
          frozen?: boolean;
          offline?: boolean;
          out?: string;
          runtime?: 'crun' | 'runc';
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const config = await loadFromOptions(cmd);
        let outDir: string | undefined;
        if (opts.out !== undefined) {
          if (!opts.out.startsWith('oci:') || opts.out.length <= 4) {
            throw new ValidationError('--out', [
              { path: '', message: `"${opts.out}" is not a supported target`, fix: 'write it as oci:DIR' },
            ]);
          }
          outDir = path.resolve(opts.out.slice(4));
        }
        const wanted = opts.all ? [] : names;
        if (outDir && wanted.length !== 1 && config.stack.images.length !== 1) {
          throw new ValidationError('--out', [
            {
              path: '',
              message: 'exports one image',
              fix: 'name the image to export: kiln bake NAME --out oci:DIR',
            },
          ]);
        }
        const log = opts.json ? () => {} : (m: string) => process.stderr.write(`${m}\n`);
        const results = await bake({
          config,
          names: wanted,
          ...(opts.update ? { update: true } : {}),
          ...(opts.frozen ? { frozen: true } : {}),
          ...(opts.offline ? { offline: true } : {}),
          ...(opts.runtime ? { runtime: opts.runtime } : {}),
          log,
          ...aptRootFromEnv(),
        });
        if (outDir) {
          const name = wanted[0] ?? config.stack.images[0]!.name;
          const store = await OciStore.open(homePaths(homeFor(config)).store);
          await store.exportImage(name, outDir);
          log(`exported ${name} to oci:${outDir} (tag ${name})`);
        }
        if (opts.json) printJson(results.map(bakedJson));
        else for (const r of results) process.stdout.write(bakedLine(r));
      },
    );
}

/** The JSON shape of one baked image (stable; README documents it). */
export function bakedJson(r: BakedImage) {
  return {
    name: r.name,
    digest: r.digest,
    upToDate: r.upToDate,
    packages: r.packages,
    layers: r.layers.map((l) => ({ kind: l.kind, digest: l.digest, size: l.size, cached: l.cached })),
    sbom: r.attachments.sbom.digest,
    signature: r.attachments.signature.digest,
    files: r.attachments.files.digest,
    durationMs: Math.round(r.durationMs),
  };
}

function bakedLine(r: BakedImage): string {
  const size = r.layers.reduce((n, l) => n + l.size, 0);
  const rebuilt = r.layers.filter((l) => !l.cached).map((l) => l.kind);
  const what = rebuilt.length ? `built ${rebuilt.join(', ')}` : 'up to date';
  return `${r.name}  ${r.digest}  ${humanBytes(size)}  ${r.packages} packages  ${what}  ${(r.durationMs / 1000).toFixed(2)}s\n`;
}
