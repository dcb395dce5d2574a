/**
 * Garbage collection for the OCI layout store: mark what index.json reaches, sweep the rest.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest } from './digest.js';
import { assertImageIndex, parseJson, refOf } from './refs.js';
import { MediaType, type Descriptor, type Digest, type ImageIndex, type ImageManifest } from './types.js';

/** The part of the store that collection reads (kept narrow so the store and this file do not import each other). */
interface GcStore {
  readonly dir: string;
  hasBlob(digest: Digest): Promise<boolean>;
  getBlob(digest: Digest): Promise<Buffer>;
  getManifest(digest: Digest): Promise<ImageManifest>;
}

/** Blobs younger than this are never collected: a writer may be about to reference them. */
export const DEFAULT_GC_GRACE_MS = 10 * 60 * 1000;

/** Options for `OciStore.gc`. */
export interface GcOptions {
  /** @default DEFAULT_GC_GRACE_MS */
  readonly graceMs?: number;
}

/** What a collection removed. */
export interface GcResult {
  readonly removed: readonly Digest[];
  readonly freedBytes: number;
}

/**
 * Computes the index without orphaned referrers and removes unreachable blobs and stale temp files.
 * Runs under the store's index lock (the caller holds it).
 */
export async function collectGarbage(
  store: GcStore,
  index: ImageIndex,
  options: GcOptions,
): Promise<{ index: ImageIndex; result: GcResult }> {
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const subjects = new Map<string, Digest | undefined>();
  for (const d of index.manifests) {
    if (d.mediaType === MediaType.ImageManifest && (await store.hasBlob(d.digest))) {
      subjects.set(d.digest, (await store.getManifest(d.digest)).subject?.digest);
    }
  }
  // An untagged referrer lives only as long as its subject: drop those whose subject is gone,
  // repeating so that a signature on a dropped SBOM goes too.
  let manifests = [...index.manifests];
  for (;;) {
    const listed = new Set(manifests.map((d) => d.digest));
    const kept = manifests.filter((d) => {
      const subject = subjects.get(d.digest);
      return refOf(d) !== undefined || subject === undefined || listed.has(subject);
    });
    if (kept.length === manifests.length) break;
    manifests = kept;
  }

  const reachable = new Set<string>();
  const mark = async (d: Descriptor): Promise<void> => {
    if (reachable.has(d.digest)) return;
    reachable.add(d.digest);
    if (!(await store.hasBlob(d.digest))) return;
    if (d.mediaType === MediaType.ImageManifest) {
      const m = await store.getManifest(d.digest);
      for (const blob of [m.config, ...m.layers]) reachable.add(blob.digest);
    } else if (d.mediaType === MediaType.ImageIndex) {
      const child = parseJson(await store.getBlob(d.digest), `image index ${d.digest}`);
      assertImageIndex(child, `image index ${d.digest}`);
      for (const c of child.manifests) await mark(c);
    }
  };
  for (const d of manifests) await mark(d);

  const dir = join(store.dir, 'blobs', 'sha256');
  const removed: Digest[] = [];
  let freedBytes = 0;
  const now = Date.now();
  for (const name of await readdir(dir)) {
    const digest = `sha256:${name}`;
    if (isDigest(digest) && reachable.has(digest)) continue;
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (st === undefined || now - st.mtimeMs < graceMs) continue;
    await rm(path, { force: true, recursive: true });
    freedBytes += st.size;
    if (isDigest(digest)) removed.push(digest);
  }
  return { index: { ...index, manifests }, result: { removed: removed.sort(), freedBytes } };
}
