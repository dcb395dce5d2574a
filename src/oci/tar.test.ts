import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { IntegrityError, ValidationError } from '../errors/index.js';
import { sha256Digest } from './digest.js';
import { readLayer } from './tar-read.js';
import { buildLayer } from './tar.js';
import { craftTar } from '../../test/support/oci-fixtures.js';
import type { LayerEntry } from './types.js';

const MTIME = 1_700_000_000;

function file(path: string, content: string, extra: Partial<LayerEntry> = {}): LayerEntry {
  return { path, type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from(content), ...extra };
}
function dir(path: string, extra: Partial<LayerEntry> = {}): LayerEntry {
  return { path, type: 'directory', mode: 0o755, uid: 0, gid: 0, ...extra };
}

const FIXTURE: LayerEntry[] = [
  dir('etc'),
  file('etc/hostname', 'kiln\n'),
  file('usr/bin/hello', '#!/bin/sh\necho hello\n', { mode: 0o755 }),
  { path: 'bin', type: 'symlink', mode: 0o777, uid: 0, gid: 0, linkname: 'usr/bin' },
  { path: 'usr/bin/hi', type: 'link', mode: 0o755, uid: 0, gid: 0, linkname: 'usr/bin/hello' },
  file('home/app/.profile', 'export A=1\n', { uid: 1000, gid: 1000, mode: 0o600 }),
  file('usr/bin/sudo', 'x', { mode: 0o4755 }),
];

