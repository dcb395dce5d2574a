import { chmod, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTinyImage } from '../../test/support/oci-fixtures.js';
import { IntegrityError, NotFoundError } from '../errors/index.js';
import { BlobChecker, hasIntactBlob } from './blob-check.js';
import { OciStore } from './layout.js';
import type { Descriptor } from './types.js';

let dir: string;
let store: OciStore;
let layer: Descriptor;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-blobcheck-'));
  store = await OciStore.open(dir);
  const image = await buildTinyImage(store, 'app:1');
  layer = (await store.getManifest(image.descriptor.digest)).layers[0]!;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Rewrites the blob with one byte flipped, keeping its size, then sets its mtime back as it was. */
async function flipByteKeepingMtime(d: Descriptor): Promise<void> {
  const file = store.blobPath(d.digest);
  const before = await stat(file);
  await chmod(file, 0o644);
  const data = await store.getBlob(d.digest);
  data[10] = data[10]! ^ 0x40;
  await writeFile(file, data);
  await utimes(file, before.atime, before.mtime);
}

/** A checker that treats every file as changed long ago, so it remembers at once. */
const eager = () => new BlobChecker({ racyMarginMs: 0, clock: () => Date.now() + 1000 });

describe('BlobChecker', () => {
  it('passes an intact blob and refuses one flipped byte, naming the blob and its file', async () => {
    const checker = new BlobChecker();
    expect(await checker.check(store, layer, 'layer 1')).toEqual({ hashed: true, bytes: layer.size });
    await flipByteKeepingMtime(layer);
    const err = await checker.check(store, layer, 'layer 1').catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain(
      `layer 1: blob ${layer.digest} (${store.blobPath(layer.digest)})`,
    );
    expect((err as Error).message).toMatch(
      /does not match its digest \(its content hashes to sha256:[0-9a-f]{64}\)/,
    );
  });

  it('remembers an intact file, and hashes it again after any write, even one that restores the mtime', async () => {
    const checker = eager();
    expect((await checker.check(store, layer, 'l')).hashed).toBe(true);
    expect((await checker.check(store, layer, 'l')).hashed).toBe(false);
    // File times tick coarsely; the margin this checker was told to skip exists for that reason.
    await sleep(50);
    await flipByteKeepingMtime(layer);
    await expect(checker.check(store, layer, 'l')).rejects.toThrow(IntegrityError);
    // Refused files are never remembered: refused again, not skipped.
    await expect(checker.check(store, layer, 'l')).rejects.toThrow(IntegrityError);
  });

  it('does not remember a file changed within the racy margin before its check', async () => {
    const checker = new BlobChecker({ racyMarginMs: 60_000 });
    expect((await checker.check(store, layer, 'l')).hashed).toBe(true);
    expect((await checker.check(store, layer, 'l')).hashed).toBe(true);
    const never = new BlobChecker({ remember: false, racyMarginMs: 0, clock: () => Date.now() + 1000 });
    await never.check(store, layer, 'l');
    expect((await never.check(store, layer, 'l')).hashed).toBe(true);
  });

  it('refuses a blob of another size before reading it, and says when one is missing', async () => {
    const err = await eager()
      .check(store, { ...layer, size: layer.size + 1 }, 'layer 1')
      .catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain(`is ${layer.size} bytes, the manifest says ${layer.size + 1}`);
    await rm(store.blobPath(layer.digest));
    await expect(eager().check(store, layer, 'layer 1')).rejects.toThrow(NotFoundError);
  });

  it('hasIntactBlob: true when intact, false when damaged or missing', async () => {
    expect(await hasIntactBlob(store, layer)).toBe(true);
    await flipByteKeepingMtime(layer);
    expect(await hasIntactBlob(store, layer)).toBe(false);
    await rm(store.blobPath(layer.digest));
    expect(await hasIntactBlob(store, layer)).toBe(false);
  });
});
