import { randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IntegrityError,
  KilnError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../errors/index.js';
import { canonicalJson, sha256Digest } from './digest.js';
import { OciStore } from './layout.js';
import { fallbackTag } from './registry-api.js';
import { RegistryClient } from './registry.js';
import {
  Cleanup,
  makeCertificate,
  startAuthProxy,
  startRegistry,
  type RunningRegistry,
} from '../../test/support/registry.js';
import { buildTinyImage, requireTools } from '../../test/support/oci-fixtures.js';
import { MediaType, type ImageIndex } from './types.js';
import { unpackLayers } from './unpack.js';

const cleanup = new Cleanup();
const creds = { username: 'kiln', password: 's3cret-pass' };
let registry: RunningRegistry;
let tlsRegistry: RunningRegistry;
let cert: { cert: string; key: string; dir: string };

beforeAll(async () => {
  await requireTools('docker-registry', 'skopeo', 'openssl');
  try {
    registry = await startRegistry(cleanup);
    cert = await makeCertificate(cleanup);
    tlsRegistry = await startRegistry(cleanup, cert);
  } catch (err) {
    await cleanup.run();
    throw err;
  }
});
afterAll(async () => {
  await cleanup.run();
});

async function skopeoInspect(ref: string, ...flags: string[]): Promise<{ Digest: string; Layers: string[] }> {
  const { stdout } = await execa('skopeo', ['inspect', ...flags, `docker://${ref}`]);
  return JSON.parse(stdout) as { Digest: string; Layers: string[] };
}

async function storeWithImage(ref: string, marker: string) {
  const store = await OciStore.open(await cleanup.tempDir('kiln-reg-store-'));
  const image = await buildTinyImage(store, ref, marker);
  return { store, image };
}

function client(
  host: string,
  extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {},
): RegistryClient {
  const c = new RegistryClient({ registry: host, ...extra });
  cleanup.add(async () => c.close());
  return c;
}

describe('RegistryClient against the real docker-registry', () => {
  it('pushes an image with referrers that skopeo reads, and pulls it back', async () => {
    const { store, image } = await storeWithImage('app:1.0', 'pushed over http');
    const sbom = await store.attach(image.descriptor, {
      artifactType: 'application/spdx+json',
      mediaType: 'application/spdx+json',
      data: Buffer.from('{"spdxVersion":"SPDX-2.3"}'),
    });
    const c = client(registry.host);
    const pushed = await c.pushImage(
      store,
      'app:1.0',
      { repository: 'team/app', tag: '1.0' },
      { referrers: true },
    );
    expect(pushed.descriptor.digest).toBe(image.descriptor.digest);
    expect(pushed.referrers.map((r) => r.digest)).toEqual([sbom.digest]);
    // Debian's docker-registry (distribution 2.8) has no referrers API and answers no OCI-Subject,
    // so the client must list the SBOM under the fallback tag sha256-<hex>.
    expect(pushed.fallbackTags).toEqual([fallbackTag(image.descriptor.digest)]);
    expect((await c.baseUrl()).protocol).toBe('http:');

    const inspected = await skopeoInspect(`${registry.host}/team/app:1.0`, '--tls-verify=false');
    expect(inspected.Digest).toBe(image.descriptor.digest);
    expect(inspected.Layers).toEqual(
      (await store.getManifest(image.descriptor.digest)).layers.map((l) => l.digest),
    );
    const { stdout: raw } = await execa('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${registry.host}/team/app:${fallbackTag(image.descriptor.digest)}`,
    ]);
    const fallback = JSON.parse(raw) as ImageIndex;
    expect(fallback.mediaType).toBe(MediaType.ImageIndex);
    expect(fallback.manifests).toMatchObject([
      { digest: sbom.digest, artifactType: 'application/spdx+json' },
    ]);

    const fresh = await OciStore.open(await cleanup.tempDir('kiln-pulled-'));
    const pulled = await c.pullImage({ repository: 'team/app', tag: '1.0' }, fresh, 'app:pulled', {
      referrers: true,
    });
    expect(pulled.descriptor.digest).toBe(image.descriptor.digest);
    expect(pulled.referrers.map((r) => r.digest)).toEqual([sbom.digest]);
    expect((await fresh.resolve('app:pulled'))?.digest).toBe(image.descriptor.digest);
    expect((await fresh.referrers(image.descriptor.digest)).map((r) => r.digest)).toEqual([sbom.digest]);
    const manifest = await fresh.getManifest(image.descriptor.digest);
    const layers = await Promise.all(manifest.layers.map((l) => fresh.getBlob(l.digest)));
    const rootfs = join(await cleanup.tempDir('kiln-pulled-rootfs-'), 'rootfs');
    await unpackLayers(layers, rootfs);
    expect(await readFile(join(rootfs, 'etc/motd'), 'utf8')).toBe('pushed over http\n');

    // A second push finds every blob present and uploads nothing.
    const again = await c.pushBlob('team/app', layers[0]!, manifest.layers[0]!.digest);
    expect(again).toEqual({ digest: manifest.layers[0]!.digest, uploaded: false, mounted: false });
  });

  it('uploads large blobs in chunks, from bytes and from a file, and mounts across repositories', async () => {
    const c = client(registry.host, { chunkSize: 4096 });
    const data = randomBytes(4096 * 3 + 123);
    const digest = sha256Digest(data);
    expect(await c.pushBlob('chunks/a', data, digest)).toMatchObject({ uploaded: true });
    expect((await c.getBlob('chunks/a', digest)).equals(data)).toBe(true);

    const fileData = randomBytes(10_000);
    const file = join(await cleanup.tempDir('kiln-blob-'), 'blob');
    await writeFile(file, fileData);
    expect(await c.pushBlob('chunks/b', file, sha256Digest(fileData))).toMatchObject({ uploaded: true });
    expect((await c.getBlob('chunks/b', sha256Digest(fileData))).equals(fileData)).toBe(true);

    expect(await c.pushBlob('chunks/c', data, digest, { mountFrom: 'chunks/a' })).toEqual({
      digest,
      uploaded: false,
      mounted: true,
    });
    expect(await c.hasBlob('chunks/c', digest)).toBe(true);
    await expect(c.pushBlob('chunks/a', data, sha256Digest('other'))).rejects.toBeInstanceOf(IntegrityError);
  });

  it('verifies what it downloads', async () => {
    const { store, image } = await storeWithImage('app:1', 'tamper');
    await client(registry.host).pushImage(store, 'app:1', { repository: 'tamper/app', tag: '1' });
    const manifest = await store.getManifest(image.descriptor.digest);
    // A fetch that alters blob bodies and manifests on the way, as a broken proxy or cache might.
    const tampering: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const url = String(input);
      if (!url.includes('/blobs/sha256') && !url.includes('/manifests/')) return res;
      const body = Buffer.from(await res.arrayBuffer());
      if (body.length > 0) body.writeUInt8(body.readUInt8(body.length - 1) ^ 1, body.length - 1);
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const c = client(registry.host, { fetch: tampering, plainHttp: true });
    await expect(c.getBlob('tamper/app', manifest.layers[0]!.digest)).rejects.toThrow(/digest mismatch/);
    await expect(c.getManifest('tamper/app', image.descriptor.digest)).rejects.toBeInstanceOf(IntegrityError);
    const honest = client(registry.host, { fetch, plainHttp: true });
    expect((await honest.getManifest('tamper/app', '1')).digest).toBe(image.descriptor.digest);
  });

  it('refuses a pull whose blob the registry serves altered, repairs a damaged local blob, and refuses to push one', async () => {
    const { store, image } = await storeWithImage('app:1', 'integrity');
    await client(registry.host).pushImage(store, 'app:1', { repository: 'integrity/app', tag: '1' });
    const layer = (await store.getManifest(image.descriptor.digest)).layers[1]!;
    // A registry (or a cache before it) that serves one layer with its last byte flipped.
    const wrongLayer: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!String(input).endsWith(`/blobs/${layer.digest}`) || res.status !== 200) return res;
      const body = Buffer.from(await res.arrayBuffer());
      body[body.length - 1] = body[body.length - 1]! ^ 1;
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const fresh = await OciStore.open(await cleanup.tempDir('kiln-pull-wrong-'));
    const refused = await client(registry.host, { fetch: wrongLayer, plainHttp: true })
      .pullImage({ repository: 'integrity/app', tag: '1' }, fresh, 'app:1')
      .catch((e: unknown) => e as Error);
    expect(refused).toBeInstanceOf(IntegrityError);
    expect((refused as Error).message).toContain(`blob ${layer.digest} from ${registry.host}/integrity/app`);
    expect((refused as Error).message).toContain('digest mismatch');
    expect(await fresh.resolve('app:1')).toBeUndefined();
    expect(await fresh.hasBlob(layer.digest)).toBe(false);

    // A blob damaged in the local store is fetched again by a pull, which repairs it.
    const damaged = await client(registry.host).pullImage(
      { repository: 'integrity/app', tag: '1' },
      fresh,
      'app:1',
    );
    expect(damaged.descriptor.digest).toBe(image.descriptor.digest);
    const file = fresh.blobPath(layer.digest);
    const bytes = await readFile(file);
    bytes[0] = bytes[0]! ^ 1;
    await chmod(file, 0o644);
    await writeFile(file, bytes);
    await client(registry.host).pullImage({ repository: 'integrity/app', tag: '1' }, fresh, 'app:1');
    expect(sha256Digest(await fresh.getBlob(layer.digest))).toBe(layer.digest);

    // A push reads every blob it sends through the store, which refuses a damaged one.
    await chmod(file, 0o644);
    await writeFile(file, bytes);
    const pushRefused = await client(registry.host)
      .pushImage(fresh, 'app:1', { repository: 'integrity/other', tag: '1' })
      .catch((e: unknown) => e as Error);
    expect(pushRefused).toBeInstanceOf(IntegrityError);
    expect((pushRefused as Error).message).toContain(`digest mismatch: expected ${layer.digest}`);
    expect(await client(registry.host).hasBlob('integrity/other', layer.digest)).toBe(false);
    await expect(client(registry.host).getManifest('integrity/other', '1')).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('reports registry errors with their message, and unreachable registries by URL', async () => {
    const c = client(registry.host);
    const missing = await c.getManifest('team/app', 'no-such-tag').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as Error).message).toMatch(
      /GET \/v2\/team\/app\/manifests\/no-such-tag: HTTP 404: MANIFEST_UNKNOWN/,
    );
    const body = canonicalJson({
      schemaVersion: 2,
      mediaType: MediaType.ImageManifest,
      config: { mediaType: MediaType.ImageConfig, digest: sha256Digest('absent'), size: 6 },
      layers: [],
    });
    const invalid = await c
      .pushManifest('team/app', 'broken', body, MediaType.ImageManifest)
      .catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(KilnError);
    expect((invalid as Error).message).toMatch(
      /PUT \/v2\/team\/app\/manifests\/broken: HTTP 400: MANIFEST_BLOB_UNKNOWN/,
    );

    const closedPort = registry.host.replace(/:\d+$/, ':9');
    const down = await client(closedPort)
      .hasBlob('x/y', sha256Digest('x'))
      .catch((e: unknown) => e);
    expect(down).toBeInstanceOf(UnavailableError);
    expect((down as Error).message).toMatch(
      /cannot reach registry 127\.0\.0\.1:9 over HTTPS .*ECONNREFUSED.* or HTTP .*ECONNREFUSED/,
    );
    expect(() => new RegistryClient({ registry: 'registry.example.com', plainHttp: true })).toThrow(
      ValidationError,
    );
  });
});

