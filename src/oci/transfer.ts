/**
 * Whole-image transfers between an OciStore and a registry: push (blobs first, then the manifest
 * by digest and by tag, then referrers) and pull (every blob verified).
 */
import { IntegrityError, NotFoundError, ValidationError } from '../errors/index.js';
import { hasIntactBlob } from './blob-check.js';
import { canonicalJson } from './digest.js';
import type { OciStore } from './layout.js';
import { assertRepository, assertTag } from './reference.js';
import { fallbackTag } from './registry-api.js';
import { assertImageIndex, assertImageManifest, parseJson, plainDescriptor } from './refs.js';
import { MediaType, type Descriptor, type Digest, type ImageIndex, type ImageManifest } from './types.js';

/** Where an image goes to or comes from in a registry. */
export interface RemoteTarget {
  readonly repository: string;
  readonly tag?: string;
  /** For pulls: fetch this manifest digest (wins over `tag`). */
  readonly digest?: Digest;
}

/** Options for `RegistryClient.pushImage`. */
export interface PushOptions {
  /** Also push every artifact attached to the image (recursively). @default false */
  readonly referrers?: boolean;
}

/** Options for `RegistryClient.pullImage`. */
export interface PullOptions {
  /** Also pull the image's referrers (recursively). @default false */
  readonly referrers?: boolean;
}

/** What a push sent. */
export interface PushedImage {
  readonly descriptor: Descriptor;
  /** Referrer manifests pushed, in push order. */
  readonly referrers: readonly Descriptor[];
  /** Subjects whose referrers were listed under the fallback tag `sha256-<hex>`. */
  readonly fallbackTags: readonly string[];
}

/** What a pull stored. */
export interface PulledImage {
  readonly descriptor: Descriptor;
  readonly referrers: readonly Descriptor[];
}

/** The client operations transfers use (kept narrow so client and transfers do not import each other). */
export interface RegistryOps {
  readonly registry: string;
  hasBlob(repository: string, digest: Digest): Promise<boolean>;
  getBlob(repository: string, digest: Digest): Promise<Buffer>;
  pushBlob(repository: string, source: Buffer, digest: Digest): Promise<unknown>;
  pushManifest(
    repository: string,
    reference: string,
    body: Buffer,
    mediaType: string,
  ): Promise<{ digest: Digest; subjectIndexed: boolean }>;
  getManifest(
    repository: string,
    reference: string,
    accept?: readonly string[],
  ): Promise<{ body: Buffer; mediaType: string; digest: Digest }>;
  getReferrers(repository: string, subject: Digest): Promise<Descriptor[]>;
}

/**
 * Pushes image `ref` from `store` to `target`: config and layers (skipping blobs the registry has),
 * then the manifest by digest and, with `target.tag`, by tag. With `options.referrers`, each
 * attached artifact is pushed too; when the registry does not index referrers itself (no
 * `OCI-Subject` answer), the subject's fallback tag index `sha256-<hex>` is updated.
 */
export async function pushImage(
  client: RegistryOps,
  store: OciStore,
  ref: string | Descriptor,
  target: RemoteTarget,
  options: PushOptions,
): Promise<PushedImage> {
  assertRepository(target.repository);
  if (target.tag !== undefined) assertTag(target.tag);
  const image = typeof ref === 'string' ? await store.resolve(ref) : ref;
  if (image === undefined) throw new NotFoundError(`no image "${String(ref)}" in the store at ${store.dir}`);
  const repo = target.repository;
  const { body } = await pushManifestTree(client, store, repo, image);
  if (target.tag !== undefined) await client.pushManifest(repo, target.tag, body, MediaType.ImageManifest);

  const referrers: Descriptor[] = [];
  const fallbackTags: string[] = [];
  const queue: Digest[] = options.referrers ? [image.digest] : [];
  const done = new Set<string>();
  while (queue.length > 0) {
    const subject = queue.shift()!;
    if (done.has(subject)) continue;
    done.add(subject);
    const unindexed: Descriptor[] = [];
    for (const referrer of await store.referrers(subject)) {
      const { subjectIndexed } = await pushManifestTree(client, store, repo, referrer);
      if (!subjectIndexed) unindexed.push(referrer);
      referrers.push(referrer);
      queue.push(referrer.digest);
    }
    if (unindexed.length > 0) fallbackTags.push(await updateFallbackTag(client, repo, subject, unindexed));
  }
  return { descriptor: plainDescriptor(image), referrers, fallbackTags };
}

/**
 * Pushes a manifest's config and layers, then the manifest by digest; returns its bytes and whether
 * the registry indexed its subject (answered `OCI-Subject`).
 */
