import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { buildLayer, type Descriptor, type Digest, type LayerEntry, type OciStore } from '../oci/index.js';

/** Bumped whenever the way kiln builds a layer changes, so old cache entries are not reused. */
export const LAYER_FORMAT_VERSION = 2;

/** A layer in the store, as the cache remembers it. */
export interface CachedLayer {
  readonly descriptor: Descriptor;
  readonly diffId: Digest;
  readonly uncompressedSize: number;
  /** True when it came from the cache rather than being built now. */
  readonly cached: boolean;
}

const entrySchema = z.object({
  descriptor: z.object({ mediaType: z.string(), digest: z.string(), size: z.number() }),
  diffId: z.string(),
  uncompressedSize: z.number(),
});

/**
 * Layers cached by a key over their inputs: `<cache>/layers/<key hex>.json` names a blob in the
 * store. A hit is only trusted while the blob is still in the store.
 */
export class LayerCache {
  constructor(
    private readonly dir: string,
    private readonly store: OciStore,
  ) {}

  /** Returns the cached layer for `key`, or builds it from `entries()` with `mtime`, stores it, and remembers it. */
  async getOrBuild(
    key: Digest,
    mtime: number,
    entries: () => Promise<readonly LayerEntry[]>,
  ): Promise<CachedLayer> {
    const hit = await this.lookup(key);
    if (hit) return hit;
    const built = await buildLayer(await entries(), { mtime });
    await this.store.putBlob(built.blob, built.descriptor.mediaType);
    const record = {
      descriptor: built.descriptor,
      diffId: built.diffId,
      uncompressedSize: built.uncompressedSize,
    };
    await this.remember(key, record);
    return { ...record, cached: false };
  }

  /** The cached layer for `key`, if it and its blob are still there. */
  async lookup(key: Digest): Promise<CachedLayer | undefined> {
    const file = this.file(key);
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    const parsed = entrySchema.safeParse(JSON.parse(text));
    if (!parsed.success) return undefined;
    const record = parsed.data as unknown as Omit<CachedLayer, 'cached'>;
    if (!(await this.store.hasBlob(record.descriptor.digest))) return undefined;
    return { ...record, cached: true };
  }

  private async remember(key: Digest, record: Omit<CachedLayer, 'cached'>): Promise<void> {
    const file = this.file(key);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(record));
    await rename(tmp, file);
  }

  private file(key: Digest): string {
    return path.join(this.dir, 'layers', `${key.slice('sha256:'.length)}.json`);
  }
}
