import { randomBytes } from 'node:crypto';
import { chmod, readdir, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, UnavailableError } from '../errors/index.js';
import { startCuttingProxy } from '../../test/support/cutting-proxy.js';
import { requireTools } from '../../test/support/oci-fixtures.js';
import { Cleanup, startRegistry, type RunningRegistry } from '../../test/support/registry.js';
import { OciStore } from './layout.js';
import { RegistryClient } from './registry.js';
import { registrySource, replicateImage, storeSource } from './replicate.js';
import { MediaType, type Descriptor, type ImageManifest } from './types.js';
import { fileJournal, rangeEnd } from './upload.js';

const MiB = 1024 ** 2;
const cleanup = new Cleanup();
let eu: RunningRegistry;
let us: RunningRegistry;

beforeAll(async () => {
  await requireTools('docker-registry', 'skopeo');
  try {
    eu = await startRegistry(cleanup);
    us = await startRegistry(cleanup);
  } catch (err) {
    await cleanup.run();
    throw err;
  }
});
afterAll(async () => {
  await cleanup.run();
});

function client(host: string): RegistryClient {
  const c = new RegistryClient({ registry: host });
  cleanup.add(async () => c.close());
  return c;
}

/** An image with one random layer of `layerBytes`, and a signature-like and an SBOM-like referrer. */
async function imageWithReferrers(
  layerBytes: number,
): Promise<{ store: OciStore; image: Descriptor; layer: Descriptor }> {
  const store = await OciStore.open(await cleanup.tempDir('kiln-replicate-store-'));
  const layer = await store.putBlob(randomBytes(layerBytes), MediaType.LayerTarGzip);
  const config = await store.putJson(
    { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [layer.digest] } },
    MediaType.ImageConfig,
  );
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ImageManifest,
    config,
    layers: [layer],
  };
  const image = await store.putManifest(manifest, { ref: 'web' });
  await store.attach(image, {
    artifactType: 'application/vnd.dev.kiln.signature.v1+json',
    mediaType: 'application/vnd.dev.kiln.signature.v1+json',
    data: Buffer.from('{"payload":"signed"}'),
  });
  await store.attach(image, {
    artifactType: 'application/vnd.cyclonedx+json',
    mediaType: 'application/vnd.cyclonedx+json',
    data: Buffer.from('{"bomFormat":"CycloneDX"}'),
  });
  return { store, image, layer };
}