/** A raw ustar header, for archives tar-stream would refuse to write. */
function ustarHeader(name: string, typeflag: string, size: number, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write(typeflag, 156);
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.write('        ', 148);
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const temps: string[] = [];
afterEach(async () => {
  for (const t of temps.splice(0)) await rm(t, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kiln-tar-'));
  temps.push(d);
  return d;
}

describe('buildLayer', () => {
  it('gives byte-identical blobs and diffIds for the same entries in any order', async () => {
    const first = await buildLayer(FIXTURE, { mtime: MTIME });
    for (const seed of [1, 2, 3, 42]) {
      const again = await buildLayer(shuffled(FIXTURE, seed), { mtime: MTIME });
      expect(again.blob.equals(first.blob)).toBe(true);
      expect(again.diffId).toBe(first.diffId);
    }
    const later = await buildLayer(FIXTURE, { mtime: MTIME + 1 });
    expect(later.diffId).not.toBe(first.diffId);
  });

  it('matches the golden digests of a fixed entry list', async () => {
    const layer = await buildLayer(FIXTURE, { mtime: MTIME });
    // Golden values: a change here changes every image digest kiln produces. Update them only on purpose.
    expect(layer.diffId).toBe('sha256:c8a0f789014e176dd43d46a8aacb72805a9d4fe7bd5e300688c082b6a76dd115');
    expect(layer.descriptor).toEqual({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: 'sha256:b180d1a8424857d31a0bd65c6fd2c677feefe1d1cd8478ebc5548c61ae13d29b',
      size: layer.blob.length,
    });
    expect(layer.descriptor.digest).toBe(sha256Digest(layer.blob));
    expect(layer.diffId).toBe(sha256Digest(gunzipSync(layer.blob)));
    expect(layer.uncompressedSize).toBe(gunzipSync(layer.blob).length);
    // Read the raw headers without tar-stream: fixed mtime, empty uname/gname, in sorted order.
    const tar = gunzipSync(layer.blob);
    const names: string[] = [];
    for (let at = 0; tar[at] !== 0;) {
      const header = tar.subarray(at, at + 512);
      names.push(header.toString('utf8', 0, 100).replace(/\0.*$/s, ''));
      expect(Number.parseInt(header.toString('ascii', 136, 147), 8)).toBe(MTIME);
      expect(header.subarray(265, 329).every((b) => b === 0)).toBe(true);
      const size = Number.parseInt(header.toString('ascii', 124, 135), 8);
      at += 512 + Math.ceil(size / 512) * 512;
    }
    expect(names).toEqual([
      'bin',
      'etc/',
      'etc/hostname',
      'home/',
      'home/app/',
      'home/app/.profile',
      'usr/',
      'usr/bin/',
      'usr/bin/hello',
      'usr/bin/hi',
      'usr/bin/sudo',
    ]);
  });

  it('adds missing parents, sorts directories before contents, keeps the last duplicate and mode 0', async () => {
    const layer = await buildLayer(
      [
        file('b/c/d', 'one'),
        file('a-b', 'x'),
        file('b/c/d', 'two', { mode: 0 }),
        dir('b', { mode: 0o700, uid: 5, gid: 6 }),
      ],
      { mtime: MTIME },
    );
    const entries = await readLayer(layer.blob);
    expect(entries.map((e) => [e.path, e.type, e.mode, e.uid])).toEqual([
      ['a-b', 'file', 0o644, 0],
      ['b', 'directory', 0o700, 5],
      ['b/c', 'directory', 0o755, 0],
      ['b/c/d', 'file', 0, 0],
    ]);
    expect(entries[3]!.content!.toString()).toBe('two');
    expect(entries.every((e) => e.mtime === MTIME)).toBe(true);
  });

  it('writes long paths, long link targets and non-ASCII names that GNU tar reads back', async () => {
    const long = `${'deep/'.repeat(40)}${'n'.repeat(150)}.txt`;
    const target = `/${'t'.repeat(200)}`;
    const layer = await buildLayer(
      [
        file(long, 'long'),
        { path: 'l', type: 'symlink', mode: 0o777, uid: 0, gid: 0, linkname: target },
        file('ünï/cödé', 'u'),
      ],
      { mtime: MTIME },
    );
    const back = await readLayer(layer.blob);
    expect(back.find((e) => e.path === long)?.content?.toString()).toBe('long');
    expect(back.find((e) => e.path === 'l')?.linkname).toBe(target);
    expect(back.find((e) => e.path === 'ünï/cödé')?.content?.toString()).toBe('u');
    const d = await tempDir();
    await writeFile(join(d, 'layer.tar.gz'), layer.blob);
    const { stdout } = await execa('tar', ['-tzf', join(d, 'layer.tar.gz')]);
    expect(stdout.split('\n')).toContain(long);
    expect(stdout.split('\n')).toContain('ünï/cödé');
  });

  it('writes a hard link after its target even when the link sorts first, root-relative', async () => {
    const layer = await buildLayer(
      [
        file('z/target', 'shared'),
        { path: 'a/link', type: 'link', mode: 0o644, uid: 0, gid: 0, linkname: './z/target' },
      ],
      { mtime: MTIME },
    );
    const entries = await readLayer(layer.blob);
    const order = entries.map((e) => e.path);
    expect(order.indexOf('a/link')).toBeGreaterThan(order.indexOf('z/target'));
    expect(entries.find((e) => e.path === 'a/link')?.linkname).toBe('z/target');
    const d = await tempDir();
    await writeFile(join(d, 'l.tgz'), layer.blob);
    await execa('tar', ['-xzf', join(d, 'l.tgz'), '-C', d]);
    expect((await stat(join(d, 'a/link'))).ino).toBe((await stat(join(d, 'z/target'))).ino);
    expect(await readFile(join(d, 'a/link'), 'utf8')).toBe('shared');
  });

  it('reports every invalid entry at once', async () => {
    const err = await buildLayer(
      [
        file('/etc/passwd', 'x'),
        file('../up', 'x'),
        file('f', 'x'),
        file('f/inside', 'x'),
        file('m', 'x', { mode: 0o17777 }),
        { path: 'h', type: 'link', mode: 0o644, uid: 0, gid: 0, linkname: '../x' },
      ],
      { mtime: MTIME },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    const issues = (err as ValidationError).issues.map((i) => i.message).join('\n');
    expect(issues).toMatch(/"\/etc\/passwd" is absolute/);
    expect(issues).toMatch(/"\.\.\/up" contains a "\.\." segment/);
    expect(issues).toMatch(/"f\/inside" is inside "f", which is a file/);
    expect(issues).toMatch(/mode 8191/);
    expect(issues).toMatch(/hard link target "\.\.\/x"/);
  });
});

describe('readLayer', () => {
  it('round-trips every entry type with owners, modes, targets and mtimes', async () => {
    const entries: LayerEntry[] = [
      ...FIXTURE,
      { path: 'dev/null', type: 'character-device', mode: 0o666, uid: 0, gid: 0, devmajor: 1, devminor: 3 },
      { path: 'run/fifo', type: 'fifo', mode: 0o600, uid: 0, gid: 0 },
      {
        path: 'etc/localtime',
        type: 'symlink',
        mode: 0o777,
        uid: 0,
        gid: 0,
        linkname: '/usr/share/zoneinfo/UTC',
      },
    ];
    const back = await readLayer((await buildLayer(entries, { mtime: MTIME })).blob);
    const byPath = new Map(back.map((e) => [e.path, e]));
    for (const e of entries) {
      const got = byPath.get(e.path)!;
      expect(got, e.path).toMatchObject({ type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: MTIME });
      if (e.type === 'file') expect(got.content!.equals(e.content!)).toBe(true);
      if (e.linkname) expect(got.linkname).toBe(e.linkname);
    }
    expect(byPath.get('dev/null')).toMatchObject({ devmajor: 1, devminor: 3 });
    expect(byPath.has('usr')).toBe(true);
  });

  it('reads plain tar too and strips leading ./', async () => {
    const tar = await craftTar([
      { name: './', type: 'directory' },
      { name: './etc/', type: 'directory' },
      { name: './etc/x', body: 'y' },
    ]);
    const back = await readLayer(tar);
    expect(back.map((e) => e.path)).toEqual(['etc', 'etc/x']);
    expect(back[1]!.content!.toString()).toBe('y');
  });

  it.each([
    ['../etc/passwd', { name: '../etc/passwd' }, /entry "\.\.\/etc\/passwd": path contains a "\.\." segment/],
    ['a/../../x', { name: 'a/../../x' }, /entry "a\/\.\.\/\.\.\/x": path contains a "\.\." segment/],
    ['/etc/passwd', { name: '/etc/passwd' }, /entry "\/etc\/passwd": path is absolute/],
    [
      'hardlink to ../x',
      { name: 'h', type: 'link' as const, linkname: '../x' },
      /entry "h": hard link target "\.\.\/x" contains a "\.\." segment/,
    ],
    [
      'hardlink to /etc/shadow',
      { name: 'h', type: 'link' as const, linkname: '/etc/shadow' },
      /entry "h": hard link target "\/etc\/shadow" is absolute/,
    ],
  ])('refuses %s', async (_label, entry, message) => {
    for (const blob of [await craftTar([entry]), gzipSync(await craftTar([entry]))]) {
      const err = await readLayer(blob).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toMatch(message);
    }
  });

  it('allows symlinks with absolute targets', async () => {
    const back = await readLayer(await craftTar([{ name: 'lib', type: 'symlink', linkname: '/usr/lib' }]));
    expect(back).toMatchObject([{ path: 'lib', type: 'symlink', linkname: '/usr/lib' }]);
  });

  it('refuses unknown entry types', async () => {
    const tar = Buffer.concat([ustarHeader('weird', 'V', 0), Buffer.alloc(1024)]);
    await expect(readLayer(tar)).rejects.toThrow(/entry "weird": unsupported entry type/);
  });

  it('refuses garbage that is not a tar', async () => {
    await expect(readLayer(gzipSync(Buffer.alloc(2048, 7)))).rejects.toThrow(IntegrityError);
  });

  it('stops a gzip bomb while streaming, from the declared size', async () => {
    // 2 GiB of zeros behind one header, as a ~2 MiB stream of concatenated gzip members.
    const MiB = 1024 ** 2;
    const zeros = gzipSync(Buffer.alloc(MiB));
    const bomb = Buffer.concat([
      gzipSync(ustarHeader('bomb', '0', 2048 * MiB)),
      ...Array.from({ length: 2048 }, () => zeros),
    ]);
    expect(bomb.length).toBeLessThan(8 * MiB);
    const started = Date.now();
    const small = await readLayer(bomb, { maxTotalBytes: MiB }).catch((e: unknown) => e);
    expect(small).toBeInstanceOf(IntegrityError);
    expect((small as Error).message).toMatch(
      /entry "bomb": size 2147483648 bytes exceeds the per-file limit|entry "bomb": contents total more than/,
    );
    const byDefault = await readLayer(bomb).catch((e: unknown) => e);
    expect((byDefault as Error).message).toMatch(
      /entry "bomb": size 2147483648 bytes exceeds the per-file limit of 1073741824 bytes/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('stops a stream that runs on past what its entries account for', async () => {
    // A valid one-file tar followed by 2 GiB of zero blocks, which tar readers skip as padding.
    const MiB = 1024 ** 2;
    const zeros = gzipSync(Buffer.alloc(MiB));
    const tail = Array.from({ length: 2048 }, () => zeros);
    const bomb = Buffer.concat([gzipSync(await craftTar([{ name: 'ok', body: 'fine' }])), ...tail]);
    const started = Date.now();
    await expect(readLayer(bomb)).rejects.toThrow(
      /more than its 1 entries account for; refusing it as a possible gzip bomb/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await readLayer(gzipSync(await craftTar([{ name: 'ok', body: 'fine' }])))).toHaveLength(1);
  });

  it('stops when many small files add up past the total limit', async () => {
    const entries = Array.from({ length: 40 }, (_, i) =>
      file(`f${String(i).padStart(2, '0')}`, 'z'.repeat(1024 ** 2)),
    );
    const layer = await buildLayer(entries, { mtime: MTIME });
    await expect(readLayer(layer.blob, { maxTotalBytes: 8 * 1024 ** 2 })).rejects.toThrow(
      /entry "f08": contents total more than the limit of 8388608 bytes/,
    );
    await expect(readLayer(layer.blob, { maxEntries: 10 })).rejects.toThrow(/layer has more than 10 entries/);
    await expect(readLayer(layer.blob, { maxFileBytes: 1000 })).rejects.toThrow(
      /entry "f00": size 1048576 bytes exceeds/,
    );
    expect(await readLayer(layer.blob, { maxTotalBytes: 41 * 1024 ** 2 })).toHaveLength(40);
  });
});
