/**
 * The registry's pull side and hostile requests, over a real API server with a temp image store:
 * every answer's status, headers and distribution error code, and that nothing outside the store
 * is read or written.
 */
import { chmod, readdir, writeFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaType, sha256Digest } from '../oci/index.js';
import { byteRange } from './registry-routes.js';
import { raw, registryFixture } from '../../test/support/kiln-registry.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

describe('pulling from the registry', () => {
  it('answers the version check and a manifest by tag and by digest, with its type, digest and length', async () => {
    const { api, read, image } = await registryFixture(undo);
    const version = await raw(api.url, 'GET', '/v2/', { token: read });
    expect(version.status).toBe(200);
    expect(version.headers['docker-distribution-api-version']).toBe('registry/2.0');
    for (const reference of ['latest', image.descriptor.digest]) {
      for (const method of ['GET', 'HEAD']) {
        const res = await raw(api.url, method, `/v2/web/manifests/${reference}`, { token: read });
        expect(res.status, `${method} ${reference}`).toBe(200);
        expect(res.headers['content-type']).toBe(MediaType.ImageManifest);
        expect(res.headers['docker-content-digest']).toBe(image.descriptor.digest);
        expect(res.headers['content-length']).toBe(String(image.descriptor.size));
        if (method === 'GET') expect(sha256Digest(res.body)).toBe(image.descriptor.digest);
        else expect(res.body.length).toBe(0);
      }
    }
    const missing = await raw(api.url, 'GET', '/v2/web/manifests/2.0', { token: read });
    expect([missing.status, missing.code()]).toEqual([404, 'MANIFEST_UNKNOWN']);
    const other = await raw(api.url, 'HEAD', '/v2/nothere/manifests/latest', { token: read });
    expect(other.status).toBe(404);
  });

  it('serves a blob whole and by range, and refuses a range outside it', async () => {
    const { api, read, store, image } = await registryFixture(undo);
    const layer = (await store.getManifest(image.descriptor.digest)).layers[0]!;
    const bytes = await store.getBlob(layer.digest);
    const whole = await raw(api.url, 'GET', `/v2/web/blobs/${layer.digest}`, { token: read });
    expect(whole.status).toBe(200);
    expect(whole.body.equals(bytes)).toBe(true);
    expect(whole.headers['docker-content-digest']).toBe(layer.digest);
    expect(whole.headers['content-length']).toBe(String(bytes.length));
    const head = await raw(api.url, 'HEAD', `/v2/any/repo/blobs/${layer.digest}`, { token: read });
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([
      200,
      String(bytes.length),
      0,
    ]);
    const part = await raw(api.url, 'GET', `/v2/web/blobs/${layer.digest}`, {
      token: read,
      headers: { range: 'bytes=10-19' },
    });
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 10-19/${bytes.length}`);
    expect(part.body.equals(bytes.subarray(10, 20))).toBe(true);
    const outside = await raw(api.url, 'GET', `/v2/web/blobs/${layer.digest}`, {
      token: read,
      headers: { range: `bytes=${bytes.length}-` },
    });
    expect(outside.status).toBe(416);
    expect(outside.headers['content-range']).toBe(`bytes */${bytes.length}`);
    const unknown = await raw(api.url, 'GET', `/v2/web/blobs/sha256:${'a'.repeat(64)}`, { token: read });
    expect([unknown.status, unknown.code()]).toEqual([404, 'BLOB_UNKNOWN']);
  });

  it('reads ranges as RFC 9110 says, serving the whole blob for one it does not take', () => {
    expect(byteRange('bytes=0-0', 10)).toEqual({ start: 0, end: 0 });
    expect(byteRange('bytes=5-', 10)).toEqual({ start: 5, end: 9 });
    expect(byteRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 });
    expect(byteRange('bytes=8-99999999999999999999999', 10)).toEqual({ start: 8, end: 9 });
    expect(byteRange('bytes=99999999999999999999-', 10)).toBe('unsatisfiable');
    expect(byteRange('bytes=0-1,4-5', 10)).toBeUndefined();
    expect(byteRange('items=0-1', 10)).toBeUndefined();
    expect(byteRange(undefined, 10)).toBeUndefined();
  });

  it('lists tags in byte order, a page at a time with a Link to the next', async () => {
    const { api, read, store, image } = await registryFixture(undo);
    for (const ref of ['web:2.0', 'web:1.0', 'web:B', 'team/web:9', 'Upper:1'])
      await store.tag(ref, image.descriptor);
    const all = await raw(api.url, 'GET', '/v2/web/tags/list', { token: read });
    expect(JSON.parse(all.body.toString())).toEqual({ name: 'web', tags: ['1.0', '2.0', 'B', 'latest'] });
    const first = await raw(api.url, 'GET', '/v2/web/tags/list?n=2', { token: read });
    expect(JSON.parse(first.body.toString()).tags).toEqual(['1.0', '2.0']);
    expect(first.headers.link).toBe('</v2/web/tags/list?n=2&last=2.0>; rel="next"');
    const second = await raw(api.url, 'GET', '/v2/web/tags/list?n=2&last=2.0', { token: read });
    expect(JSON.parse(second.body.toString()).tags).toEqual(['B', 'latest']);
    expect(second.headers.link).toBeUndefined();
    const none = await raw(api.url, 'GET', '/v2/web/tags/list?n=0', { token: read });
    expect([JSON.parse(none.body.toString()).tags, none.headers.link]).toEqual([[], undefined]);
    expect(
      JSON.parse((await raw(api.url, 'GET', '/v2/team/web/tags/list', { token: read })).body.toString()).tags,
    ).toEqual(['9']);
    for (const bad of ['n=-1', 'n=abc', 'n=99999999']) {
      expect((await raw(api.url, 'GET', `/v2/web/tags/list?${bad}`, { token: read })).status, bad).toBe(400);
    }
    const unknown = await raw(api.url, 'GET', '/v2/nothere/tags/list', { token: read });
    expect([unknown.status, unknown.code()]).toEqual([404, 'NAME_UNKNOWN']);
  });

  it('lists referrers as an image index, filtered by artifactType when asked', async () => {
    const { api, read, image, sbom, sig } = await registryFixture(undo);
    const all = await raw(api.url, 'GET', `/v2/web/referrers/${image.descriptor.digest}`, { token: read });
    expect(all.status).toBe(200);
    expect(all.headers['content-type']).toBe(MediaType.ImageIndex);
    const index = JSON.parse(all.body.toString()) as {
      manifests: { digest: string; artifactType: string }[];
    };
    expect(index.manifests.map((m) => m.digest).sort()).toEqual([sbom.digest, sig.digest].sort());
    const only = await raw(
      api.url,
      'GET',
      `/v2/web/referrers/${image.descriptor.digest}?artifactType=${encodeURIComponent('application/vnd.cyclonedx+json')}`,
      { token: read },
    );
    expect(only.headers['oci-filters-applied']).toBe('artifactType');
    expect(JSON.parse(only.body.toString()).manifests).toMatchObject([
      { digest: sbom.digest, artifactType: 'application/vnd.cyclonedx+json' },
    ]);
    const none = await raw(api.url, 'GET', `/v2/web/referrers/sha256:${'b'.repeat(64)}`, { token: read });
    expect([none.status, JSON.parse(none.body.toString()).manifests]).toEqual([200, []]);
    const bad = await raw(api.url, 'GET', '/v2/web/referrers/sha256:xyz', { token: read });
    expect([bad.status, bad.code()]).toEqual([400, 'DIGEST_INVALID']);
  });

  it('does not serve a blob that no longer hashes to its digest', async () => {
    const { api, read, store, image, logs } = await registryFixture(undo);
    const config = (await store.getManifest(image.descriptor.digest)).config;
    await chmod(store.blobPath(config.digest), 0o644);
    const bytes = await store.getBlob(config.digest);
    bytes[0] = bytes[0]! ^ 1;
    await writeFile(store.blobPath(config.digest), bytes);
    const res = await raw(api.url, 'GET', `/v2/web/blobs/${config.digest}`, { token: read });
    expect([res.status, res.code()]).toEqual([500, 'UNKNOWN']);
    expect(res.body.toString()).toContain(config.digest);
    expect(logs.join('\n')).toContain('kiln registry: GET');
  });
});

describe('hostile requests', () => {
  it('refuses names, references and digests that are not the grammar, and so never leave the store', async () => {
    const { api, deploy, dir } = await registryFixture(undo);
    const cases: [string, string, number, string][] = [
      ['GET', '/v2/../../etc/manifests/latest', 400, 'NAME_INVALID'],
      ['GET', '/v2/%2e%2e/manifests/latest', 400, 'NAME_INVALID'],
      ['GET', '/v2/Web/manifests/latest', 400, 'NAME_INVALID'],
      ['GET', `/v2/${'a/'.repeat(200)}b/tags/list`, 400, 'NAME_INVALID'],
      ['GET', '/v2/web/manifests/..%2f..%2fetc', 400, 'TAG_INVALID'],
      ['GET', '/v2/web/manifests/sha256:../../../../etc/passwd', 404, 'NAME_UNKNOWN'],
      ['GET', '/v2/web/manifests/sha256:1234', 400, 'DIGEST_INVALID'],
      ['GET', '/v2/web/blobs/sha256:..%2f..%2findex.json', 400, 'DIGEST_INVALID'],
      ['GET', `/v2/web/blobs/sha512:${'a'.repeat(128)}`, 400, 'DIGEST_INVALID'],
      ['GET', '/v2/web/blobs/uploads/..%2f..%2findex.json', 404, 'BLOB_UPLOAD_UNKNOWN'],
      ['PATCH', '/v2/web/blobs/uploads/00000000-0000-4000-8000-000000000000', 404, 'BLOB_UPLOAD_UNKNOWN'],
      ['DELETE', '/v2/web/manifests/latest', 405, 'UNSUPPORTED'],
    ];
    for (const [method, path, status, code] of cases) {
      const res = await raw(api.url, method, path, { token: deploy });
      expect([res.status, res.code()], `${method} ${path}`).toEqual([status, code]);
    }
    expect((await readdir(dir)).sort()).toEqual(['store']);
  });
});