describe('RegistryClient auth', () => {
  it('answers a Basic challenge with the credentials, and says what is wrong without them', async () => {
    const proxy = await startAuthProxy(cleanup, registry.host, 'basic', creds);
    const { store, image } = await storeWithImage('app:basic', 'basic');
    const c = client(proxy.host, creds);
    await c.pushImage(store, 'app:basic', { repository: 'auth/basic', tag: 'v1' });
    expect((await skopeoInspect(`${registry.host}/auth/basic:v1`, '--tls-verify=false')).Digest).toBe(
      image.descriptor.digest,
    );
    expect(proxy.forwarded).toBeGreaterThan(0);

    await expect(client(proxy.host).getManifest('auth/basic', 'v1')).rejects.toThrow(
      /requires credentials \(401\); pass username and password/,
    );
    await expect(
      client(proxy.host, { ...creds, password: 'wrong' }).getManifest('auth/basic', 'v1'),
    ).rejects.toThrow(/refused the username\/password/);
  });

  it('fetches Bearer tokens from the realm with the credentials, per scope, and caches them', async () => {
    const proxy = await startAuthProxy(cleanup, registry.host, 'bearer', creds);
    const { store, image } = await storeWithImage('app:bearer', 'bearer');
    const c = client(proxy.host, creds);
    await c.pushImage(store, 'app:bearer', { repository: 'auth/bearer', tag: 'v1' });
    const fresh = await OciStore.open(await cleanup.tempDir('kiln-bearer-pull-'));
    await c.pullImage({ repository: 'auth/bearer', tag: 'v1' }, fresh, 'app:back');
    expect((await fresh.resolve('app:back'))?.digest).toBe(image.descriptor.digest);

    expect(proxy.tokenRequests.every((t) => t.authorized && t.service === 'kiln-test')).toBe(true);
    const scopes = proxy.tokenRequests.map((t) => t.scope.join(' '));
    expect(new Set(scopes)).toEqual(
      new Set(['repository:auth/bearer:pull', 'repository:auth/bearer:pull,push']),
    );
    // Dozens of requests, a token per scope: the cache works.
    expect(proxy.forwarded).toBeGreaterThan(10);
    expect(proxy.tokenRequests.length).toBeLessThanOrEqual(2);

    await expect(
      client(proxy.host, { ...creds, password: 'wrong' }).getManifest('auth/bearer', 'v1'),
    ).rejects.toThrow(
      /token service http:\/\/127\.0\.0\.1:\d+\/token refused a token for "repository:auth\/bearer:pull" \(HTTP 401\)/,
    );
  });
});

describe('RegistryClient over TLS', () => {
  it('trusts a registry certificate given as ca, and never falls back to HTTP on a bad certificate', async () => {
    const { store, image } = await storeWithImage('app:tls', 'tls');
    const c = client(tlsRegistry.host, { ca: await readFile(cert.cert) });
    await c.pushImage(store, 'app:tls', { repository: 'secure/app', tag: '1' });
    expect((await c.baseUrl()).protocol).toBe('https:');
    expect((await skopeoInspect(`${tlsRegistry.host}/secure/app:1`, '--cert-dir', cert.dir)).Digest).toBe(
      image.descriptor.digest,
    );

    const untrusted = await client(tlsRegistry.host)
      .hasBlob('secure/app', image.descriptor.digest)
      .catch((e: unknown) => e);
    expect(untrusted).toBeInstanceOf(UnavailableError);
    expect((untrusted as Error).message).toMatch(
      /TLS certificate of https:\/\/127\.0\.0\.1:\d+\/ is not trusted .*pass the registry's CA certificate as `ca`/,
    );
  });
});
