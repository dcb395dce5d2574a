import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '../errors/index.js';
import { MediaType, OciStore } from '../oci/index.js';
import { validateStack } from '../spec/index.js';
import { envSuffix, imageToCopy, pickRegions, regionRepository } from './regions.js';

const stack = validateStack(
  {
    targets: { eu: { driver: 'local' }, us: { driver: 'local' } },
    regions: {
      eu: { target: 'eu', registry: 'registry-eu.example.com/kiln' },
      us: { target: 'us', registry: '127.0.0.1:5000' },
    },
  },
  'kiln.yaml',
);

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function storeWithImage(ref?: string) {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-regions-'));
  dirs.push(dir);
  const store = await OciStore.open(dir);
  const layer = await store.putBlob(Buffer.from('layer'), MediaType.LayerTarGzip);
  const config = await store.putJson({ architecture: 'amd64', os: 'linux' }, MediaType.ImageConfig);
  const image = await store.putManifest(
    { schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers: [layer] },
    ref === undefined ? {} : { ref },
  );
  return { store, image };
}

describe('pickRegions', () => {
  it('keeps the order given', () => {
    expect(pickRegions('us, eu', stack).map((r) => r.name)).toEqual(['us', 'eu']);
  });

  it.each([
    ['ap', /"ap" is not a declared region.*use names from regions: eu, us/s],
    ['eu,eu', /"eu" is named twice/],
    [' , ', /names no region/],
  ])('refuses %j', (list, message) => {
    expect(() => pickRegions(list, stack)).toThrow(ValidationError);
    expect(() => pickRegions(list, stack)).toThrow(message);
  });
});

describe('where images go', () => {
  it('puts image web under the registry prefix', () => {
    expect(regionRepository(stack.regions.eu!, 'web')).toBe('kiln/web');
    expect(regionRepository(stack.regions.us!, 'web')).toBe('web');
    expect(envSuffix('eu-west')).toBe('EU_WEST');
  });
});

describe('imageToCopy from the store', () => {
  it('takes a name, a name with its digest, or a digest the store tags', async () => {
    const { store, image } = await storeWithImage('team/web:1.0');
    for (const arg of ['team/web:1.0', `team/web:1.0@${image.digest}`, image.digest]) {
      const found = await imageToCopy(arg, store);
      expect(found.name).toBe('team/web');
      expect(found.descriptor.digest).toBe(image.digest);
    }
  });

  it('refuses a digest that does not go with the name, and one no name goes with', async () => {
    const tagged = await storeWithImage('web');
    const other = `sha256:${'0'.repeat(64)}`;
    await expect(imageToCopy(`web@${other}`, tagged.store)).rejects.toThrow(/"web" is sha256:.*not sha256:0/);
    const untagged = await storeWithImage();
    await expect(imageToCopy(untagged.image.digest, untagged.store)).rejects.toThrow(
      /its repository is unknown.*NAME@sha256:/s,
    );
    await expect(imageToCopy('nothing', untagged.store)).rejects.toThrow(NotFoundError);
  });
});
