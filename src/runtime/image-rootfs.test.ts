import { lstat, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTinyImage } from '../../test/support/oci-fixtures.js';
import { buildLayer, canonicalJson, MediaType, OciStore, type Descriptor } from '../oci/index.js';
import { FILES_ARTIFACT_TYPE, filesOfLayers } from './image-files.js';
import {
  ensureRootfs,
  filesManifestSource,
  readFilesManifest,
  RUNTIME_MOUNT_POINTS,
} from './image-rootfs.js';
import { compareTree, walkTree, type TreeEntry } from './tree.js';

let dir: string;
let store: OciStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-rootfs-'));
  store = await OciStore.open(join(dir, 'store'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The tiny image with one more layer on top, which replaces etc/motd and adds an app file. */
async function appRelease(base: Descriptor, version = '1'): Promise<Descriptor> {
  const manifest = await store.getManifest(base.digest);
  const config = JSON.parse((await store.getBlob(manifest.config.digest)).toString()) as {
    rootfs: { diff_ids: string[] };
  };
  const app = await buildLayer(
    [
      { path: 'etc/motd', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from('app release\n') },
      {
        path: 'app/server.js',
        type: 'file',
        mode: 0o644,
        uid: 0,
        gid: 0,
        content: Buffer.from(`${version}\n`),
      },
    ],
    { mtime: 1_700_000_000 },
  );
  await store.putBlob(app.blob, app.descriptor.mediaType);
  const configDesc = await store.putJson(
    { ...config, rootfs: { type: 'layers', diff_ids: [...config.rootfs.diff_ids, app.diffId] } },
    MediaType.ImageConfig,
  );
  return store.putManifest({
    schemaVersion: 2,
    mediaType: MediaType.ImageManifest,
    config: configDesc,
    layers: [...manifest.layers, app.descriptor],
  });
}

describe('ensureRootfs', () => {
  it('records the manifest of the files it unpacked, beside the root', async () => {
    const { descriptor } = await buildTinyImage(store, 'app:1');
    const root = await ensureRootfs(store, descriptor.digest, join(dir, 'rootfs'));
    const files = await readFilesManifest(root);
    expect(files).toEqual(await walkTree(root, { ignore: RUNTIME_MOUNT_POINTS }));
    expect(files!.map((f) => f.path)).toContain('usr/bin/app');
  });

  it("unpacks an app release onto a hard-link copy of its base's root, leaving the base untouched", async () => {
    const { descriptor: base } = await buildTinyImage(store, 'app:1');
    const rootfsDir = join(dir, 'rootfs');
    const baseRoot = await ensureRootfs(store, base.digest, rootfsDir);
    const next = await appRelease(base);
    const root = await ensureRootfs(store, next.digest, rootfsDir);

    // The release's root is its layers applied, as a full unpack would make it.
    expect(await readFile(join(root, 'etc', 'motd'), 'utf8')).toBe('app release\n');
    expect(await readFile(join(root, 'app', 'server.js'), 'utf8')).toBe('1\n');
    // Unchanged files share the base's inodes; the replaced one does not, and the base keeps its own.
    expect((await lstat(join(root, 'usr/bin/app'))).ino).toBe(
      (await lstat(join(baseRoot, 'usr/bin/app'))).ino,
    );
    expect((await lstat(join(root, 'etc/motd'))).ino).not.toBe((await lstat(join(baseRoot, 'etc/motd'))).ino);
    expect(await readFile(join(baseRoot, 'etc', 'motd'), 'utf8')).toBe('hello from kiln\n');
    // Both manifests describe their roots exactly.
    for (const r of [baseRoot, root]) {
      const files = (await readFilesManifest(r))!;
      expect((await compareTree(r, files, { ignore: RUNTIME_MOUNT_POINTS })).drift).toEqual([]);
      expect(files).toEqual(await walkTree(r, { ignore: RUNTIME_MOUNT_POINTS }));
    }
  });

  it("keeps the root of an app image's lower layers, so each later app release unpacks only its app layer", async () => {
    const { descriptor: base } = await buildTinyImage(store, 'app:1');
    const rootfsDir = join(dir, 'rootfs');
    const first = await ensureRootfs(store, (await appRelease(base, '1')).digest, rootfsDir);
    const second = await ensureRootfs(store, (await appRelease(base, '2')).digest, rootfsDir);
    expect(await readFile(join(first, 'app', 'server.js'), 'utf8')).toBe('1\n');
    expect(await readFile(join(second, 'app', 'server.js'), 'utf8')).toBe('2\n');
    // Both share the kept lower root's files, and each manifest describes its own root exactly.
    expect((await lstat(join(second, 'usr/bin/app'))).ino).toBe(
      (await lstat(join(first, 'usr/bin/app'))).ino,
    );
    for (const r of [first, second]) {
      expect(
        (await compareTree(r, (await readFilesManifest(r))!, { ignore: RUNTIME_MOUNT_POINTS })).drift,
      ).toEqual([]);
    }
  });
});

describe('ensureRootfs with the image manifest of files attached', () => {
  /** Attaches `files` (default: computed from the image's layers) as the image's manifest of files. */
  async function attachFiles(image: Descriptor, edit: (files: TreeEntry[]) => TreeEntry[] = (f) => f) {
    const manifest = await store.getManifest(image.digest);
    const blobs = await Promise.all(manifest.layers.map((l) => store.getBlob(l.digest)));
    const files = edit(await filesOfLayers(blobs));
    return store.attach(image, {
      artifactType: FILES_ARTIFACT_TYPE,
      mediaType: FILES_ARTIFACT_TYPE,
      data: canonicalJson({ image: image.digest, files }),
    });
  }

  it('checks the root against it and keeps it as the manifest drift is checked against', async () => {
    const { descriptor } = await buildTinyImage(store, 'app:1');
    await attachFiles(descriptor);
    const app = await appRelease(descriptor);
    await attachFiles(app);
    for (const image of [descriptor, app]) {
      const root = await ensureRootfs(store, image.digest, join(dir, 'rootfs'));
      expect(await filesManifestSource(root)).toBe('image');
      expect(await readFilesManifest(root)).toEqual(await walkTree(root, { ignore: RUNTIME_MOUNT_POINTS }));
    }
  });

  it('refuses a root that is not what the attached manifest lists', async () => {
    const { descriptor } = await buildTinyImage(store, 'app:1');
    await attachFiles(descriptor, (files) =>
      files.map((f) => (f.path === 'etc/motd' ? { ...f, sha256: `sha256:${'0'.repeat(64)}` } : f)),
    );
    await expect(ensureRootfs(store, descriptor.digest, join(dir, 'rootfs'))).rejects.toThrow(
      /unpacks to a root that is not what its manifest of files sha256:[0-9a-f]{64} lists: \/etc\/motd modified/,
    );
  });

  it('without one, records the root as unpacked', async () => {
    const { descriptor } = await buildTinyImage(store, 'app:1');
    const root = await ensureRootfs(store, descriptor.digest, join(dir, 'rootfs'));
    expect(await filesManifestSource(root)).toBe('unpacked');
  });
});
