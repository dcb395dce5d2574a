/**
 * Pushing to the registry over a real API server and a temp store: monolithic and chunked
 * uploads, their status and cancelling, mounts and manifests; what is refused (a digest that does
 * not match, a chunk out of order or past any size, a manifest naming a blob the store lacks)
 * stores nothing; what is done is in the audit log.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalJson, EMPTY_DESCRIPTOR, MediaType, sha256Digest, UPLOADS_DIR } from '../oci/index.js';
import { raw, registryFixture } from '../../test/support/kiln-registry.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

const octets = { 'content-type': 'application/octet-stream' };
const sessions = async (store: { dir: string }) => readdir(join(store.dir, UPLOADS_DIR)).catch(() => []);

describe('pushing blobs', () => {
  it('stores a monolithic upload that hashes to its digest, and nothing when it does not', async () => {
    const { api, deploy, store } = await registryFixture(undo);
    const blob = Buffer.from('a blob pushed in one request');
    const digest = sha256Digest(blob);
    const wrong = await raw(api.url, 'POST', `/v2/app/blobs/uploads/?digest=${sha256Digest('other')}`, {
      token: deploy,
      body: blob,
      headers: octets,
    });
    expect([wrong.status, wrong.code()]).toEqual([400, 'DIGEST_INVALID']);
    expect(await store.hasBlob(digest)).toBe(false);
    expect(await store.hasBlob(sha256Digest('other'))).toBe(false);
    const res = await raw(api.url, 'POST', `/v2/app/blobs/uploads/?digest=${digest}`, {
      token: deploy,
      body: blob,
      headers: octets,
    });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/v2/app/blobs/${digest}`);
    expect(res.headers['docker-content-digest']).toBe(digest);
    expect((await store.getBlob(digest)).equals(blob)).toBe(true);
    expect(await sessions(store)).toEqual([]);
  });

  it('takes chunks in order, tells where a session stands, and refuses one out of order or past any size', async () => {
    const { api, deploy, store } = await registryFixture(undo);
    const blob = Buffer.from('0123456789abcdefghij');
    const digest = sha256Digest(blob);
    const started = await raw(api.url, 'POST', '/v2/team/app/blobs/uploads/', { token: deploy });
    expect(started.status).toBe(202);
    const location = started.headers.location!;
    expect(location).toMatch(/^\/v2\/team\/app\/blobs\/uploads\/[0-9a-f-]{36}$/);
    const patch = (range: string, body: Buffer) =>
      raw(api.url, 'PATCH', location, {
        token: deploy,
        body,
        headers: { ...octets, 'content-range': range },
      });
    const first = await patch('0-9', blob.subarray(0, 10));
    expect([first.status, first.headers.range, first.headers.location]).toEqual([202, '0-9', location]);
    const status = await raw(api.url, 'GET', location, { token: deploy });
    expect([status.status, status.headers.range]).toEqual([204, '0-9']);
    const outOfOrder = await patch('15-19', blob.subarray(15));
    expect([outOfOrder.status, outOfOrder.code(), outOfOrder.headers.range]).toEqual([
      416,
      'BLOB_UPLOAD_INVALID',
      '0-9',
    ]);
    const huge = await patch(`10-${2 ** 50}`, blob.subarray(10));
    expect([huge.status, huge.code()]).toEqual([416, 'BLOB_UPLOAD_INVALID']);
    const nonsense = await patch('10-99999999999999999999', blob.subarray(10));
    expect([nonsense.status, nonsense.code()]).toEqual([400, 'BLOB_UPLOAD_INVALID']);
    const mismatched = await patch('10-11', blob.subarray(10));
    expect([mismatched.status, mismatched.code()]).toEqual([400, 'SIZE_INVALID']);
    // The session is still whole after every refusal: the last chunk comes with the closing PUT.
    const done = await raw(api.url, 'PUT', `${location}?digest=${digest}`, {
      token: deploy,
      body: blob.subarray(10),
      headers: { ...octets, 'content-range': '10-19' },
    });
    expect(done.status).toBe(201);
    expect((await store.getBlob(digest)).equals(blob)).toBe(true);
    expect(await sessions(store)).toEqual([]);
    const gone = await raw(api.url, 'GET', location, { token: deploy });
    expect([gone.status, gone.code()]).toEqual([404, 'BLOB_UPLOAD_UNKNOWN']);
  });

  it('refuses to close a session whose bytes hash to another digest, storing nothing', async () => {
    const { api, deploy, store, tokens } = await registryFixture(undo);
    const started = await raw(api.url, 'POST', '/v2/app/blobs/uploads/', { token: deploy });
    const location = started.headers.location!;
    await raw(api.url, 'PATCH', location, { token: deploy, body: 'evil bytes', headers: octets });
    const claimed = sha256Digest('good bytes');
    const res = await raw(api.url, 'PUT', `${location}?digest=${claimed}`, { token: deploy });
    expect([res.status, res.code()]).toEqual([400, 'DIGEST_INVALID']);
    expect(await store.hasBlob(claimed)).toBe(false);
    expect(await store.hasBlob(sha256Digest('evil bytes'))).toBe(false);
    expect(await sessions(store)).toEqual([]);
    const noDigest = await raw(api.url, 'POST', '/v2/app/blobs/uploads/', { token: tokens.admin });
    const bad = await raw(api.url, 'PUT', `${noDigest.headers.location!}?digest=md5:abc`, { token: deploy });
    expect([bad.status, bad.code()]).toEqual([400, 'DIGEST_INVALID']);
  });

  it('cancels a session, and mounts a blob the store holds into any repository', async () => {
    const { api, deploy, store, image } = await registryFixture(undo);
    const started = await raw(api.url, 'POST', '/v2/app/blobs/uploads/', { token: deploy });
    await raw(api.url, 'PATCH', started.headers.location!, {
      token: deploy,
      body: 'partial',
      headers: octets,
    });
    expect(await sessions(store)).toHaveLength(1);
    const cancelled = await raw(api.url, 'DELETE', started.headers.location!, { token: deploy });
    expect(cancelled.status).toBe(204);
    expect(await sessions(store)).toEqual([]);
    expect((await raw(api.url, 'DELETE', started.headers.location!, { token: deploy })).status).toBe(404);
    const layer = (await store.getManifest(image.descriptor.digest)).layers[0]!.digest;
    const mounted = await raw(api.url, 'POST', `/v2/other/blobs/uploads/?mount=${layer}&from=web`, {
      token: deploy,
    });
    expect([mounted.status, mounted.headers.location]).toEqual([201, `/v2/other/blobs/${layer}`]);
    const absent = sha256Digest('not here');
    const fallback = await raw(api.url, 'POST', `/v2/other/blobs/uploads/?mount=${absent}&from=web`, {
      token: deploy,
    });
    expect(fallback.status).toBe(202);
    expect(fallback.headers.location).toMatch(/^\/v2\/other\/blobs\/uploads\//);
  });
});

describe('pushing manifests', () => {
  async function pushBlob(url: string, token: string, data: Buffer) {
    const digest = sha256Digest(data);
    const res = await raw(url, 'POST', `/v2/app/blobs/uploads/?digest=${digest}`, {
      token,
      body: data,
      headers: octets,
    });
    expect(res.status).toBe(201);
    return { digest, size: data.length };
  }

  it('stores a manifest byte for byte and tags it, answering OCI-Subject for a referrer', async () => {
    const { api, deploy, store, image } = await registryFixture(undo);
    const layer = {
      mediaType: MediaType.LayerTarGzip,
      ...(await pushBlob(api.url, deploy, Buffer.from('layer'))),
    };
    const config = {
      mediaType: MediaType.ImageConfig,
      ...(await pushBlob(api.url, deploy, Buffer.from('{"os":"linux"}'))),
    };
    // Not canonical JSON: the registry must keep these very bytes.
    const body = Buffer.from(
      JSON.stringify(
        { schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers: [layer] },
        null,
        2,
      ),
    );
    const digest = sha256Digest(body);
    const put = await raw(api.url, 'PUT', '/v2/app/manifests/1.0', {
      token: deploy,
      body,
      headers: { 'content-type': MediaType.ImageManifest },
    });
    expect(put.status).toBe(201);
    expect(put.headers['docker-content-digest']).toBe(digest);
    expect(put.headers.location).toBe(`/v2/app/manifests/${digest}`);
    expect(put.headers['oci-subject']).toBeUndefined();
    expect((await store.resolve('app:1.0'))?.digest).toBe(digest);
    expect((await store.getBlob(digest)).equals(body)).toBe(true);
    // `latest` is the bare store name, what `kiln images` and `kiln deploy` call the image.
    await raw(api.url, 'PUT', '/v2/app/manifests/latest', {
      token: deploy,
      body,
      headers: { 'content-type': MediaType.ImageManifest },
    });
    expect((await store.resolve('app'))?.digest).toBe(digest);

    await pushBlob(api.url, deploy, Buffer.from('{}'));
    const note = { mediaType: 'text/plain', ...(await pushBlob(api.url, deploy, Buffer.from('a note'))) };
    const referrer = canonicalJson({
      schemaVersion: 2,
      mediaType: MediaType.ImageManifest,
      artifactType: 'text/plain',
      config: EMPTY_DESCRIPTOR,
      layers: [note],
      subject: {
        mediaType: MediaType.ImageManifest,
        digest: image.descriptor.digest,
        size: image.descriptor.size,
      },
    });
    const byDigest = await raw(api.url, 'PUT', `/v2/web/manifests/${sha256Digest(referrer)}`, {
      token: deploy,
      body: referrer,
      headers: { 'content-type': MediaType.ImageManifest },
    });
    expect([byDigest.status, byDigest.headers['oci-subject']]).toEqual([201, image.descriptor.digest]);
    expect((await store.referrers(image.descriptor.digest, 'text/plain')).map((r) => r.digest)).toEqual([
      sha256Digest(referrer),
    ]);
  });

  it('refuses a manifest naming a blob the store lacks, one that is not an OCI manifest, and a digest it does not hash to', async () => {
    const { api, deploy, store, image } = await registryFixture(undo);
    const good = await store.getBlob(image.descriptor.digest);
    const manifest = JSON.parse(good.toString()) as { layers: { digest: string }[] };
    const missing = sha256Digest('never pushed');
    manifest.layers[1]!.digest = missing;
    const put = (reference: string, body: Buffer | string, type = MediaType.ImageManifest as string) =>
      raw(api.url, 'PUT', `/v2/evil/manifests/${reference}`, {
        token: deploy,
        body,
        headers: { 'content-type': type },
      });
    const unknownBlob = await put('1.0', JSON.stringify(manifest));
    expect([unknownBlob.status, unknownBlob.code()]).toEqual([400, 'MANIFEST_BLOB_UNKNOWN']);
    expect(JSON.parse(unknownBlob.body.toString()).errors[0].detail).toEqual([
      expect.objectContaining({ digest: missing }),
    ]);
    const cases: [string, Buffer | string, string, string][] = [
      ['1.0', 'not json{', MediaType.ImageManifest, 'MANIFEST_INVALID'],
      ['1.0', '{"schemaVersion":2}', MediaType.ImageManifest, 'MANIFEST_INVALID'],
      ['1.0', '{"schemaVersion":2,"manifests":[]}', MediaType.ImageIndex, 'MANIFEST_INVALID'],
      ['1.0', good, 'application/vnd.docker.distribution.manifest.v2+json', 'MANIFEST_INVALID'],
      [sha256Digest('something else'), good, MediaType.ImageManifest, 'DIGEST_INVALID'],
      ['-bad', good, MediaType.ImageManifest, 'TAG_INVALID'],
      ['1.0-', good, MediaType.ImageManifest, 'TAG_INVALID'],
    ];
    for (const [reference, body, type, code] of cases) {
      const res = await put(reference, body, type);
      expect([res.status, res.code()], `${reference} ${type}`).toEqual([400, code]);
    }
    const huge = await put('1.0', Buffer.alloc(5 << 20, 0x20));
    expect(huge.status).toBe(413);
    expect((await store.list()).map((t) => t.ref)).toEqual(['web']);
  });

  it('records in the audit log who pushed what: each stored blob and manifest, and each refusal', async () => {
    const { api, deploy, store, state } = await registryFixture(undo);
    const blob = Buffer.from('audited');
    await raw(api.url, 'POST', `/v2/app/blobs/uploads/?digest=${sha256Digest(blob)}`, {
      token: deploy,
      body: blob,
    });
    await raw(api.url, 'POST', `/v2/app/blobs/uploads/?digest=${sha256Digest('x')}`, {
      token: deploy,
      body: blob,
    });
    const manifest = await store.getBlob((await store.resolve('web'))!.digest);
    await raw(api.url, 'PUT', '/v2/web/manifests/2.0', {
      token: deploy,
      body: manifest,
      headers: { 'content-type': MediaType.ImageManifest },
    });
    expect(
      state.audit
        .since(0)
        .map(({ actor, action, target, result, detail }) => ({ actor, action, target, result, detail })),
    ).toEqual([
      {
        actor: 'ci',
        action: 'registry.blob.push',
        target: 'app',
        result: 'ok',
        detail: `stored blob ${sha256Digest(blob)} (7 bytes)`,
      },
      {
        actor: 'ci',
        action: 'registry.blob.push',
        target: 'app',
        result: 'failed',
        detail: expect.stringContaining('nothing was stored'),
      },
      {
        actor: 'ci',
        action: 'registry.manifest.put',
        target: 'web:2.0',
        result: 'ok',
        detail: `tagged web:2.0 as manifest ${sha256Digest(manifest)}`,
      },
    ]);
  });
});
