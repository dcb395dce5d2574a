/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/<hex>`): the image store.
 * Blobs are content-addressed and verified on every read; every write is atomic; index.json updates
 * are serialised within the process (per layout directory) and, through a lock file, between processes.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { IntegrityError, NotFoundError, ValidationError, wrap } from '../errors/index.js';
import { canonicalJson, digestHex, isDigest, sha256Digest, verifyDigest } from './digest.js';
import { DEFAULT_LOCK_TIMEOUT_MS, withLockFile, writeFileAtomic } from './fsutil.js';
import { collectGarbage, type GcOptions, type GcResult } from './layout-gc.js';
import {
  addUntagged,
  assertImageIndex,
  assertImageManifest,
  assertMediaType,
  assertRefName,
  checkDigest,
  compareEntries,
  parseJson,
  plainDescriptor,
  refOf,
} from './refs.js';
import { exportLayout } from './layout-export.js';
import {
  Annotation,
  MediaType,
  type Descriptor,
  type Digest,
  type ImageIndex,
  type ImageManifest,
} from './types.js';

/** The `imageLayoutVersion` kiln writes and accepts. */
export const OCI_LAYOUT_VERSION = '1.0.0';
/** The bytes of the empty JSON blob used as the config of artifact manifests. */
export const EMPTY_JSON_BLOB = Buffer.from('{}');
/** The descriptor of {@link EMPTY_JSON_BLOB} (`application/vnd.oci.empty.v1+json`, size 2). */
export const EMPTY_DESCRIPTOR: Descriptor = {
  mediaType: MediaType.EmptyJson,
  digest: sha256Digest(EMPTY_JSON_BLOB),
  size: EMPTY_JSON_BLOB.length,
};

/** Options for {@link OciStore.putManifest}. */
export interface PutManifestOptions {
  /** Tag the manifest under this reference; without one it is kept as an untagged root. */
  readonly ref?: string;
  /** Annotations for the manifest's index entry. */
  readonly annotations?: Readonly<Record<string, string>>;
}

/** Options for {@link OciStore.open}. */
export interface OciStoreOptions {
  /** How long to wait for another process's index.json lock. @default DEFAULT_LOCK_TIMEOUT_MS */
  readonly lockTimeoutMs?: number;
}

/** An artifact to attach to an image with {@link OciStore.attach} (an SBOM, a signature …). */
export interface ArtifactInput {
  readonly artifactType: string;
  /** Media type of `data` itself. */
  readonly mediaType: string;
  readonly data: Buffer;
  /** Annotations for the artifact manifest. */
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A tagged image in the store. */
export interface TaggedImage {
  readonly ref: string;
  readonly descriptor: Descriptor;
}

const EMPTY_INDEX: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests: [] };

/**
 * An OCI image layout on disk, readable by any OCI tool (skopeo `oci:DIR:TAG`, umoci).
 *
 * @example
 * const store = await OciStore.open('.kiln/store');
 * const layer = await buildLayer(entries, { mtime: 0 });
 * await store.putBlob(layer.blob, layer.descriptor.mediaType);
 * const config = await store.putJson(imageConfig, MediaType.ImageConfig);
 * await store.putManifest({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers: [layer.descriptor] }, { ref: 'app:1.0' });
 */
export class OciStore {
  /** The layout directory. */
  readonly dir: string;
  private readonly lockTimeoutMs: number;

  private constructor(dir: string, lockTimeoutMs: number) {
    this.dir = dir;
    this.lockTimeoutMs = lockTimeoutMs;
  }

  /** Opens the layout at `dir`, creating it (and its parents) if missing. */
  static async open(dir: string, options: OciStoreOptions = {}): Promise<OciStore> {
    const store = new OciStore(dir, options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    const layoutFile = join(dir, 'oci-layout');
    const existing = await readFile(layoutFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (existing === undefined) {
      await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }));
    } else {
      let version: unknown;
      try {
        version = (JSON.parse(existing) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      } catch {
        version = undefined;
      }
      if (version !== OCI_LAYOUT_VERSION) {
        throw new ValidationError(layoutFile, [
          {
            path: 'imageLayoutVersion',
            message: `expected "${OCI_LAYOUT_VERSION}", got ${JSON.stringify(version)}`,
            fix: 'point kiln at an OCI image layout directory, or at an empty directory',
          },
        ]);
      }
    }
    // An existing index.json is only read (and so checked), never rewritten just for opening.
    const hasIndex = await stat(join(dir, 'index.json')).catch(() => undefined);
    if (hasIndex === undefined) await store.updateIndex((index) => index);
    else await store.readIndex();
    return store;
  }

  /** The file holding the blob `digest` (whether or not it exists). */
  blobPath(digest: Digest): string {
    checkDigest(digest);
    return join(this.dir, 'blobs', 'sha256', digestHex(digest));
  }

  /** True when the blob is present (its content is checked when read, not here). */
  async hasBlob(digest: Digest): Promise<boolean> {
    const st = await stat(this.blobPath(digest)).catch(() => undefined);
    return st?.isFile() ?? false;
  }

  /** Stores bytes as a blob (a no-op when already present) and returns their descriptor. */
  async putBlob(data: Buffer, mediaType: string): Promise<Descriptor> {
    assertMediaType(mediaType);
    const digest = sha256Digest(data);
    const path = this.blobPath(digest);
    // An existing blob is rewritten when it does not hash right, so putting content repairs it.
    const existing = await readFile(path).catch(() => undefined);
    if (existing === undefined || sha256Digest(existing) !== digest) await writeFileAtomic(path, data, 0o444);
    return { mediaType, digest, size: data.length };
  }

  /** Stores a value as canonical JSON (sorted keys, no whitespace) and returns its descriptor. */
  async putJson(value: unknown, mediaType: string): Promise<Descriptor> {
    return this.putBlob(canonicalJson(value), mediaType);
  }

  /** Reads a blob, verifying its digest: NotFoundError when missing, IntegrityError when corrupt. */
  async getBlob(digest: Digest): Promise<Buffer> {
    const path = this.blobPath(digest);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`blob ${digest} is not in the store at ${this.dir}`);
      }
      throw wrap(`reading blob ${digest}`, err);
    }
    verifyDigest(data, digest, `blob ${path}`);
    return data;
  }

  /**
   * Stores an image manifest (canonical JSON) after checking that its config and layers are in the
   * store, and records it in index.json: tagged under `opts.ref`, else as an untagged root.
   */
  async putManifest(manifest: ImageManifest, opts: PutManifestOptions = {}): Promise<Descriptor> {
    assertImageManifest(manifest, 'image manifest');
    return this.putManifestBytes(canonicalJson(manifest), opts);
  }

  /**
   * Stores a manifest exactly as given (so its digest is kept, as when pulled from a registry) and
   * records it in index.json like {@link putManifest}. Its config and layers must be in the store.
   */
  async putManifestBytes(body: Buffer, opts: PutManifestOptions = {}): Promise<Descriptor> {
    if (opts.ref !== undefined) assertRefName(opts.ref);
    const manifest = parseJson(body, 'image manifest');
    assertImageManifest(manifest, 'image manifest');
    const missing: string[] = [];
    for (const d of [manifest.config, ...manifest.layers]) {
      const st = await stat(this.blobPath(d.digest)).catch(() => undefined);
      if (st?.size !== d.size) missing.push(d.digest);
    }
    if (missing.length > 0) {
      throw new ValidationError(
        'image manifest',
        missing.map((d) => ({
          path: d,
          message: 'blob is not in the store (or has another size)',
          fix: 'putBlob it before the manifest',
        })),
      );
    }
    const stored = await this.putBlob(body, MediaType.ImageManifest);
    const descriptor: Descriptor = {
      ...stored,
      ...(manifest.artifactType !== undefined ? { artifactType: manifest.artifactType } : {}),
      ...(opts.annotations !== undefined ? { annotations: { ...opts.annotations } } : {}),
    };
    if (opts.ref !== undefined) await this.tag(opts.ref, descriptor);
    else await this.updateIndex((index) => addUntagged(index, descriptor));
    return descriptor;
  }

  /** Reads and checks an image manifest by digest. */
  async getManifest(digest: Digest): Promise<ImageManifest> {
    const value = parseJson(await this.getBlob(digest), `manifest ${digest}`);
    assertImageManifest(value, `manifest ${digest}`);
    return value;
  }

  /** The current index.json, checked: a ValidationError names each malformed entry. */
  async readIndex(): Promise<ImageIndex> {
    const path = join(this.dir, 'index.json');
    let text: Buffer;
    try {
      text = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_INDEX;
      throw err;
    }
    const index = parseJson(text, path) as Partial<ImageIndex>;
    if (index?.schemaVersion !== 2 || !Array.isArray(index.manifests)) {
      throw new IntegrityError(`${path}: not an OCI image index (schemaVersion 2 with a manifests array)`);
    }
    // Every entry is checked here, so no caller trips over a null entry or a bad digest.
    assertImageIndex(index, path);
    return index;
  }

  /** Points `ref` at `descriptor`. A ref names one manifest: tagging again moves it. */
  async tag(ref: string, descriptor: Descriptor): Promise<void> {
    assertRefName(ref);
    checkDigest(descriptor.digest);
    await this.updateIndex((index) => {
      const others = index.manifests.filter(
        (d) => refOf(d) !== ref && !(refOf(d) === undefined && d.digest === descriptor.digest),
      );
      const entry: Descriptor = {
        ...descriptor,
        annotations: { ...descriptor.annotations, [Annotation.RefName]: ref },
      };
      return { ...index, manifests: [...others, entry] };
    });
  }

  /** Removes `ref`; true when it existed. The manifest stays until {@link gc} finds it unreferenced. */
  async untag(ref: string): Promise<boolean> {
    let found = false;
    await this.updateIndex((index) => {
      found = index.manifests.some((d) => refOf(d) === ref);
      return { ...index, manifests: index.manifests.filter((d) => refOf(d) !== ref) };
    });
    return found;
  }

  /** The descriptor a ref (or a digest listed in index.json) names, or undefined. */
  async resolve(refOrDigest: string): Promise<Descriptor | undefined> {
    const index = await this.readIndex();
    if (isDigest(refOrDigest)) {
      const listed = index.manifests.find((d) => d.digest === refOrDigest);
      if (listed) return listed;
      if (!(await this.hasBlob(refOrDigest))) return undefined;
      // A digest names a manifest only when its blob is JSON with a manifest or index media type.
      const body = await this.getBlob(refOrDigest);
      let mediaType: unknown;
      try {
        mediaType = (parseJson(body, refOrDigest) as { mediaType?: unknown } | null)?.mediaType;
      } catch {
        return undefined;
      }
      if (mediaType !== MediaType.ImageManifest && mediaType !== MediaType.ImageIndex) return undefined;
      return { mediaType, digest: refOrDigest, size: body.length };
    }
    return index.manifests.find((d) => refOf(d) === refOrDigest);
  }

  /** Every tagged image, sorted by ref. */
  async list(): Promise<TaggedImage[]> {
    const index = await this.readIndex();
    return index.manifests
      .flatMap((descriptor) => {
        const ref = refOf(descriptor);
        return ref === undefined ? [] : [{ ref, descriptor }];
      })
      .sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  }

  /**
   * Attaches an artifact to `subject` (OCI 1.1 referrers): stores the data, the empty config blob,
   * and an image manifest with `artifactType`, `subject` and the data as its one layer, and records
   * that manifest in index.json untagged so the layout keeps it.
   */
  async attach(subject: Descriptor, artifact: ArtifactInput): Promise<Descriptor> {
    checkDigest(subject.digest);
    assertMediaType(artifact.artifactType);
    const layer = await this.putBlob(artifact.data, artifact.mediaType);
    await this.putBlob(EMPTY_JSON_BLOB, MediaType.EmptyJson);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ImageManifest,
      artifactType: artifact.artifactType,
      config: EMPTY_DESCRIPTOR,
      layers: [layer],
      subject: plainDescriptor(subject),
      ...(artifact.annotations !== undefined ? { annotations: { ...artifact.annotations } } : {}),
    };
    const stored = await this.putManifest(manifest);
    return {
      ...stored,
      ...(artifact.annotations !== undefined ? { annotations: { ...artifact.annotations } } : {}),
    };
  }

  /**
   * The manifests in this store whose `subject` is `subjectDigest`, as descriptors with their
   * `artifactType` and annotations (the shape of the registry referrers API), sorted by digest.
   */
  async referrers(subjectDigest: Digest, artifactType?: string): Promise<Descriptor[]> {
    checkDigest(subjectDigest);
    const index = await this.readIndex();
    const seen = new Set<string>();
    const out: Descriptor[] = [];
    for (const d of index.manifests) {
      if (d.mediaType !== MediaType.ImageManifest || seen.has(d.digest)) continue;
      seen.add(d.digest);
      const m = await this.getManifest(d.digest);
      if (m.subject?.digest !== subjectDigest) continue;
      const type = m.artifactType ?? m.config.mediaType;
      if (artifactType !== undefined && type !== artifactType) continue;
      out.push({
        ...plainDescriptor(d),
        artifactType: type,
        ...(m.annotations ? { annotations: m.annotations } : {}),
      });
    }
    return out.sort((a, b) => (a.digest < b.digest ? -1 : 1));
  }

  /**
   * Writes a standalone OCI layout at `destDir` (which must not exist) holding the image `ref`, its
   * blobs and its referrers (recursively), tagged with the ref's tag part (see `tagOf`) or
   * `opts.tag`. It is built in a temp dir beside `destDir` and renamed into place, so it is whole
   * or absent. Readable by `skopeo inspect oci:DIR:TAG` and `umoci unpack --image DIR:TAG`.
   */
  async exportImage(ref: string, destDir: string, opts: { readonly tag?: string } = {}): Promise<Descriptor> {
    return exportLayout(this, (dir) => OciStore.open(dir), ref, destDir, opts);
  }

  /**
   * Removes blobs that nothing in index.json reaches, and untagged referrers whose subject is gone.
   * Blobs younger than `graceMs` are kept, as a writer may be about to reference them.
   */
  async gc(options: GcOptions = {}): Promise<GcResult> {
    let result: GcResult = { removed: [], freedBytes: 0 };
    await this.updateIndex(async (index) => {
      const r = await collectGarbage(this, index, options);
      result = r.result;
      return r.index;
    });
    return result;
  }

  /** Applies `change` to index.json under the in-process queue and the inter-process lock file. */
  private updateIndex(change: (index: ImageIndex) => ImageIndex | Promise<ImageIndex>): Promise<void> {
    return withLockFile(join(this.dir, 'index.json.lock'), this.lockTimeoutMs, async () => {
      const before = await this.readIndex();
      const after = await change(before);
      const sorted = { ...after, manifests: [...after.manifests].sort(compareEntries) };
      const bytes = canonicalJson(sorted);
      const current = await readFile(join(this.dir, 'index.json')).catch(() => undefined);
      if (current === undefined || !current.equals(bytes))
        await writeFileAtomic(join(this.dir, 'index.json'), bytes);
    });
  }
}
