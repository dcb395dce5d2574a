import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildTinyImage } from '../../../test/support/oci-fixtures.js';
import { SBOM_MEDIA_TYPE } from '../../bake/index.js';
import { OciStore } from '../../oci/index.js';
import { imagesJson } from '../images.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('imagesJson', () => {
  it('lists the store’s images with their SBOM packages, and none for an empty store', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-images-'));
    dirs.push(dir);
    const store = await OciStore.open(dir);
    expect(await imagesJson({ store: dir })).toEqual([]);
    const img = await buildTinyImage(store, 'web:1');
    await store.attach(img.descriptor, {
      artifactType: SBOM_MEDIA_TYPE,
      mediaType: SBOM_MEDIA_TYPE,
      data: Buffer.from(
        JSON.stringify({ specVersion: '1.6', components: [{ name: 'libc6', version: '2.36' }] }),
      ),
    });
    const [image, ...rest] = await imagesJson({ store: dir, keys: path.join(dir, 'no-keys') });
    expect(rest).toEqual([]);
    const manifest = await store.getManifest(img.descriptor.digest);
    expect(image).toMatchObject({
      name: 'web:1',
      digest: img.descriptor.digest,
      base: null,
      size: manifest.layers.reduce((n, l) => n + l.size, 0),
      layers: 2,
      sbom: { packages: [{ name: 'libc6', version: '2.36' }] },
      signature: null,
    });
  });
});
