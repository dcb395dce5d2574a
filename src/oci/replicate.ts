/**
 * Replication: an image copied by digest into another registry's repository, with everything
 * attached to it (SBOM, signature: its referrers, recursively). Blobs first, then manifests, each
 * child before its parent, so the registry never holds a manifest whose content it lacks. A blob
 * the destination has is not sent again (HEAD first); one in another repository of the same
 * registry is mounted; any other is sent by a resumable upload ({@link uploadBlobResumable}).
 */
import { IntegrityError, UnavailableError, ValidationError, wrap } from '../errors/index.js';
import { hasIntactBlob } from './blob-check.js';
import { verifyDigest } from './digest.js';
import type { OciStore } from './layout.js';
import { assertRepository, assertTag } from './reference.js';
import { parseJson, plainDescriptor } from './refs.js';
import { pullScope, pushScope, type RegistryClient } from './registry.js';
import { updateFallbackTag } from './transfer.js';
import { MediaType, type Descriptor, type Digest } from './types.js';
import { uploadBlobResumable, type UploadJournal } from './upload.js';

/** Where an image is copied from. */
export interface ReplicationSource {
  /** For messages: `the local store` or `registry/repository`. */
  readonly name: string;
  /** The manifest's exact bytes, checked against its digest. */
  manifest(d: Descriptor): Promise<Buffer>;
  /** The manifests whose subject is `digest` (referrers), as descriptors. */
  referrers(digest: Digest): Promise<Descriptor[]>;
  /** A local file holding the blob; the upload checks it hashes right before sending it. */
  blobFile(d: Descriptor): Promise<string>;
  /** Set when the source is a registry's repository, so a blob can be mounted from it. */
  readonly mount?: { readonly registry: string; readonly repository: string };
}

/** The source of an image in a local OCI store. */
export function storeSource(store: OciStore): ReplicationSource {
  return {
    name: `the store at ${store.dir}`,
    manifest: (d) => store.getBlob(d.digest),
    referrers: (digest) => store.referrers(digest),
    blobFile: async (d) => store.blobPath(d.digest),
  };
}

/**
 * The source of an image in `repository` of a registry. Blobs are fetched (and verified) into
 * `staging`, a local store, only when they must be sent; a blob the store holds intact is not
 * fetched again, so a copy interrupted after some blobs does not download them twice.
 */
export function registrySource(
  client: RegistryClient,
  repository: string,
  staging: OciStore,
): ReplicationSource {
  assertRepository(repository);
  return {
    name: `${client.registry}/${repository}`,
    mount: { registry: client.registry, repository },
    manifest: async (d) => (await client.getManifest(repository, d.digest, [d.mediaType])).body,
    referrers: (digest) => client.getReferrers(repository, digest),
    async blobFile(d) {
      if (!(await hasIntactBlob(staging, d))) {
        const data = await client.getBlob(repository, d.digest);
        if (data.length !== d.size) {
          throw new IntegrityError(
            `${client.registry}/${repository}: blob ${d.digest} is ${data.length} bytes, the manifest says ${d.size}`,
          );
        }
        await staging.putBlob(data, d.mediaType);
      }
      return staging.blobPath(d.digest);
    },
  };
}

/** Where an image is copied to. */
export interface ReplicationTarget {
  readonly client: RegistryClient;
  readonly repository: string;
  /** Also point this tag at the image. @default none: by digest only */
  readonly tag?: string;
}

/** Options of {@link replicateImage}. */
export interface ReplicateOptions {
  /** Where uploads in progress are remembered, so a later try resumes them. @default in memory */
  readonly journal?: UploadJournal;
  /** @default DEFAULT_UPLOAD_CHUNK_SIZE */
  readonly chunkSize?: number;
  /** Copy the image's referrers (SBOM, signature), recursively. @default true */
  readonly referrers?: boolean;
  /** Told of each blob as it is dealt with. */
  readonly onBlob?: (blob: ReplicatedBlob) => void;
}

/** One blob of a replication and what was done with it. */
export interface ReplicatedBlob {
  readonly digest: Digest;
  readonly size: number;
  /** `present`: the destination had it; `mounted` from the source repository; `uploaded`. */
  readonly how: 'present' | 'mounted' | 'uploaded';
  /** Bytes of it sent by this replication. */
  readonly bytesSent: number;
  /** For an upload resumed from an earlier try: the registry's offset it went on from. */
  readonly resumedFrom?: number;
  /** Why an upload remembered from an earlier try started afresh instead. */
  readonly restarted?: string;
}

/** What {@link replicateImage} did. */
export interface Replication {
  readonly registry: string;
  readonly repository: string;
  readonly digest: Digest;
  /** `registry/repository@sha256:…`: how a control plane pulls it by digest. */
  readonly reference: string;
  readonly tag?: string;
  /** Every manifest put, the image's and its referrers', in order. */
  readonly manifests: readonly Digest[];
  readonly referrers: readonly Descriptor[];
  readonly blobs: readonly ReplicatedBlob[];
  readonly bytesSent: number;
  /** Subjects whose referrers are listed under the fallback tag `sha256-<hex>` (no referrers API). */
  readonly fallbackTags: readonly string[];
}

/**
 * Copies image `image` (an image manifest or index, by digest) from `source` to `target`, with its
 * referrers. Every blob's digest is checked on the way: the source's bytes before they are sent
 * (or on download), the registry's own check when an upload is closed, and the size and digest it
 * then serves; every manifest is put by digest, which the registry checks too.
 *
 * @example
 * const r = await replicateImage(storeSource(store), desc, { client, repository: 'kiln/web' }, { journal });
 * r.reference; // 'registry-eu.example.com/kiln/web@sha256:…'
 */
