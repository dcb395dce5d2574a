import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, IntegrityError, NotFoundError, ValidationError } from '../errors/index.js';
import { canonicalJson, sha256Digest } from './digest.js';
import { EMPTY_DESCRIPTOR, OciStore } from './layout.js';
import { buildTinyImage, requireTools } from '../../test/support/oci-fixtures.js';
import { Annotation, MediaType, type ImageIndex } from './types.js';

const temps: string[] = [];
afterEach(async () => {
  for (const t of temps.splice(0)) await rm(t, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kiln-layout-'));
  temps.push(d);
  return d;
}
async function readIndexFile(dir: string): Promise<ImageIndex> {
  return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
}

describe('OciStore blobs', () => {
  it('creates a layout and stores, verifies and finds blobs', async () => {
    const dir = join(await tempDir(), 'store');
    const store = await OciStore.open(dir);
    expect(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    });
    expect(await readIndexFile(dir)).toEqual({
      schemaVersion: 2,
      mediaType: MediaType.ImageIndex,
      manifests: [],
    });

    const data = Buffer.from('some bytes');
    const d = await store.putBlob(data, 'application/octet-stream');
    expect(d).toEqual({
      mediaType: 'application/octet-stream',
      digest: sha256Digest(data),
      size: data.length,
    });
    expect(store.blobPath(d.digest)).toBe(join(dir, 'blobs', 'sha256', sha256Digest(data).slice(7)));
    expect(await store.hasBlob(d.digest)).toBe(true);
    expect((await store.getBlob(d.digest)).equals(data)).toBe(true);

    const j = await store.putJson({ b: 1, a: { d: 2, c: 3 } }, 'application/json');
    expect((await store.getBlob(j.digest)).toString()).toBe('{"a":{"c":3,"d":2},"b":1}');

    const missing = sha256Digest('nope');
    expect(await store.hasBlob(missing)).toBe(false);
    await expect(store.getBlob(missing)).rejects.toBeInstanceOf(NotFoundError);
    expect(() => store.blobPath('sha256:XYZ' as never)).toThrow(ValidationError);
    await expect(store.putBlob(data, 'not a media type')).rejects.toBeInstanceOf(ValidationError);

    // Reopening an existing layout keeps it; a directory of another layout version is refused.
    await OciStore.open(dir);
    expect(await store.hasBlob(d.digest)).toBe(true);
    const other = await tempDir();
    await writeFile(join(other, 'oci-layout'), '{"imageLayoutVersion":"9.9"}');
    await expect(OciStore.open(other)).rejects.toThrow(/imageLayoutVersion.*expected "1\.0\.0"/s);
  });

  it('refuses a blob corrupted on disk, and putting it again repairs it', async () => {
    const store = await OciStore.open(await tempDir());
    const data = Buffer.from('precious');
    const d = await store.putBlob(data, 'application/octet-stream');
    await chmod(store.blobPath(d.digest), 0o644);
    await writeFile(store.blobPath(d.digest), 'PRECIOUS');
    const err = await store.getBlob(d.digest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(/digest mismatch: expected sha256:/);
    await store.putBlob(data, 'application/octet-stream');
    expect((await store.getBlob(d.digest)).equals(data)).toBe(true);
  });

  it('leaves no temp files behind', async () => {
    const dir = await tempDir();
    const store = await OciStore.open(dir);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.putBlob(Buffer.from(`b${i}`), 'text/plain')),
    );
    const names = [...(await readdir(dir)), ...(await readdir(join(dir, 'blobs', 'sha256')))];
    expect(names.filter((n) => n.includes('.tmp-') || n.endsWith('.lock'))).toEqual([]);
  });
});

