import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, IntegrityError } from '../errors/index.js';
import { buildLayer } from './tar.js';
import { craftTar } from '../../test/support/oci-fixtures.js';
import type { LayerEntry } from './types.js';
import { unpackLayers } from './unpack.js';

const MTIME = 1_600_000_000;
const isRoot = process.getuid?.() === 0;

const temps: string[] = [];
afterEach(async () => {
  for (const t of temps.splice(0)) await rm(t, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kiln-unpack-'));
  temps.push(d);
  return d;
}
function f(path: string, content: string, extra: Partial<LayerEntry> = {}): LayerEntry {
  return { path, type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from(content), ...extra };
}
async function layer(...entries: LayerEntry[]): Promise<Buffer> {
  return (await buildLayer(entries, { mtime: MTIME })).blob;
}

/**
 * Escape tests aim at a sentinel directory outside the unpack area instead of the host's /etc: the
 * attack has the same shape, and a regression fails the test rather than damaging the machine.
 */
async function escapeFixture(): Promise<{ work: string; dest: string; outside: string }> {
  const work = await tempDir();
  const outside = await tempDir();
  await writeFile(join(outside, 'victim'), 'original');
  return { work, dest: join(work, 'rootfs'), outside };
}
async function expectNothingWritten(work: string, outside: string): Promise<void> {
  expect(await readdir(work)).toEqual([]);
  expect((await readdir(outside)).sort()).toEqual(['victim']);
  expect(await readFile(join(outside, 'victim'), 'utf8')).toBe('original');
}

describe('unpackLayers', () => {
  it('applies layers in order with modes, owners, mtimes, symlinks and hard links', async () => {
    const work = await tempDir();
    const dest = join(work, 'rootfs');
    await unpackLayers(
      [
        await layer(
          f('etc/motd', 'v1'),
          f('usr/bin/su', 'su', { mode: 0o4755 }),
          f('home/app/secret', 's', { mode: 0o600, uid: 1000, gid: 1001 }),
        ),
        await layer(
          f('etc/motd', 'v2'),
          { path: 'usr/bin/su2', type: 'link', mode: 0o755, uid: 0, gid: 0, linkname: 'usr/bin/su' },
          {
            path: 'etc/localtime',
            type: 'symlink',
            mode: 0o777,
            uid: 0,
            gid: 0,
            linkname: '/usr/share/zoneinfo/UTC',
          },
          { path: 'opt/ro', type: 'directory', mode: 0o555, uid: 0, gid: 0 },
          f('opt/ro/inside', 'x', { mode: 0o444 }),
          { path: 'run/pipe', type: 'fifo', mode: 0o600, uid: 0, gid: 0 },
        ),
      ],
      dest,
    );
    expect(await readFile(join(dest, 'etc/motd'), 'utf8')).toBe('v2');
    const su = await stat(join(dest, 'usr/bin/su'));
    expect(su.mode & 0o7777).toBe(0o4755);
    expect((await stat(join(dest, 'usr/bin/su2'))).ino).toBe(su.ino);
    expect(await readlink(join(dest, 'etc/localtime'))).toBe('/usr/share/zoneinfo/UTC');
    expect((await stat(join(dest, 'opt/ro'))).mode & 0o777).toBe(0o555);
    expect(Math.round((await stat(join(dest, 'opt/ro'))).mtimeMs / 1000)).toBe(MTIME);
    expect(Math.round((await stat(join(dest, 'etc/motd'))).mtimeMs / 1000)).toBe(MTIME);
    expect(Math.round((await lstat(join(dest, 'etc/localtime'))).mtimeMs / 1000)).toBe(MTIME);
    expect((await stat(join(dest, 'run/pipe'))).isFIFO()).toBe(true);
    const secret = await stat(join(dest, 'home/app/secret'));
    expect(secret.mode & 0o777).toBe(0o600);
    if (isRoot) expect([secret.uid, secret.gid]).toEqual([1000, 1001]);
    expect(await readdir(work)).toEqual(['rootfs']);
  });

  it('keeps files owned by the caller when preserveOwnership is false', async () => {
    const dest = join(await tempDir(), 'rootfs');
    await unpackLayers([await layer(f('a', 'x', { uid: 1234, gid: 1234 }))], dest, {
      preserveOwnership: false,
    });
    expect((await stat(join(dest, 'a'))).uid).toBe(process.getuid!());
  });

  it('handles whiteouts and opaque directories, sparing what the same layer adds', async () => {
    const dest = join(await tempDir(), 'rootfs');
    await unpackLayers(
      [
        await layer(
          f('a/x', 'x'),
          f('a/y', 'y'),
          f('b/z', 'z'),
          f('c/old', 'old'),
          f('c/sub/deep', 'deep'),
          f('keep', 'k'),
        ),
        await layer(
          f('a/.wh.x', ''),
          f('.wh.b', ''),
          // "+" sorts before ".wh..wh..opq", so this entry comes first and must survive the opaque marker.
          f('c/+early', 'early'),
          f('c/.wh..wh..opq', ''),
          f('c/new', 'new'),
          f('.wh.not-there', ''),
        ),
      ],
      dest,
    );
    expect((await readdir(dest)).sort()).toEqual(['a', 'c', 'keep']);
    expect(await readdir(join(dest, 'a'))).toEqual(['y']);
    expect((await readdir(join(dest, 'c'))).sort()).toEqual(['+early', 'new']);
  });

  it('refuses a write through a symlink to the root (evil -> /), leaving nothing', async () => {
    const { work, dest, outside } = await escapeFixture();
    const layer0 = await craftTar([{ name: 'evil', type: 'symlink', linkname: '/' }]);
    const layer1 = await craftTar([{ name: `evil${outside}/victim`, body: 'pwned' }]);
    const err = await unpackLayers([layer0, layer1], dest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(
      /unpacking layer 1 \(sha256:[0-9a-f]{64}\): entry "evil\/tmp\/[^"]+\/victim": symlink "evil" -> "\/" points at the image root/,
    );
    await expectNothingWritten(work, outside);
  });

  it('refuses a write through a relative symlink climbing out of the root', async () => {
    const { work, dest, outside } = await escapeFixture();
    const layer0 = await craftTar([
      { name: 'sub/', type: 'directory' },
      { name: 'sub/up', type: 'symlink', linkname: `../../../../../../../../../..${outside}` },
    ]);
    const layer1 = await craftTar([{ name: 'sub/up/victim', body: 'pwned' }]);
    await expect(unpackLayers([layer0, layer1], dest)).rejects.toThrow(
      /layer 1 .*entry "sub\/up\/victim": symlink "sub\/up" -> "[^"]+" climbs above the image root/,
    );
    await expectNothingWritten(work, outside);
  });

  it('replaces a symlink by a file instead of writing through it', async () => {
    const { dest, outside } = await escapeFixture();
    const layer0 = await craftTar([{ name: 'x', type: 'symlink', linkname: join(outside, 'victim') }]);
    const layer1 = await craftTar([{ name: 'x', body: 'mine' }]);
    await unpackLayers([layer0, layer1], dest);
    expect((await lstat(join(dest, 'x'))).isFile()).toBe(true);
    expect(await readFile(join(outside, 'victim'), 'utf8')).toBe('original');
  });

  it('resolves an absolute symlink on the path inside the root', async () => {
    const { dest, outside } = await escapeFixture();
    // data -> <outside>: inside the image that names <root><outside>, which layer 0 creates.
    const layer0 = await craftTar([
      { name: `${outside.slice(1)}/`, type: 'directory' },
      { name: 'data', type: 'symlink', linkname: outside },
    ]);
    const layer1 = await craftTar([{ name: 'data/victim', body: 'inside' }]);
    await unpackLayers([layer0, layer1], dest);
    expect(await readFile(join(dest, outside, 'victim'), 'utf8')).toBe('inside');
    expect(await readFile(join(outside, 'victim'), 'utf8')).toBe('original');
  });

  it('refuses hard links through symlinks and out of the root', async () => {
    const { work, dest, outside } = await escapeFixture();
    const viaLink = [
      await craftTar([{ name: 'hostdir', type: 'symlink', linkname: outside }]),
      await craftTar([{ name: 'stolen', type: 'link', linkname: 'hostdir/victim' }]),
    ];
    await expect(unpackLayers(viaLink, dest)).rejects.toThrow(
      /layer 1 .*entry "stolen": hard link target "hostdir\/victim" passes through symlink "hostdir"/,
    );
    await expectNothingWritten(work, outside);
    const climbing = [
      await craftTar([{ name: 'stolen', type: 'link', linkname: `../../../../../../..${outside}/victim` }]),
    ];
    await expect(unpackLayers(climbing, dest)).rejects.toThrow(
      /unpacking layer 0 .*entry "stolen": hard link target .* contains a "\.\." segment/,
    );
    await expectNothingWritten(work, outside);
  });

  it('refuses .. and absolute paths and device nodes, and leaves nothing on failure', async () => {
    const work = await tempDir();
    const dest = join(work, 'rootfs');
    const good = await layer(f('a', 'a'), f('b/c', 'c'));
    for (const [bad, message] of [
      [
        await craftTar([
          { name: 'ok', body: 'x' },
          { name: '../escape', body: 'x' },
        ]),
        /layer 1 .*entry "\.\.\/escape": path contains a "\.\." segment/,
      ],
      [await craftTar([{ name: '/abs', body: 'x' }]), /layer 1 .*entry "\/abs": path is absolute/],
      [
        await craftTar([{ name: 'dev/null', type: 'character-device' }]),
        /layer 1 .*entry "dev\/null": character-device refused \(set allowDevices/,
      ],
    ] as const) {
      const err = await unpackLayers([good, bad], dest).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toMatch(message);
      expect(await readdir(work)).toEqual([]);
    }
  });

  it.runIf(isRoot)('creates device nodes only with allowDevices (as root)', async () => {
    const dest = join(await tempDir(), 'rootfs');
    const devices = await layer({
      path: 'dev/null',
      type: 'character-device',
      mode: 0o666,
      uid: 0,
      gid: 0,
      devmajor: 1,
      devminor: 3,
    });
    await unpackLayers([devices], dest, { allowDevices: true });
    const st = await stat(join(dest, 'dev/null'));
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe((1 << 8) | 3);
    expect(st.mode & 0o777).toBe(0o666);
  });

  it('refuses an existing destination', async () => {
    const work = await tempDir();
    await mkdir(join(work, 'rootfs'));
    await expect(unpackLayers([await layer(f('a', 'a'))], join(work, 'rootfs'))).rejects.toBeInstanceOf(
      ConflictError,
    );
    expect(await readdir(join(work, 'rootfs'))).toEqual([]);
  });
});
