import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { pack as tarPack, type Header } from 'tar-stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, UnavailableError } from '../../errors/index.js';
import {
  buildDeb,
  startTestArchive,
  type FixturePackage,
  type TestArchive,
} from '../../../test/support/debian-archive.js';
import { openArchive } from './archive.js';
import { fetchDeb, readDeb } from './deb.js';
import type { PackageIndex, PackageRecord } from './package-index.js';
import { archiveSpec, readAptSources } from './sources.js';

const run = promisify(execFile);
type TarHeader = Partial<Header> & { name: string };
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const LONG = `usr/share/${'very-long-directory-name/'.repeat(5)}file.txt`;

const TOOL: FixturePackage = {
  name: 'tool',
  version: '1:2.0-1',
  depends: 'libc6 (>= 2.36)',
  files: {
    'usr/bin/tool': { content: '#!/bin/sh\necho tool\n', mode: 0o755 },
    'usr/bin/tool-suid': { content: 'x', mode: 0o4755 },
    'usr/bin/tool-alias': { symlink: 'tool' },
    'usr/lib/tool/abs-link': { symlink: '/usr/bin/tool' },
    'usr/bin/tool-hard': { hardlink: 'usr/bin/tool' },
    'etc/tool.conf': 'answer = 42\n',
    [LONG]: 'deep\n',
  },
  copyright: { license: 'Apache-2.0' },
};

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'kiln-deb-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('the fixture .deb builder', () => {
  it('builds byte-identical .debs on every run', async () => {
    await buildDeb(TOOL, join(work, 'a.deb'), join(work, 'build-a'));
    await buildDeb(TOOL, join(work, 'b.deb'), join(work, 'build-b'));
    expect(sha256(await readFile(join(work, 'a.deb')))).toBe(sha256(await readFile(join(work, 'b.deb'))));
  });
});

