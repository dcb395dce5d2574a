/**
 * What `kiln replicate` and `kiln deploy --regions` share: picking regions from the config,
 * registry clients and repositories for them, the image to copy, and copying it to one region.
 * Credentials come from the environment, a region's own first: `KILN_REGISTRY_USERNAME_EU` and
 * `KILN_REGISTRY_PASSWORD_EU` for region `eu`, else `KILN_REGISTRY_USERNAME`/`_PASSWORD`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { homePaths } from '../bake/index.js';
import { NotFoundError, ValidationError } from '../errors/index.js';
import {
  fileJournal,
  parseReference,
  RegistryClient,
  registrySource,
  replicateImage,
  storeSource,
  type Descriptor,
  type OciStore,
  type Replication,
  type ReplicationSource,
} from '../oci/index.js';
import { parseBytes, type RegionSpec, type StackSpec } from '../spec/index.js';

/** A region as the config declares it, with its name. */
export interface NamedRegion extends RegionSpec {
  readonly name: string;
}

/** Flags about registries that both verbs take. */
export interface RegistryFlags {
  readonly insecure?: boolean;
  readonly registryCa?: string;
  readonly chunkSize?: string;
}

/** `eu,us` → the regions, in that order; every name must be declared, none twice. */
export function pickRegions(list: string, stack: StackSpec, flag = '--regions'): NamedRegion[] {
  const names = list
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  const declared = Object.keys(stack.regions);
  const fix = declared.length
    ? `use names from regions: ${declared.join(', ')}`
    : 'declare regions in the config: regions: { eu: { target: …, registry: … } }';
  if (names.length === 0) {
    throw new ValidationError(flag, [{ path: '', message: 'names no region', fix }]);
  }
  const seen = new Set<string>();
  return names.map((name) => {
    if (!Object.hasOwn(stack.regions, name)) {
      throw new ValidationError(flag, [{ path: '', message: `"${name}" is not a declared region`, fix }]);
    }
    if (seen.has(name)) {
      throw new ValidationError(flag, [
        { path: '', message: `"${name}" is named twice`, fix: 'name each region once' },
      ]);
    }
    seen.add(name);
    return { name, ...stack.regions[name]! };
  });
}

/** `registry.example.com/kiln` → host `registry.example.com`, prefix `kiln`. */
export function registryParts(region: RegionSpec): { host: string; prefix: string } {
  const slash = region.registry.indexOf('/');
  return slash === -1
    ? { host: region.registry, prefix: '' }
    : { host: region.registry.slice(0, slash), prefix: region.registry.slice(slash + 1) };
}

/** The repository image `name` has in the region's registry: `<prefix>/<name>`. */
export function regionRepository(region: RegionSpec, name: string): string {
  const { prefix } = registryParts(region);
  return prefix === '' ? name : `${prefix}/${name}`;
}

