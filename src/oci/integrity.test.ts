import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTinyImage } from '../../test/support/oci-fixtures.js';
import { IntegrityError } from '../errors/index.js';
import { sha256Digest } from './digest.js';
import { OciStore } from './layout.js';
import type { Descriptor } from './types.js';
import { unpackLayers } from './unpack.js';

/** A blob whose digest does not match is refused wherever the store's blobs are read. */
let dir: string;
let store: OciStore;
let image: { descriptor: Descriptor; layers: Buffer[] };
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-integrity-'));
  store = await OciStore.open(join(dir, 'store'));
  image = await buildTinyImage(store, 'app:1');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function flipByte(digest: Descriptor['digest'], at = 0): Promise<void> {
  const file = store.blobPath(digest);
  const data = await readFile(file);
  data[at] = data[at]! ^ 1;
  await chmod(file, 0o644);
  await writeFile(file, data);
}

describe('a damaged blob is refused where it is read', () => {
  it('on export: nothing is written at the destination', async () => {
    const layer = (await store.getManifest(image.descriptor.digest)).layers[1]!;
    await flipByte(layer.digest, 20);
    const dest = join(dir, 'out');
    const err = await store.exportImage('app:1', dest).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain(`digest mismatch: expected ${layer.digest}`);
    expect(await readdir(dir)).toEqual(['store']);
  });

  it('on unpack, given the layers digests: refused before anything of the layer is applied', async () => {
    const digests = (await store.getManifest(image.descriptor.digest)).layers.map((l) => l.digest);
    const damaged = [image.layers[0]!, Buffer.from(image.layers[1]!)];
    damaged[1]![30] = damaged[1]![30]! ^ 1;
    const dest = join(dir, 'rootfs');
    const err = await unpackLayers(damaged, dest, { digests }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toBe(
      `unpacking layer 1: its content hashes to ${sha256Digest(damaged[1]!)}, not its digest ${digests[1]}; the layer is damaged or was tampered with`,
    );
    expect(await readdir(dir)).toEqual(['store']);
    await expect(unpackLayers(image.layers, dest, { digests: digests.slice(1) })).rejects.toThrow(
      /2 layers were given with 1 digests/,
    );

    // And intact layers with their digests unpack as ever
    await unpackLayers(image.layers, dest, { digests });
    expect(await readFile(join(dest, 'etc/motd'), 'utf8')).toBe('hello from kiln\n');
  });
});
