import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { homePaths, listImages } from '../bake/index.js';
import { OciStore } from '../oci/index.js';
import { homeFor, humanBytes, loadFromOptions, printJson, table } from './common.js';

/** `kiln images [--json]`: what was baked, with SBOM and signature. */
export function imagesCommand(): Command {
  return new Command('images')
    .description('list baked images with their digests, sizes, SBOMs and signatures')
    .option('--json', 'print JSON (shape documented in README)')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const config = await loadFromOptions(cmd);
      const paths = homePaths(homeFor(config));
      const store = await OciStore.open(paths.store);
      const pub = await readFile(path.join(paths.keys, 'signing.pub'), 'utf8').catch(() => undefined);
      const images = await listImages(store, pub ? [pub] : []);
      if (opts.json) return printJson(images);
      const rows = [['NAME', 'DIGEST', 'SIZE', 'LAYERS', 'PACKAGES', 'SIGNED']];
      for (const i of images) {
        rows.push([
          i.name,
          i.digest.slice(0, 19),
          humanBytes(i.size),
          String(i.layers),
          i.sbom ? String(i.sbom.components) : '-',
          i.signature ? (i.signature.verified ? 'yes' : 'UNVERIFIED') : 'no',
        ]);
      }
      process.stdout.write(table(rows));
    });
}
