/**
 * Shared helpers for the oci context's tests: a tiny real image and checks for the independent
 * Debian tools the tests compare against. Not exported from index.ts.
 */
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { pack } from 'tar-stream';
import { buildLayer } from '../../src/oci/index.js';
import type { OciStore } from '../../src/oci/index.js';
import { MediaType, type Descriptor, type ImageConfig, type LayerEntry } from '../../src/oci/index.js';

/** A small image: two layers (files, a symlink, a hard link, a whiteout-free tree) and a config. */
export async function buildTinyImage(
  store: OciStore,
  ref: string | undefined,
  marker = 'hello from kiln',
): Promise<{ descriptor: Descriptor; layers: Buffer[]; config: ImageConfig }> {
  const base: LayerEntry[] = [
    { path: 'etc/motd', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from(`${marker}\n`) },
    {
      path: 'usr/bin/app',
      type: 'file',
      mode: 0o755,
      uid: 0,
      gid: 0,
      content: Buffer.from('#!/bin/sh\necho app\n'),
    },
    { path: 'bin', type: 'symlink', mode: 0o777, uid: 0, gid: 0, linkname: 'usr/bin' },
  ];
  const top: LayerEntry[] = [
    {
      path: 'srv/data/readme',
      type: 'file',
      mode: 0o640,
      uid: 1000,
      gid: 1000,
      content: Buffer.from('data\n'),
    },
    { path: 'usr/bin/app2', type: 'link', mode: 0o755, uid: 0, gid: 0, linkname: 'usr/bin/app' },
  ];
  const built = [
    await buildLayer(base, { mtime: 1_700_000_000 }),
    await buildLayer(top, { mtime: 1_700_000_000 }),
  ];
  for (const l of built) await store.putBlob(l.blob, l.descriptor.mediaType);
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/usr/bin/app'], Env: ['PATH=/usr/bin:/bin'] },
    rootfs: { type: 'layers', diff_ids: built.map((l) => l.diffId) },
  };
  const configDesc = await store.putJson(config, MediaType.ImageConfig);
  const descriptor = await store.putManifest(
    {
      schemaVersion: 2,
      mediaType: MediaType.ImageManifest,
      config: configDesc,
      layers: built.map((l) => l.descriptor),
    },
    ref !== undefined ? { ref } : {},
  );
  return { descriptor, layers: built.map((l) => l.blob), config };
}

/**
 * Fails (never skips) when a Debian tool the tests rely on is missing, saying how to install it:
 * a test that silently skips its independent check cannot fail, which is a defect.
 */
export async function requireTools(...tools: string[]): Promise<void> {
  const missing: string[] = [];
  for (const tool of tools) {
    const found = await Promise.any(
      (process.env.PATH ?? '/usr/bin').split(':').map((dir) => access(`${dir}/${tool}`, constants.X_OK)),
    ).then(
      () => true,
      () => false,
    );
    if (!found) missing.push(tool);
  }
  if (missing.length > 0) {
    throw new Error(
      `missing ${missing.join(', ')}: these tests check kiln against independent tools; apt-get install skopeo umoci docker-registry openssl`,
    );
  }
}

/** One entry for {@link craftTar}, as an attacker's tool would write it (no checks, no parents). */
export interface CraftedEntry {
  readonly name: string;
  readonly type?: 'file' | 'link' | 'symlink' | 'directory' | 'character-device' | 'fifo';
  readonly linkname?: string;
  readonly body?: string;
  readonly mode?: number;
}

/** A plain tar written with tar-stream directly, bypassing buildLayer's validation. */
export async function craftTar(entries: readonly CraftedEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => p.on('end', () => resolve()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      const header = {
        name: e.name,
        type,
        linkname: e.linkname,
        mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
        mtime: new Date(0),
      };
      if (type === 'file') p.entry(header, e.body ?? '', done);
      else p.entry(header, done);
    });
  }
  p.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** podman's global flags for a test: storage of its own (vfs) under `dir`, never the host's. */
export function podmanStorage(dir: string): string[] {
  return ['--storage-driver', 'vfs', '--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'run')];
}

/**
 * `podman run` flags every test here needs: runc, no network, and limits podman may set (this host
 * refuses to raise RLIMIT_NPROC/NOFILE, which podman does by default).
 */
export const PODMAN_RUN_FLAGS: readonly string[] = [
  '--runtime',
  'runc',
  '--network',
  'none',
  '--ulimit',
  'nofile=1024:1024',
  '--ulimit',
  'nproc=1024:1024',
];
