/**
 * Hostile JSON against the image store and the registry client: index.json, manifests and
 * referrer lists as a damaged store or a malicious registry would serve them. The registry is a
 * `fetch` written in the test (no network). Every operation must succeed or throw a kiln error,
 * and nothing outside the store may change.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  expectKilnError,
  fuzzParams,
  fuzzTimeout,
  kilnErrorOf,
  snapshotTree,
} from '../../test/support/fuzz.js';
import { sha256Digest } from './digest.js';
import { OciStore } from './layout.js';
import { RegistryClient } from './registry.js';
import { MediaType } from './types.js';

const temps: string[] = [];
afterEach(async () => {
  for (const t of temps.splice(0)) await rm(t, { recursive: true, force: true });
});

/** A base directory with a sentinel `outside` and the path a store goes to. */
async function arena(): Promise<{ outside: string; storeDir: string }> {
  const base = await mkdtemp(join(tmpdir(), 'kiln-fuzz-store-'));
  temps.push(base);
  await mkdir(join(base, 'outside'));
  await writeFile(join(base, 'outside', 'victim'), 'original');
  return { outside: join(base, 'outside'), storeDir: join(base, 'store') };
}

const BLOB = Buffer.from('{"architecture":"amd64","os":"linux"}');
const BLOB_DIGEST = sha256Digest(BLOB);