/** `eu-west` → `EU_WEST`, for environment variable names. */
export function envSuffix(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** A client for the region's registry, with the region's credentials from `env`. */
export async function regionClient(
  region: NamedRegion,
  flags: RegistryFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RegistryClient> {
  const own = (key: string) => env[`${key}_${envSuffix(region.name)}`] || env[key] || undefined;
  const username = own('KILN_REGISTRY_USERNAME');
  const password = own('KILN_REGISTRY_PASSWORD');
  return new RegistryClient({
    registry: registryParts(region).host,
    ...(flags.insecure ? { insecure: true } : {}),
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    ...(flags.registryCa ? { ca: await readFile(path.resolve(flags.registryCa)) } : {}),
  });
}

/** `--chunk-size 8Mi` in bytes, or undefined for the default. */
export function chunkSizeOf(flags: RegistryFlags): number | undefined {
  if (flags.chunkSize === undefined) return undefined;
  const bytes = parseBytes(flags.chunkSize);
  if (bytes === undefined || bytes < 1024) {
    throw new ValidationError('--chunk-size', [
      { path: '', message: `"${flags.chunkSize}" is not a size of at least 1 KiB`, fix: 'write it as 8Mi' },
    ]);
  }
  return bytes;
}

/** The image to replicate: its name (the repository's last part) and its descriptor. */
export interface ImageToCopy {
  readonly name: string;
  readonly descriptor: Descriptor;
  readonly source: ReplicationSource;
}

/**
 * The image `arg` names (`NAME`, `NAME@sha256:…` or `sha256:…`) in the project's store, or, with
 * `from`, in that region's registry (by digest, or by `NAME[:tag]`).
 */
export async function imageToCopy(
  arg: string,
  store: OciStore,
  from?: { readonly region: NamedRegion; readonly client: RegistryClient },
): Promise<ImageToCopy> {
  const at = arg.indexOf('@');
  let name = at === -1 ? arg : arg.slice(0, at);
  const digest = at === -1 ? (arg.startsWith('sha256:') ? arg : undefined) : arg.slice(at + 1);
  if (digest !== undefined && name === arg) name = '';
  if (from !== undefined) {
    if (name === '') throw needName(arg, 'the source registry');
    const colon = name.lastIndexOf(':');
    const tag = colon > name.lastIndexOf('/') ? name.slice(colon + 1) : undefined;
    if (tag !== undefined) name = name.slice(0, colon);
    const repository = regionRepository(from.region, name);
    // The reference parser checks the digest and tag before they go into a URL.
    const ref = parseReference(
      `${from.client.registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`,
    );
    const fetched = await from.client
      .getManifest(repository, ref.digest ?? ref.tag ?? 'latest')
      .catch((err: unknown) => {
        if (!(err instanceof NotFoundError) || ref.digest !== undefined) throw err;
        throw new NotFoundError(
          `${err.message}; images are replicated by digest only unless --tag was given: name it as ${name}@sha256:…`,
          { cause: err },
        );
      });
    return {
      name,
      descriptor: { mediaType: fetched.mediaType, digest: fetched.digest, size: fetched.body.length },
      source: registrySource(from.client, repository, store),
    };
  }
  const descriptor = await store.resolve(name !== '' ? name : digest!);
  if (descriptor === undefined) {
    throw new NotFoundError(`no image "${arg}" in the store at ${store.dir}: bake it first (kiln bake)`);
  }
  if (digest !== undefined && descriptor.digest !== digest) {
    throw new ValidationError(undefined, [
      {
        path: 'image',
        message: `"${name}" is ${descriptor.digest} in the store, not ${digest}`,
        fix: `replicate ${name}@${descriptor.digest}, or ${digest} on its own`,
      },
    ]);
  }
  if (name === '') {
    // A bare digest: the repository is named after the image the store tags with it.
    const tagged = (await store.list()).find((t) => t.descriptor.digest === descriptor.digest);
    if (tagged === undefined) throw needName(arg, 'the store');
    name = tagged.ref;
  }
  return { name: repositoryName(name), descriptor, source: storeSource(store) };
}

/** A store ref's repository part: `team/app:1.0` → `team/app`. */
function repositoryName(ref: string): string {
  const colon = ref.lastIndexOf(':');
  return colon > ref.lastIndexOf('/') ? ref.slice(0, colon) : ref;
}

function needName(arg: string, where: string): ValidationError {
  return new ValidationError(undefined, [
    {
      path: 'image',
      message: `${arg} is a digest that no image name in ${where} goes with, so its repository is unknown`,
      fix: `give it as NAME@${arg.slice(arg.indexOf('sha256:'))}`,
    },
  ]);
}

/**
 * Copies `image` to `region`'s registry, remembering uploads in progress under the project's home.
 * `copied` holds, per registry host, a repository this run already copied the image to: a later
 * region on the same registry mounts the blobs from there instead of sending them again.
 */
export async function replicateToRegion(
  home: string,
  image: ImageToCopy,
  region: NamedRegion,
  client: RegistryClient,
  options: {
    readonly chunkSize?: number;
    readonly tag?: string;
    readonly copied?: Map<string, string>;
  },
): Promise<Replication> {
  const repository = regionRepository(region, image.name);
  const earlier = options.copied?.get(client.registry);
  const source =
    image.source.mount?.registry !== client.registry && earlier !== undefined
      ? { ...image.source, mount: { registry: client.registry, repository: earlier } }
      : image.source;
  const replication = await replicateImage(
    source,
    image.descriptor,
    { client, repository, ...(options.tag !== undefined ? { tag: options.tag } : {}) },
    {
      journal: fileJournal(uploadsDir(home)),
      ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
    },
  );
  options.copied?.set(client.registry, repository);
  return replication;
}

/** Where uploads in progress are remembered: `.kiln/uploads/`. */
export function uploadsDir(home: string): string {
  return path.join(home, 'uploads');
}

/** The project's store, where images to replicate are (and where `--from` stages blobs). */
export function storeDir(home: string): string {
  return homePaths(home).store;
}

/** One line for a replication: `eu: 127.0.0.1:5000/kiln/web@sha256:… (3 blobs uploaded, 20.0 MiB sent; 2 there)`. */
export function replicationLine(region: string, r: Replication, human: (n: number) => string): string {
  const count = (how: string) => r.blobs.filter((b) => b.how === how).length;
  const resumed = r.blobs.filter((b) => b.resumedFrom !== undefined);
  const restarted = r.blobs.filter((b) => b.restarted !== undefined);
  const parts = [
    `${count('uploaded')} uploaded (${human(r.bytesSent)} sent)`,
    ...(resumed.length ? [`${resumed.length} resumed`] : []),
    ...(restarted.length
      ? [`${restarted.length} sent again whole (the registry had dropped the cut upload)`]
      : []),
    ...(count('mounted') ? [`${count('mounted')} mounted`] : []),
    `${count('present')} already there`,
  ];
  return `${region}: ${r.reference} — ${r.blobs.length} blobs: ${parts.join(', ')}; ${r.manifests.length} manifests (${r.referrers.length} referrers)`;
}