async function skopeoDigest(ref: string): Promise<string> {
  const { stdout } = await execa('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
  return (JSON.parse(stdout) as { Digest: string }).Digest;
}

/** skopeo pulls every blob of the image and checks each against its digest. */
async function skopeoCopies(ref: string): Promise<void> {
  const dir = await cleanup.tempDir('kiln-skopeo-copy-');
  await execa('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}/layout:web`]);
}

describe('replicateImage between real docker-registry instances', () => {
  it('copies an image and its referrers into two registries with identical digests, and sends nothing twice', async () => {
    const { store, image } = await imageWithReferrers(64 * 1024);
    const first = [];
    for (const host of [eu.host, us.host]) {
      first.push(
        await replicateImage(storeSource(store), image, { client: client(host), repository: 'kiln/web' }),
      );
    }
    for (const r of first) {
      expect(r.digest).toBe(image.digest);
      expect(r.referrers).toHaveLength(2);
      // config, layer, the SBOM's and the signature's data, and the empty config they share (once)
      expect(r.blobs.map((b) => b.how)).toEqual(['uploaded', 'uploaded', 'uploaded', 'uploaded', 'uploaded']);
      // skopeo, an independent client, reads the same digest back, by digest.
      expect(await skopeoDigest(r.reference)).toBe(image.digest);
      const referrers = await client(r.registry).getReferrers('kiln/web', image.digest);
      expect(referrers.map((d) => d.artifactType).sort()).toEqual([
        'application/vnd.cyclonedx+json',
        'application/vnd.dev.kiln.signature.v1+json',
      ]);
    }

    // Again: every blob is found there (HEAD), and not one byte is sent.
    const again = await replicateImage(storeSource(store), image, {
      client: client(eu.host),
      repository: 'kiln/web',
    });
    expect(again.blobs.every((b) => b.how === 'present')).toBe(true);
    expect(again.bytesSent).toBe(0);
  });

  it('resumes a copy cut in the middle of a large blob from the offset the registry holds', async () => {
    // Given a registry behind a proxy that buffers requests (as nginx does) and cuts after 3.5 MiB
    const { store, image, layer } = await imageWithReferrers(6 * MiB);
    const proxy = await startCuttingProxy(cleanup, eu.host, { buffered: true });
    const journalDir = await cleanup.tempDir('kiln-uploads-');
    const target = { client: client(proxy.host), repository: 'kiln/big' };
    const options = { journal: fileJournal(journalDir), chunkSize: MiB };
    proxy.cutAfter(3.5 * MiB);

    // When the copy is cut, it fails saying how to resume, and remembers the upload
    const cut = await replicateImage(storeSource(store), image, target, options).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(UnavailableError);
    expect((cut as Error).message).toMatch(/run the same command again to resume/);
    expect(proxy.cuts).toBe(1);
    expect(await readdir(journalDir)).toHaveLength(1);

    // Then the next copy goes on from the registry's offset (3 whole chunks) and sends only the rest
    const before = proxy.received;
    const resumed = await replicateImage(
      storeSource(store),
      image,
      { ...target, client: client(proxy.host) },
      options,
    );
    const sentAgain = proxy.received - before;
    const big = resumed.blobs.find((b) => b.digest === layer.digest)!;
    expect(big).toMatchObject({ how: 'uploaded', resumedFrom: 3 * MiB, bytesSent: 3 * MiB });
    expect(sentAgain).toBeLessThan(layer.size);
    expect(await readdir(journalDir)).toHaveLength(0);
    // And what the registry holds is the image, as skopeo (which checks every blob) reads it.
    expect(await skopeoDigest(resumed.reference)).toBe(image.digest);
    await skopeoCopies(resumed.reference);
  });

  it('starts a blob afresh, and completes, when the registry discarded the cut upload', async () => {
    // docker-registry 2.8 invalidates an upload whose last PATCH was cut after some bytes reached it
    // (fixed upstream in distribution 3); without a buffering proxy the next try must start again.
    const { store, image, layer } = await imageWithReferrers(3 * MiB);
    const proxy = await startCuttingProxy(cleanup, us.host, { buffered: false });
    const options = { journal: fileJournal(await cleanup.tempDir('kiln-uploads-')), chunkSize: MiB };
    proxy.cutAfter(1.5 * MiB);
    const target = { client: client(proxy.host), repository: 'kiln/streamed' };
    await expect(replicateImage(storeSource(store), image, target, options)).rejects.toThrow(
      UnavailableError,
    );

    const again = await replicateImage(
      storeSource(store),
      image,
      { ...target, client: client(proxy.host) },
      options,
    );
    const big = again.blobs.find((b) => b.digest === layer.digest)!;
    expect(big.restarted).toMatch(/no longer has the upload.*BLOB_UPLOAD/);
    expect(big.bytesSent).toBe(layer.size);
    expect(await skopeoDigest(again.reference)).toBe(image.digest);
  });

  it('copies registry to registry, mounting blobs within one registry', async () => {
    const { store, image } = await imageWithReferrers(256 * 1024);
    await replicateImage(storeSource(store), image, { client: client(eu.host), repository: 'kiln/source' });
    const staging = await OciStore.open(await cleanup.tempDir('kiln-staging-'));
    const source = registrySource(client(eu.host), 'kiln/source', staging);

    const mounted = await replicateImage(source, image, { client: client(eu.host), repository: 'other/web' });
    expect(mounted.blobs.every((b) => b.how === 'mounted')).toBe(true);
    expect(mounted.referrers).toHaveLength(2);

    const across = await replicateImage(source, image, {
      client: client(us.host),
      repository: 'kiln/from-eu',
    });
    expect(across.blobs.every((b) => b.how === 'uploaded')).toBe(true);
    expect(await skopeoDigest(across.reference)).toBe(image.digest);
    expect(await skopeoDigest(mounted.reference)).toBe(image.digest);
  });

  it('sends nothing of a blob whose file does not hash to its digest', async () => {
    const { store, image, layer } = await imageWithReferrers(128 * 1024);
    const file = store.blobPath(layer.digest);
    await chmod(file, 0o644);
    await writeFile(file, randomBytes(layer.size));
    const c = client(us.host);
    const err = await replicateImage(storeSource(store), image, {
      client: c,
      repository: 'kiln/damaged',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(new RegExp(`${layer.digest}.*not sending it`));
    expect(await c.hasBlob('kiln/damaged', layer.digest)).toBe(false);
  });
});

describe('rangeEnd', () => {
  it.each([
    ['0-1048575', 1048576],
    ['bytes=0-99', 100],
    ['0-0', 0],
    [undefined, undefined],
    ['5-10', undefined],
    ['junk', undefined],
  ])('%s → %s', (range, offset) => {
    expect(rangeEnd(range)).toBe(offset);
  });
});