describe('OciStore manifests and refs', () => {
  it('refuses a manifest whose blobs are not in the store, naming each', async () => {
    const store = await OciStore.open(await tempDir());
    const config = { mediaType: MediaType.ImageConfig, digest: sha256Digest('c'), size: 1 };
    const layer = { mediaType: MediaType.LayerTarGzip, digest: sha256Digest('l'), size: 1 };
    const err = await store
      .putManifest({ schemaVersion: 2, mediaType: MediaType.ImageManifest, config, layers: [layer] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual([config.digest, layer.digest]);
  });

  it('tags, re-tags, lists, resolves and untags', async () => {
    const dir = await tempDir();
    const store = await OciStore.open(dir);
    const a = await buildTinyImage(store, 'app:1.0', 'A');
    const b = await buildTinyImage(store, undefined, 'B');
    expect(a.descriptor.digest).not.toBe(b.descriptor.digest);
    expect(await store.getManifest(a.descriptor.digest)).toMatchObject({
      mediaType: MediaType.ImageManifest,
    });

    await store.tag('app:latest', a.descriptor);
    expect((await store.list()).map((t) => [t.ref, t.descriptor.digest])).toEqual([
      ['app:1.0', a.descriptor.digest],
      ['app:latest', a.descriptor.digest],
    ]);
    // Untagged b is kept in the index as a root until tagged.
    expect((await readIndexFile(dir)).manifests.map((m) => m.digest)).toContain(b.descriptor.digest);

    await store.tag('app:latest', b.descriptor);
    expect((await store.resolve('app:latest'))?.digest).toBe(b.descriptor.digest);
    expect((await store.resolve('app:1.0'))?.digest).toBe(a.descriptor.digest);
    expect((await store.resolve(b.descriptor.digest))?.digest).toBe(b.descriptor.digest);
    expect(await store.resolve('nope:1')).toBeUndefined();
    const index = await readIndexFile(dir);
    expect(index.manifests.filter((m) => m.annotations?.[Annotation.RefName] === 'app:latest')).toHaveLength(
      1,
    );
    expect(index.manifests.filter((m) => m.digest === b.descriptor.digest)).toHaveLength(1);

    expect(await store.untag('app:1.0')).toBe(true);
    expect(await store.untag('app:1.0')).toBe(false);
    expect((await store.list()).map((t) => t.ref)).toEqual(['app:latest']);
    await expect(store.tag('bad ref!', a.descriptor)).rejects.toThrow(/not a valid image reference name/);
  });

  it('serialises index updates from many writers and two store handles', async () => {
    const dir = await tempDir();
    const one = await OciStore.open(dir);
    const two = await OciStore.open(dir);
    const img = await buildTinyImage(one, undefined);
    await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 ? one : two).tag(`app:${i}`, img.descriptor)),
    );
    expect((await one.list()).map((t) => t.ref).sort()).toEqual(
      Array.from({ length: 30 }, (_, i) => `app:${i}`).sort(),
    );
  });

  it('loses no update when separate processes tag into the same layout', async () => {
    const dir = await tempDir();
    const store = await OciStore.open(dir);
    const img = await buildTinyImage(store, undefined);
    const script = join(dir, 'child.mts');
    await writeFile(
      script,
      `import { OciStore } from ${JSON.stringify(new URL('./layout.ts', import.meta.url).pathname)};
const [dir, name, digest, size] = process.argv.slice(2);
const store = await OciStore.open(dir);
await Promise.all(Array.from({ length: 15 }, (_, i) => store.tag(name + ':' + i, { mediaType: '${MediaType.ImageManifest}', digest, size: Number(size) })));
`,
    );
    const jiti = new URL('../../node_modules/.bin/jiti', import.meta.url).pathname;
    const args = (name: string): string[] => [
      script,
      dir,
      name,
      img.descriptor.digest,
      String(img.descriptor.size),
    ];
    await Promise.all([
      execa(jiti, args('p1')),
      execa(jiti, args('p2')),
      Promise.all(Array.from({ length: 15 }, (_, i) => store.tag(`p0:${i}`, img.descriptor))),
    ]);
    const refs = (await store.list()).map((t) => t.ref);
    expect(refs).toHaveLength(45);
    for (const p of ['p0', 'p1', 'p2']) expect(refs.filter((r) => r.startsWith(`${p}:`))).toHaveLength(15);
  });

  it('breaks a stale lock left by a dead process and waits for a live one', async () => {
    const dir = await tempDir();
    const store = await OciStore.open(dir, { lockTimeoutMs: 300 });
    const img = await buildTinyImage(store, undefined);
    const dead = execa('true');
    await dead;
    await writeFile(join(dir, 'index.json.lock'), `${dead.pid}\n`);
    await store.tag('app:1', img.descriptor);
    expect((await store.resolve('app:1'))?.digest).toBe(img.descriptor.digest);
    await writeFile(join(dir, 'index.json.lock'), `${process.ppid}\n`);
    const err = await store.tag('app:2', img.descriptor).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(new RegExp(`held by process ${process.ppid}`));
    await rm(join(dir, 'index.json.lock'));
  });
});

