import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { homePaths } from '../bake/index.js';
import { NotFoundError } from '../errors/index.js';
import { OciStore, parseReference, RegistryClient } from '../oci/index.js';
import { homeFor, loadFromOptions, printJson } from './common.js';

/** `kiln push NAME REGISTRY/REPO:TAG`: push an image, its SBOM and its signature through the OCI distribution API. */
export function pushCommand(): Command {
  return new Command('push')
    .description('push a baked image (with its SBOM and signature) to an OCI registry')
    .argument('<name>', 'image name (or digest) in the store')
    .argument('<target>', 'REGISTRY/REPO[:TAG], e.g. localhost:5000/team/api:1.0')
    .option('--username <user>', 'registry user (or KILN_REGISTRY_USERNAME)')
    .option(
      '--password-stdin',
      'read the password (or token) from standard input (or KILN_REGISTRY_PASSWORD)',
    )
    .option('--ca <file>', 'extra CA certificate (PEM) to trust for TLS')
    .option('--insecure', 'allow plain HTTP to a registry that is not on loopback')
    .option('--no-referrers', 'push the image only, not its SBOM and signature')
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        target: string,
        opts: {
          username?: string;
          passwordStdin?: boolean;
          ca?: string;
          insecure?: boolean;
          referrers: boolean;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const config = await loadFromOptions(cmd);
        const store = await OciStore.open(homePaths(homeFor(config)).store);
        const desc = await store.resolve(name);
        if (!desc)
          throw new NotFoundError(`no image "${name}" in the store: run \`kiln bake ${name}\` first`);
        const ref = parseReference(target);
        const username = opts.username ?? process.env.KILN_REGISTRY_USERNAME;
        const password = opts.passwordStdin ? (await readStdin()).trim() : process.env.KILN_REGISTRY_PASSWORD;
        const client = new RegistryClient({
          registry: ref.registry,
          ...(opts.insecure ? { insecure: true } : {}),
          ...(username ? { username } : {}),
          ...(password ? { password } : {}),
          ...(opts.ca ? { ca: await readFile(path.resolve(opts.ca)) } : {}),
        });
        const tag = ref.tag ?? 'latest';
        await client.pushImage(
          store,
          desc,
          { repository: ref.repository, tag },
          { referrers: opts.referrers },
        );
        const result = {
          name,
          digest: desc.digest,
          pushed: `${ref.registry}/${ref.repository}:${tag}`,
          reference: `${ref.registry}/${ref.repository}@${desc.digest}`,
        };
        if (opts.json) printJson(result);
        else process.stdout.write(`pushed ${result.pushed}\n${result.reference}\n`);
      },
    );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
