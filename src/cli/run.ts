import { Command, Option } from 'commander';
import { homePaths } from '../bake/index.js';
import { NotFoundError, ValidationError } from '../errors/index.js';
import { OciStore, type ImageConfig } from '../oci/index.js';
import { ensureRootfs, processFromImage, runOnce } from '../runtime/index.js';
import { homeFor, loadFromOptions } from './common.js';
import path from 'node:path';

/** `kiln run NAME [-- ARGS]`: run a baked image once in a container and print its output. */
export function runCommand(): Command {
  return new Command('run')
    .description('run a baked image once, in a container (crun or runc), read-only, and print its output')
    .argument('<name>', 'image name (or digest) in the store')
    .argument('[args...]', "replace the image's cmd (put them after --)")
    .option('-e, --env <KEY=VALUE...>', 'extra environment')
    .option('--timeout <seconds>', 'kill it after this long', '60')
    .option('--network', 'share the host network')
    .addOption(new Option('--runtime <name>', 'OCI runtime').choices(['crun', 'runc']))
    .action(
      async (
        name: string,
        args: string[],
        opts: { env?: string[]; timeout: string; network?: boolean; runtime?: 'crun' | 'runc' },
        cmd: Command,
      ) => {
        const config = await loadFromOptions(cmd);
        const home = homeFor(config);
        const store = await OciStore.open(homePaths(home).store);
        const desc = await store.resolve(name);
        if (!desc)
          throw new NotFoundError(`no image "${name}" in the store: run \`kiln bake ${name}\` first`);
        const manifest = await store.getManifest(desc.digest);
        const imageConfig = JSON.parse(
          (await store.getBlob(manifest.config.digest)).toString('utf8'),
        ) as ImageConfig;
        const extraEnv: Record<string, string> = {};
        for (const kv of opts.env ?? []) {
          const i = kv.indexOf('=');
          if (i <= 0)
            throw new ValidationError('--env', [
              { path: '', message: `"${kv}" is not KEY=VALUE`, fix: 'write -e NAME=value' },
            ]);
          extraEnv[kv.slice(0, i)] = kv.slice(i + 1);
        }
        const proc = processFromImage(imageConfig, args, extraEnv);
        if (proc.args.length === 0) {
          throw new ValidationError(name, [
            {
              path: 'config',
              message: 'the image has no entrypoint or cmd',
              fix: 'give a command: kiln run NAME -- CMD',
            },
          ]);
        }
        const rootfs = await ensureRootfs(store, desc.digest, path.join(home, 'rootfs'));
        const result = await runOnce({
          rootfs,
          ...proc,
          timeoutMs: Number(opts.timeout) * 1000,
          ...(opts.network ? { hostNetwork: true } : {}),
          ...(opts.runtime ? { runtime: opts.runtime } : {}),
        });
        process.stdout.write(result.stdout);
        process.stderr.write(result.stderr);
        process.exitCode = result.exitCode;
      },
    );
}