async function pushManifestTree(
  client: RegistryOps,
  store: OciStore,
  repo: string,
  d: Descriptor,
): Promise<{ body: Buffer; subjectIndexed: boolean }> {
  if (d.mediaType !== MediaType.ImageManifest) {
    throw new ValidationError(undefined, [
      {
        path: 'mediaType',
        message: `${d.digest} is a ${d.mediaType}; only single image manifests are pushed`,
        fix: 'push each platform image on its own',
      },
    ]);
  }
  const manifest = await store.getManifest(d.digest);
  for (const blob of [manifest.config, ...manifest.layers]) {
    // Asking first spares reading a layer from disk that the registry already has.
    if (!(await client.hasBlob(repo, blob.digest))) {
      await client.pushBlob(repo, await store.getBlob(blob.digest), blob.digest);
    }
  }
  const body = await store.getBlob(d.digest);
  const { subjectIndexed } = await client.pushManifest(repo, d.digest, body, MediaType.ImageManifest);
  return { body, subjectIndexed };
}

/** Adds `referrers` to the index at tag `sha256-<hex>` of `subject` (creating it), as the distribution spec's fallback. */
export async function updateFallbackTag(
  client: RegistryOps,
  repo: string,
  subject: Digest,
  referrers: readonly Descriptor[],
): Promise<string> {
  const tag = fallbackTag(subject);
  let manifests: Descriptor[] = [];
  try {
    const existing = await client.getManifest(repo, tag, [MediaType.ImageIndex]);
    const what = `referrers index ${client.registry}/${repo}:${tag}`;
    const index = parseJson(existing.body, what);
    assertImageIndex(index, what);
    manifests = [...index.manifests];
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  const before = manifests.length;
  for (const r of referrers) {
    if (!manifests.some((m) => m.digest === r.digest)) manifests.push(r);
  }
  if (manifests.length !== before || before === 0) {
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests };
    await client.pushManifest(repo, tag, canonicalJson(index), MediaType.ImageIndex);
  }
  return tag;
}

/**
 * Pulls `target` (by digest, else tag, else `latest`) into `store`: each blob is downloaded only
 * when missing or damaged, verified against its digest and size (a registry serving other bytes is
 * refused with an IntegrityError naming the digest), and stored before the manifest, which is kept
 * byte for byte (so its digest is unchanged) and tagged `ref` when given.
 */
export async function pullImage(
  client: RegistryOps,
  target: RemoteTarget,
  store: OciStore,
  ref: string | undefined,
  options: PullOptions,
): Promise<PulledImage> {
  assertRepository(target.repository);
  const reference = target.digest ?? target.tag ?? 'latest';
  const descriptor = await pullManifestTree(client, target.repository, reference, store, ref);
  const referrers: Descriptor[] = [];
  const queue: Digest[] = options.referrers ? [descriptor.digest] : [];
  const done = new Set<string>();
  while (queue.length > 0) {
    const subject = queue.shift()!;
    if (done.has(subject)) continue;
    done.add(subject);
    for (const r of await client.getReferrers(target.repository, subject)) {
      if (r.mediaType !== MediaType.ImageManifest) continue;
      referrers.push(await pullManifestTree(client, target.repository, r.digest, store, undefined));
      queue.push(r.digest);
    }
  }
  return { descriptor, referrers };
}

async function pullManifestTree(
  client: RegistryOps,
  repo: string,
  reference: string,
  store: OciStore,
  ref: string | undefined,
): Promise<Descriptor> {
  const fetched = await client.getManifest(repo, reference);
  const where = `${client.registry}/${repo}:${reference}`;
  if (fetched.mediaType !== MediaType.ImageManifest) {
    throw new ValidationError(where, [
      {
        path: 'mediaType',
        message: `is a ${fetched.mediaType}; kiln pulls single OCI image manifests`,
        fix:
          fetched.mediaType.includes('index') || fetched.mediaType.includes('list')
            ? 'pull one platform by its manifest digest'
            : 'push the image in OCI format',
      },
    ]);
  }
  const manifest = parseJson(fetched.body, where);
  assertImageManifest(manifest, where);
  for (const blob of [(manifest as ImageManifest).config, ...(manifest as ImageManifest).layers]) {
    // A blob already here is used only when it hashes right; a damaged one is fetched again and
    // putBlob writes it anew, so a pull also repairs the store.
    if (await hasIntactBlob(store, blob)) continue;
    const data = await client.getBlob(repo, blob.digest);
    if (data.length !== blob.size) {
      throw new IntegrityError(
        `${where}: blob ${blob.digest} is ${data.length} bytes, the manifest says ${blob.size}`,
      );
    }
    await store.putBlob(data, blob.mediaType);
  }
  return store.putManifestBytes(fetched.body, ref !== undefined ? { ref } : {});
}
