import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTinyImage } from '../../test/support/oci-fixtures.js';
import { IntegrityError } from '../errors/index.js';
import { digestHex, OciStore, type Descriptor } from '../oci/index.js';
import { ensureRootfs } from './image-rootfs.js';

let dir: string;
let store: OciStore;
let image: Descriptor;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-rootfs-integrity-'));
  store = await OciStore.open(join(dir, 'store'));
  image = (await buildTinyImage(store, 'app:1')).descriptor;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ensureRootfs', () => {
  it('refuses to unpack an image whose layer blob has one flipped byte, naming the blob, and leaves no root', async () => {
    // Given an image whose second layer has one byte flipped on disk
    const layer = (await store.getManifest(image.digest)).layers[1]!;
    const file = store.blobPath(layer.digest);
    const data = await readFile(file);
    data[data.length - 1] = data[data.length - 1]! ^ 1;
    await chmod(file, 0o644);
    await writeFile(file, data);

    // When its root filesystem is asked for
    const rootfsDir = join(dir, 'rootfs');
    const err = await ensureRootfs(store, image.digest, rootfsDir).catch((e: unknown) => e as Error);

    // Then it is refused as an integrity failure naming the blob, and no root (or part of one) is left
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain(`digest mismatch: expected ${layer.digest}`);
    const left = await readdir(rootfsDir).catch(() => []);
    expect(left.filter((n) => n.startsWith(digestHex(image.digest)))).toEqual([]);
  });
});