describe('OciStore referrers', () => {
  it('attaches artifacts with the empty config and lists them by subject and type', async () => {
    const dir = await tempDir();
    const store = await OciStore.open(dir);
    const img = await buildTinyImage(store, 'app:1.0');
    const sbom = await store.attach(img.descriptor, {
      artifactType: 'application/spdx+json',
      mediaType: 'application/spdx+json',
      data: Buffer.from('{"spdxVersion":"SPDX-2.3"}'),
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    });
    const sig = await store.attach(img.descriptor, {
      artifactType: 'application/vnd.kiln.signature.v1+json',
      mediaType: 'application/octet-stream',
      data: Buffer.from('sig'),
    });
    expect(await store.hasBlob(EMPTY_DESCRIPTOR.digest)).toBe(true);
    expect(EMPTY_DESCRIPTOR).toEqual({
      mediaType: 'application/vnd.oci.empty.v1+json',
      digest: sha256Digest('{}'),
      size: 2,
    });
    const manifest = await store.getManifest(sbom.digest);
    expect(manifest).toMatchObject({
      artifactType: 'application/spdx+json',
      config: EMPTY_DESCRIPTOR,
      subject: {
        mediaType: MediaType.ImageManifest,
        digest: img.descriptor.digest,
        size: img.descriptor.size,
      },
      layers: [{ mediaType: 'application/spdx+json', digest: sha256Digest('{"spdxVersion":"SPDX-2.3"}') }],
    });
    const all = await store.referrers(img.descriptor.digest);
    expect(all.map((d) => d.digest)).toEqual([sbom.digest, sig.digest].sort());
    expect(all.find((d) => d.digest === sbom.digest)).toMatchObject({
      artifactType: 'application/spdx+json',
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    });
    expect(
      (await store.referrers(img.descriptor.digest, 'application/spdx+json')).map((d) => d.digest),
    ).toEqual([sbom.digest]);
    expect(await store.referrers(sbom.digest)).toEqual([]);
    // Recorded untagged so the layout references it; attaching again changes nothing.
    const before = await readFile(join(dir, 'index.json'));
    await store.attach(img.descriptor, {
      artifactType: 'application/spdx+json',
      mediaType: 'application/spdx+json',
      data: Buffer.from('{"spdxVersion":"SPDX-2.3"}'),
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    });
    expect((await readFile(join(dir, 'index.json'))).equals(before)).toBe(true);
    expect(
      (await readIndexFile(dir)).manifests.find((m) => m.digest === sig.digest)?.annotations,
    ).toBeUndefined();
  });

  it('collects garbage: untagged images and their orphaned referrers go, tagged ones stay', async () => {
    const store = await OciStore.open(await tempDir());
    const keep = await buildTinyImage(store, 'keep:1', 'K');
    const drop = await buildTinyImage(store, 'drop:1', 'D');
    const sbom = await store.attach(drop.descriptor, {
      artifactType: 'text/plain',
      mediaType: 'text/plain',
      data: Buffer.from('sbom'),
    });
    await store.attach(sbom, {
      artifactType: 'text/x-sig',
      mediaType: 'text/plain',
      data: Buffer.from('sig of sbom'),
    });
    await store.untag('drop:1');
    const result = await store.gc({ graceMs: 0 });
    expect(result.removed).toContain(drop.descriptor.digest);
    expect(result.removed).toContain(sbom.digest);
    expect(result.removed).toContain(sha256Digest('sig of sbom'));
    expect(await store.hasBlob(drop.descriptor.digest)).toBe(false);
    expect(await store.getManifest(keep.descriptor.digest)).toBeDefined();
    for (const l of (await store.getManifest(keep.descriptor.digest)).layers)
      expect(await store.hasBlob(l.digest)).toBe(true);
    expect((await store.gc({ graceMs: 0 })).removed).toEqual([]);
  });
});