/** Descriptors as a hostile writer makes them: now valid, now subtly wrong, now not objects. */
const descriptor = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record(
      {
        mediaType: fc.constantFrom(
          MediaType.ImageManifest,
          MediaType.ImageIndex,
          MediaType.LayerTarGzip,
          'x',
          '',
        ),
        digest: fc.constantFrom(
          BLOB_DIGEST,
          `sha256:${'a'.repeat(64)}`,
          'sha256:../../outside/victim',
          `sha256:${'A'.repeat(64)}`,
          '',
        ),
        size: fc.oneof(fc.constant(BLOB.length), fc.integer(), fc.double(), fc.constant(-1)),
        annotations: fc.oneof(
          fc.dictionary(
            fc.constantFrom('org.opencontainers.image.ref.name', 'x'),
            fc.oneof(fc.string(), fc.jsonValue()),
          ),
          fc.jsonValue(),
        ),
        artifactType: fc.constantFrom('application/spdx+json', 'nope'),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

/** An image manifest (or index) with any field possibly wrong, or any JSON at all. */
const document = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record(
      {
        schemaVersion: fc.constantFrom(2, 2, 1, '2'),
        mediaType: fc.constantFrom(MediaType.ImageManifest, MediaType.ImageIndex, 'x'),
        config: descriptor,
        layers: fc.oneof(fc.array(descriptor, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
        manifests: fc.oneof(fc.array(descriptor, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
        subject: descriptor,
        artifactType: fc.constantFrom('application/spdx+json', ''),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const body = fc.oneof(
  { weight: 6, arbitrary: document.map((d) => Buffer.from(JSON.stringify(d) ?? 'null')) },
  { weight: 1, arbitrary: fc.string({ maxLength: 50 }).map((s) => Buffer.from(s)) },
);

describe('OciStore against hostile JSON', () => {
  it(
    'a damaged index.json: open, list, resolve, referrers and gc succeed or throw a kiln error',
    async () => {
      await fc.assert(
        fc.asyncProperty(body, async (index) => {
          const { outside, storeDir } = await arena();
          const before = await snapshotTree(outside);
          await mkdir(join(storeDir, 'blobs', 'sha256'), { recursive: true });
          await writeFile(join(storeDir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
          await writeFile(join(storeDir, 'index.json'), index);
          await writeFile(join(storeDir, 'blobs', 'sha256', BLOB_DIGEST.slice(7)), BLOB);
          const store = await OciStore.open(storeDir).catch(
            (e: unknown) => (expectKilnError(e, 'open'), undefined),
          );
          if (store !== undefined) {
            for (const [what, op] of [
              ['list', () => store.list()],
              ['resolve ref', () => store.resolve('app:1')],
              ['resolve digest', () => store.resolve(BLOB_DIGEST)],
              ['referrers', () => store.referrers(BLOB_DIGEST)],
              ['gc', () => store.gc({ graceMs: 0 })],
              ['export', () => store.exportImage('app:1', join(storeDir, '..', 'export'))],
            ] as const) {
              await kilnErrorOf(op, what);
            }
          }
          expect(await snapshotTree(outside)).toEqual(before);
        }),
        fuzzParams(60, 0.05),
      );
    },
    fuzzTimeout(60, 0.05, 100),
  );

  it(
    'hostile manifests: getManifest and putManifestBytes refuse with a kiln error',
    async () => {
      const { storeDir } = await arena();
      const store = await OciStore.open(storeDir);
      await store.putBlob(BLOB, MediaType.ImageConfig);
      await fc.assert(
        fc.asyncProperty(body, async (manifest) => {
          const { digest } = await store.putBlob(manifest, 'application/octet-stream');
          await kilnErrorOf(() => store.getManifest(digest), 'getManifest');
          await kilnErrorOf(() => store.resolve(digest), 'resolve');
          await kilnErrorOf(() => store.putManifestBytes(manifest, { ref: 'fuzz:1' }), 'putManifestBytes');
          await kilnErrorOf(() => store.list(), 'list');
        }),
        fuzzParams(100, 0.1),
      );
    },
    fuzzTimeout(100, 0.1, 20),
  );
});

/** What the fake registry answers, chosen by the fuzzer. */
interface Answers {
  readonly manifest: Buffer;
  readonly contentType: string;
  readonly status: number;
  readonly referrers: Buffer;
  readonly referrersStatus: number;
  readonly location: string;
  readonly challenge: string;
  readonly token: Buffer | string;
}

function fakeRegistry(a: Answers): typeof fetch {
  return (async (input: Parameters<typeof fetch>[0]) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const reply = (status: number, data: Buffer | string, headers: Record<string, string> = {}): Response =>
      new Response(status === 204 || status === 304 ? null : new Uint8Array(Buffer.from(data)), {
        status,
        headers,
      });
    if (url.pathname === '/token') return reply(200, a.token);
    if (a.status === 401) return reply(401, '', { 'www-authenticate': a.challenge });
    if ([301, 302, 307].includes(a.status)) return reply(a.status, '', { location: a.location });
    if (url.pathname.includes('/referrers/')) return reply(a.referrersStatus, a.referrers);
    if (url.pathname.includes('/manifests/'))
      return reply(a.status, a.manifest, { 'content-type': a.contentType });
    if (url.pathname.endsWith(`/blobs/${BLOB_DIGEST}`)) return reply(200, BLOB);
    return reply(404, '{"errors":[{"code":"BLOB_UNKNOWN"}]}');
  }) as typeof fetch;
}

describe('RegistryClient against a hostile registry', () => {
  it(
    'pull: a stored image or a kiln error, never a TypeError, nothing outside the store touched',
    async () => {
      const answers: fc.Arbitrary<Answers> = fc.record({
        manifest: body,
        contentType: fc.constantFrom(MediaType.ImageManifest, 'application/json', '', MediaType.ImageIndex),
        status: fc.constantFrom(200, 200, 200, 200, 404, 500, 401, 302),
        referrers: body,
        referrersStatus: fc.constantFrom(200, 404, 500),
        location: fc.constantFrom('http://[', '/v2/other', 'file:///etc/passwd', '//127.0.0.1:1/x'),
        challenge: fc.constantFrom(
          'Bearer realm="http://127.0.0.1:5000/token",service="r"',
          'Bearer realm="not a url"',
          'Bearer realm="https://[bad"',
          'Basic realm="x"',
          'Negotiate',
          '',
        ),
        token: fc.constantFrom('null', '{"token":{}}', '{"token":"t","expires_in":"soon"}', 'x', '{}'),
      });
      await fc.assert(
        fc.asyncProperty(answers, fc.boolean(), async (a, referrers) => {
          const { outside, storeDir } = await arena();
          const before = await snapshotTree(outside);
          const store = await OciStore.open(storeDir);
          const client = new RegistryClient({
            registry: '127.0.0.1:5000',
            plainHttp: true,
            username: 'u',
            password: 'p',
            fetch: fakeRegistry(a),
          });
          await kilnErrorOf(() => client.getManifest('team/app', '1.0'), 'getManifest');
          await kilnErrorOf(() => client.getReferrers('team/app', BLOB_DIGEST), 'getReferrers');
          await kilnErrorOf(
            () => client.pullImage({ repository: 'team/app', tag: '1.0' }, store, 'app:1', { referrers }),
            'pullImage',
          );
          client.close();
          expect(await snapshotTree(outside)).toEqual(before);
        }),
        fuzzParams(80, 0.05),
      );
    },
    fuzzTimeout(80, 0.05, 100),
  );
});

describe('regressions the fuzzing found', () => {
  const base: Answers = {
    manifest: Buffer.from('{}'),
    contentType: MediaType.ImageManifest,
    status: 200,
    referrers: Buffer.from('{"manifests":[]}'),
    referrersStatus: 200,
    location: '/',
    challenge: '',
    token: Buffer.from('{}'),
  };
  const client = (a: Partial<Answers>): RegistryClient =>
    new RegistryClient({
      registry: '127.0.0.1:5000',
      plainHttp: true,
      username: 'u',
      fetch: fakeRegistry({ ...base, ...a }),
    });

  it('an index.json entry that is not a descriptor (was a TypeError in list and resolve)', async () => {
    const { storeDir } = await arena();
    await OciStore.open(storeDir);
    await writeFile(
      join(storeDir, 'index.json'),
      '{"schemaVersion":2,"manifests":[null,{"digest":"sha256:x"}]}',
    );
    const err = await kilnErrorOf(() => OciStore.open(storeDir));
    expect(err?.message).toMatch(
      /index\.json: 4 problems\n {2}\[manifests\[0\]\] expected a descriptor object/,
    );
  });

  it('a manifest served as an OCI manifest that is not JSON (was a SyntaxError)', async () => {
    const store = await OciStore.open((await arena()).storeDir);
    const err = await kilnErrorOf(() =>
      client({ manifest: Buffer.from('<html>') }).pullImage({ repository: 'a', tag: '1' }, store, undefined),
    );
    expect(err?.message).toMatch(/127\.0\.0\.1:5000\/a:1: not valid JSON/);
    expect(await store.list()).toEqual([]);
  });

  it.each([
    ['not JSON', '<html>', /referrers of sha256:\w+ from 127\.0\.0\.1:5000\/a: not valid JSON/],
    ['manifests not an array', '{"manifests":"x"}', /\[manifests\] must be an array of descriptors/],
    ['a null entry', '{"manifests":[null]}', /\[manifests\[0\]\] expected a descriptor object/],
  ])('a referrers list that is %s (was a TypeError or SyntaxError)', async (_name, list, message) => {
    const err = await kilnErrorOf(() =>
      client({ referrers: Buffer.from(list) }).getReferrers('a', BLOB_DIGEST),
    );
    expect(err?.message).toMatch(message);
  });

  it('a redirect to something that is not a URL (was a TypeError)', async () => {
    const err = await kilnErrorOf(() => client({ status: 302, location: 'http://[' }).getManifest('a', '1'));
    expect(err?.message).toMatch(
      /answered http:\/\/127\.0\.0\.1:5000\/v2\/a\/manifests\/1 with a Location that is not a URL/,
    );
  });

  it.each([
    [
      'a realm that is not a URL',
      'Bearer realm="not a url"',
      '{}',
      /named a token realm that is not a URL \("not a url"\)/,
    ],
    [
      'a token answer of null',
      'Bearer realm="http://127.0.0.1:5000/token"',
      'null',
      /answered without a token/,
    ],
    [
      'a token that is not a string',
      'Bearer realm="http://127.0.0.1:5000/token"',
      '{"token":{}}',
      /answered without a token/,
    ],
  ])('a 401 challenge with %s (was a TypeError)', async (_name, challenge, token, message) => {
    const err = await kilnErrorOf(() =>
      client({ status: 401, challenge, token: Buffer.from(token) }).getManifest('a', '1'),
    );
    expect(err?.message).toMatch(message);
  });
});