describe('readDeb', () => {
  it.each(['gzip', 'xz', 'none'] as const)('reads a %s .deb as dpkg-deb lists it', async (compression) => {
    const file = join(work, 'tool.deb');
    await buildDeb(TOOL, file, join(work, 'build'), compression);
    const { control, entries } = readDeb(await readFile(file), 'tool');

    expect(control).toMatchObject({
      Package: 'tool',
      Version: '1:2.0-1',
      Architecture: 'amd64',
      Depends: 'libc6 (>= 2.36)',
    });
    // dpkg-deb's own listing is the reference: same paths, types, modes and link targets, same order.
    const { stdout } = await run('dpkg-deb', ['--contents', file]);
    const listed = stdout
      .trimEnd()
      .split('\n')
      .map((line) => dpkgListing(line))
      .filter((e) => e.path !== '');
    expect(
      entries.map((e) => ({ path: e.path, type: e.type, mode: e.mode, link: e.linkname ?? '' })),
    ).toEqual(listed);
    expect(entries.every((e) => e.uid === 0 && e.gid === 0)).toBe(true);

    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(byPath.get('usr/bin/tool')?.content?.toString()).toBe('#!/bin/sh\necho tool\n');
    expect(byPath.get('usr/bin/tool-suid')?.mode).toBe(0o4755);
    expect(byPath.get(LONG)?.content?.toString()).toBe('deep\n');
    expect(byPath.get('usr/share/doc/tool/copyright')?.content?.toString()).toMatch(
      /^License: Apache-2\.0$/m,
    );
    expect(byPath.has('usr/share/doc/tool/changelog.Debian.gz')).toBe(true);
  });

  it('refuses zstd members with a clear reason', async () => {
    const file = join(work, 'tool.deb');
    await buildDeb(TOOL, file, join(work, 'build'), 'zstd');
    const data = await readFile(file);
    expect(() => readDeb(data, 'tool')).toThrow(UnavailableError);
    expect(() => readDeb(data, 'tool')).toThrow(
      /tool: control\.tar\.zst is zstd-compressed; zstd \.debs are not supported on Node 20/,
    );
  });

  it.each<[string, TarHeader, RegExp]>([
    ['a path with ..', { name: './usr/../../etc/passwd' }, /escapes the root/],
    ['an absolute path', { name: '/etc/passwd' }, /absolute path "\/etc\/passwd"/],
    [
      'a hard link out of the root',
      { name: './usr/x', type: 'link', linkname: '../../etc/shadow' },
      /escapes the root/,
    ],
  ])('refuses %s', async (_what, header, message) => {
    const deb = await handMadeDeb([{ name: './', type: 'directory' }, header]);
    expect(() => readDeb(deb, 'evil')).toThrow(IntegrityError);
    expect(() => readDeb(deb, 'evil')).toThrow(message);
  });

  it('reads ustar prefixes, pax long names and links, and devices', async () => {
    const prefixed = `./usr/share/${'p'.repeat(90)}/${'n'.repeat(60)}`;
    const paxed = `./usr/share/${'x'.repeat(250)}`;
    const deb = await handMadeDeb([
      { name: './', type: 'directory', mode: 0o755 },
      { name: prefixed, mode: 0o644 },
      { name: paxed, type: 'symlink', linkname: `../${'t'.repeat(200)}`, mode: 0o777 },
      { name: './dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    ]);
    expect(
      readDeb(deb, 'x').entries.map(({ path, type, linkname, devmajor, devminor }) => ({
        path,
        type,
        linkname,
        devmajor,
        devminor,
      })),
    ).toEqual([
      {
        path: prefixed.slice(2),
        type: 'file',
        linkname: undefined,
        devmajor: undefined,
        devminor: undefined,
      },
      {
        path: paxed.slice(2),
        type: 'symlink',
        linkname: `../${'t'.repeat(200)}`,
        devmajor: undefined,
        devminor: undefined,
      },
      { path: 'dev/null', type: 'character-device', linkname: undefined, devmajor: 1, devminor: 3 },
    ]);
  });

  it('refuses what is not a .deb', async () => {
    expect(() => readDeb(Buffer.from('hello'), 'x')).toThrow(/x: not a \.deb \(no ar magic\)/);
    const deb = await handMadeDeb([{ name: './a' }]);
    expect(() => readDeb(deb.subarray(0, deb.length - 10), 'x')).toThrow(/runs past the end of the file/);
  });
});

describe('fetchDeb', () => {
  let archive: TestArchive;
  let index: PackageIndex;
  let cacheDir: string;
  beforeAll(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'kiln-debcache-'));
    archive = await startTestArchive({
      packages: [TOOL, { name: 'evil', version: '1.0' }],
      corrupt: { debs: ['evil'] },
    });
    const sources = await readAptSources(archive.sourcesFile());
    index = await openArchive(archiveSpec({ suite: 'testing', sources, arch: 'amd64' }), { cacheDir });
  });
  afterAll(async () => {
    await archive?.close();
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  it('downloads once, then serves the verified cached copy', async () => {
    const record = index.newest('tool') as PackageRecord;
    const before = archive.requests.length;
    const data = await fetchDeb(record, work);
    expect(sha256(data)).toBe(record.sha256);
    expect(await readFile(join(work, 'debs', `${record.sha256}.deb`))).toEqual(data);
    expect(await fetchDeb(record, work)).toEqual(data);
    expect(archive.requests.slice(before)).toEqual([`/debian/${record.filename}`]);
  });

  it('deletes a damaged cached copy and names the package, URL and hashes', async () => {
    const record = index.newest('tool') as PackageRecord;
    const cached = join(work, 'debs', `${record.sha256}.deb`);
    const good = await fetchDeb(record, work);
    const bad = Buffer.from(good);
    bad[100] = (bad[100] ?? 0) ^ 1;
    await writeFile(cached, bad);
    const err = (await fetchDeb(record, work).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toContain(
      `cached .deb of tool 1:2.0-1 (${cached}, from ${archive.url}/${record.filename}) is damaged`,
    );
    expect(err.message).toContain(
      `expected ${record.size} bytes with sha256 ${record.sha256}, got ${bad.length} bytes with sha256 ${sha256(bad)}`,
    );
    await expect(stat(cached)).rejects.toThrow(/ENOENT/);
    expect(await fetchDeb(record, work)).toEqual(good);
  });

  it('refuses a tampered download and caches nothing', async () => {
    const record = index.newest('evil') as PackageRecord;
    const err = (await fetchDeb(record, work).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(
      new RegExp(
        `^evil 1\\.0 from ${archive.url}/pool/main/e/evil/evil_1\\.0_amd64\\.deb failed verification: expected ${record.size} bytes with sha256 ${record.sha256}, got ${record.size} bytes with sha256 [0-9a-f]{64}`,
      ),
    );
    await expect(stat(join(work, 'debs', `${record.sha256}.deb`))).rejects.toThrow(/ENOENT/);
  });
});

const TYPES: Record<string, string> = {
  d: 'directory',
  '-': 'file',
  l: 'symlink',
  h: 'link',
  c: 'character-device',
  b: 'block-device',
  p: 'fifo',
};

// `-rwsr-xr-x root/root 1 2023-11-14 22:13 ./usr/bin/tool-suid` → path, type, mode, link target.
function dpkgListing(line: string): { path: string; type: string; mode: number; link: string } {
  const m = /^(\S)(\S{9})\s+\S+\s+\d+\s+\S+\s+\S+\s+(.*?)(?: -> (.*)| link to (.*))?$/.exec(line);
  if (!m) throw new Error(`cannot read dpkg-deb line ${line}`);
  const [, kind = '', perms = '', path = '', symlink, hardlink] = m;
  let mode = 0;
  for (const [i, c] of [...perms].entries()) if (c !== '-' && !/[ST]/.test(c)) mode |= 1 << (8 - i);
  if (/[sS]/.test(perms[2] ?? '')) mode |= 0o4000;
  if (/[sS]/.test(perms[5] ?? '')) mode |= 0o2000;
  if (/[tT]/.test(perms[8] ?? '')) mode |= 0o1000;
  const clean = (p: string): string => p.replace(/^\.\//, '').replace(/\/$/, '').replace(/^\.$/, '');
  const type = hardlink !== undefined ? 'link' : (TYPES[kind] ?? kind);
  return { path: clean(path), type, mode, link: symlink ?? (hardlink !== undefined ? clean(hardlink) : '') };
}

/** A .deb assembled by hand, to carry entries dpkg-deb would never write. */
async function handMadeDeb(headers: TarHeader[]): Promise<Buffer> {
  const pack = async (entries: { header: TarHeader; body?: string }[]): Promise<Buffer> => {
    const p = tarPack();
    for (const { header, body } of entries) p.entry(header, body ?? '');
    p.finalize();
    const chunks: Buffer[] = [];
    for await (const c of p) chunks.push(c as Buffer);
    return gzipSync(Buffer.concat(chunks));
  };
  const control = await pack([
    { header: { name: './control' }, body: 'Package: evil\nVersion: 1\nArchitecture: all\n' },
  ]);
  const data = await pack(headers.map((header) => ({ header })));
  const member = (name: string, body: Buffer): Buffer => {
    const header = Buffer.alloc(60, ' ');
    header.write(name, 0);
    header.write('0', 16);
    header.write('0', 28);
    header.write('0', 34);
    header.write('100644', 40);
    header.write(String(body.length), 48);
    header.write('`\n', 58);
    return Buffer.concat([header, body, body.length % 2 ? Buffer.from('\n') : Buffer.alloc(0)]);
  };
  return Buffer.concat([
    Buffer.from('!<arch>\n'),
    member('debian-binary', Buffer.from('2.0\n')),
    member('control.tar.gz', control),
    member('data.tar.gz', data),
  ]);
}