export async function replicateImage(
  source: ReplicationSource,
  image: Descriptor,
  target: ReplicationTarget,
  options: ReplicateOptions = {},
): Promise<Replication> {
  const { client, repository } = target;
  assertRepository(repository);
  if (target.tag !== undefined) assertTag(target.tag);
  const blobs = new Map<Digest, ReplicatedBlob>();
  const manifests: Digest[] = [];

  const copyBlob = async (d: Descriptor): Promise<void> => {
    if (blobs.has(d.digest)) return;
    let done: ReplicatedBlob;
    try {
      done = await replicateBlob(source, d, target, options);
    } catch (err) {
      const context = `copying blob ${d.digest} (${d.size} bytes) from ${source.name} to ${client.registry}/${repository}`;
      if (!(err instanceof UnavailableError)) throw wrap(context, err);
      // Cut off: what the registry acknowledged is remembered, so the same command goes on from there.
      throw new UnavailableError(
        `${context}: ${err.message}; run the same command again to resume: blobs already copied are not sent again, and this one goes on from the offset the registry holds`,
        { cause: err },
      );
    }
    blobs.set(d.digest, done);
    options.onBlob?.(done);
  };

  /** Copies a manifest's blobs (or an index's manifests), then the manifest; says whether the registry indexed its subject. */
  const copyManifest = async (d: Descriptor): Promise<boolean> => {
    const body = await source.manifest(d);
    verifyDigest(body, d.digest, `manifest ${d.digest} from ${source.name}`);
    const value = parseJson(body, `manifest ${d.digest}`) as {
      mediaType?: string;
      config?: Descriptor;
      layers?: Descriptor[];
      manifests?: Descriptor[];
    };
    const mediaType = value.mediaType ?? d.mediaType;
    if (mediaType === MediaType.ImageIndex || mediaType === MediaType.DockerManifestList) {
      for (const child of value.manifests ?? []) await copyManifest(child);
    } else if (value.config !== undefined && Array.isArray(value.layers)) {
      for (const blob of [value.config, ...value.layers]) await copyBlob(blob);
    } else {
      throw new ValidationError(`manifest ${d.digest} from ${source.name}`, [
        {
          path: 'mediaType',
          message: `is neither an image manifest nor an index (${mediaType})`,
          fix: 'replicate an image by the digest of its manifest or index',
        },
      ]);
    }
    const put = await client.pushManifest(repository, d.digest, body, mediaType);
    manifests.push(d.digest);
    if (target.tag !== undefined && d.digest === image.digest) {
      await client.pushManifest(repository, target.tag, body, mediaType);
    }
    return put.subjectIndexed;
  };

  await copyManifest(image);
  const referrers: Descriptor[] = [];
  const fallbackTags: string[] = [];
  const queue: Digest[] = options.referrers === false ? [] : [image.digest];
  const seen = new Set<Digest>();
  while (queue.length > 0) {
    const subject = queue.shift()!;
    if (seen.has(subject)) continue;
    seen.add(subject);
    const unindexed: Descriptor[] = [];
    for (const r of await source.referrers(subject)) {
      if (!(await copyManifest(r))) unindexed.push(r);
      referrers.push(r);
      queue.push(r.digest);
    }
    // Registries without the referrers API find them under the fallback tag, as `kiln push` lists them.
    if (unindexed.length > 0)
      fallbackTags.push(await updateFallbackTag(client, repository, subject, unindexed));
  }
  const copied = [...blobs.values()];
  return {
    registry: client.registry,
    repository,
    digest: image.digest,
    reference: `${client.registry}/${repository}@${image.digest}`,
    ...(target.tag !== undefined ? { tag: target.tag } : {}),
    manifests,
    referrers: referrers.map((r) => ({
      ...plainDescriptor(r),
      ...(r.artifactType ? { artifactType: r.artifactType } : {}),
    })),
    blobs: copied,
    bytesSent: copied.reduce((n, b) => n + b.bytesSent, 0),
    fallbackTags,
  };
}

/** One blob: left alone when the destination has it, else mounted or uploaded. */
async function replicateBlob(
  source: ReplicationSource,
  d: Descriptor,
  target: ReplicationTarget,
  options: ReplicateOptions,
): Promise<ReplicatedBlob> {
  const { client, repository } = target;
  const base = { digest: d.digest, size: d.size };
  if (await client.hasBlob(repository, d.digest)) return { ...base, how: 'present', bytesSent: 0 };
  let opened: URL | undefined;
  const mount = source.mount;
  if (mount !== undefined && mount.registry === client.registry && mount.repository !== repository) {
    const uploads = `/v2/${repository}/blobs/uploads/`;
    const query = new URLSearchParams({ mount: d.digest, from: mount.repository });
    const res = await client.request('POST', `${uploads}?${query}`, {
      scope: `${pushScope(repository)} ${pullScope(mount.repository)}`,
    });
    if (res.status === 201) return { ...base, how: 'mounted', bytesSent: 0 };
    // 202: the registry would not mount it and opened an upload instead; send the bytes there.
    if (res.status === 202) opened = await client.location(res, uploads);
  }
  const file = await source.blobFile(d);
  const sent = await uploadBlobResumable(client, repository, file, d, {
    ...(options.journal ? { journal: options.journal } : {}),
    ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
    ...(opened ? { opened } : {}),
  });
  return {
    ...base,
    how: 'uploaded',
    bytesSent: sent.bytesSent,
    ...(sent.resumedFrom > 0 ? { resumedFrom: sent.resumedFrom } : {}),
    ...(sent.restarted !== undefined ? { restarted: sent.restarted } : {}),
  };
}