describe('OciStore.exportImage', () => {
  beforeAll(async () => {
    await requireTools('skopeo', 'umoci');
  });

  it('fails, naming the apt packages, when an independent tool is missing', async () => {
    await expect(requireTools('kiln-no-such-tool')).rejects.toThrow(
      /missing kiln-no-such-tool.*apt-get install skopeo umoci/,
    );
  });

  it('writes a layout that skopeo and umoci read, with referrers', async () => {
    const root = await tempDir();
    const store = await OciStore.open(join(root, 'store'));
    const img = await buildTinyImage(store, 'team/app:1.0', 'exported');
    await buildTinyImage(store, 'other:2', 'not exported');
    const sbom = await store.attach(img.descriptor, {
      artifactType: 'application/spdx+json',
      mediaType: 'application/spdx+json',
      data: Buffer.from('{}x'),
    });
    const dest = join(root, 'export');
    expect(await store.exportImage('team/app:1.0', dest)).toMatchObject({ digest: img.descriptor.digest });

    const index = await readIndexFile(dest);
    expect(index.manifests.map((m) => [m.digest, m.annotations?.[Annotation.RefName]])).toEqual([
      [img.descriptor.digest, '1.0'],
      [sbom.digest, undefined],
    ]);
    expect((await readdir(root)).sort()).toEqual(['export', 'store']);

    const inspected = JSON.parse((await execa('skopeo', ['inspect', `oci:${dest}:1.0`])).stdout) as {
      Digest: string;
      Layers: string[];
    };
    expect(inspected.Digest).toBe(img.descriptor.digest);
    const manifest = await store.getManifest(img.descriptor.digest);
    expect(inspected.Layers).toEqual(manifest.layers.map((l) => l.digest));
    const raw = (await execa('skopeo', ['inspect', '--raw', `oci:${dest}:1.0`])).stdout;
    expect(sha256Digest(raw)).toBe(img.descriptor.digest);

    const bundle = join(root, 'bundle');
    const rootless = process.getuid?.() === 0 ? [] : ['--rootless'];
    await execa('umoci', ['unpack', ...rootless, '--image', `${dest}:1.0`, bundle]);
    expect(await readFile(join(bundle, 'rootfs', 'etc', 'motd'), 'utf8')).toBe('exported\n');
    expect((await stat(join(bundle, 'rootfs', 'usr/bin/app2'))).ino).toBe(
      (await stat(join(bundle, 'rootfs', 'usr/bin/app'))).ino,
    );
    expect(await readFile(join(bundle, 'rootfs', 'bin', 'app'), 'utf8')).toContain('echo app');
    const runtimeConfig = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {
      process: { args: string[] };
    };
    expect(runtimeConfig.process.args).toEqual(['/usr/bin/app']);
  });

  it('refuses an existing destination and leaves nothing for an unknown ref', async () => {
    const root = await tempDir();
    const store = await OciStore.open(join(root, 'store'));
    await buildTinyImage(store, 'app:1');
    await mkdir(join(root, 'taken'));
    await expect(store.exportImage('app:1', join(root, 'taken'))).rejects.toBeInstanceOf(ConflictError);
    await expect(store.exportImage('app:404', join(root, 'none'))).rejects.toBeInstanceOf(NotFoundError);
    expect((await readdir(root)).sort()).toEqual(['store', 'taken']);
    expect(canonicalJson(await readIndexFile(join(root, 'store'))).length).toBeGreaterThan(0);
  });
});
