import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, UnavailableError } from '../../errors/index.js';
import {
  startTestArchive,
  type TestArchive,
  type TestArchiveOptions,
} from '../../../test/support/debian-archive.js';
import { openArchive, type OpenArchiveOptions } from './archive.js';
import { archiveSpec, readAptSources, type ArchiveSpec } from './sources.js';

async function specOf(archive: TestArchive): Promise<ArchiveSpec> {
  return archiveSpec({
    suite: 'testing',
    sources: await readAptSources(archive.sourcesFile()),
    arch: 'amd64',
  });
}

let cacheDir: string;
beforeEach(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'kiln-cache-'));
});
afterEach(async () => {
  await rm(cacheDir, { recursive: true, force: true });
});

describe('openArchive on a healthy archive', () => {
  let archive: TestArchive;
  beforeAll(async () => {
    archive = await startTestArchive({
      packages: [
        { name: 'hello', version: '1.0-1', depends: 'libc6 (>= 2.30)', provides: 'greeter' },
        { name: 'hello', version: '1.0-1+deb1u1', suite: 'testing-security' },
        { name: 'libc6', version: '2.36-9', priority: 'required' },
        { name: 'libc6', version: '2.36-9', suite: 'testing-security', priority: 'required' },
        { name: 'libc6', version: '2.36-9+u2', suite: 'testing-updates', priority: 'required' },
        { name: 'tzdata', version: '2024a-1', arch: 'all' },
        { name: 'arm-only', version: '1', arch: 'arm64' },
      ],
      arches: ['amd64', 'arm64'],
    });
  });
  afterAll(async () => {
    await archive?.close();
  });

  it('reads every suite into one index, newest first, keeping the security copy of a duplicate', async () => {
    const index = await openArchive(await specOf(archive), { cacheDir });
    expect(index.suites).toEqual(['testing', 'testing-updates', 'testing-security']);
    expect(index.get('hello').map((r) => `${r.version} ${r.suite}`)).toEqual([
      '1.0-1+deb1u1 testing-security',
      '1.0-1 testing',
    ]);
    expect(index.get('libc6').map((r) => `${r.version} ${r.suite}`)).toEqual([
      '2.36-9+u2 testing-updates',
      '2.36-9 testing-security',
    ]);
    expect(index.newest('tzdata')?.arch).toBe('all');
    expect(index.has('arm-only')).toBe(false);
    expect(index.has('nothing')).toBe(false);
    expect(index.get('nothing')).toEqual([]);
    expect(index.all().map((r) => r.name)).toEqual(['hello', 'hello', 'libc6', 'libc6', 'tzdata']);
    expect(index.providers('greeter').map((r) => `${r.name} ${r.version}`)).toEqual(['hello 1.0-1']);
  });

  it('records where each .deb is and what it must hash to', async () => {
    const index = await openArchive(await specOf(archive), { cacheDir });
    const hello = index.get('hello').find((r) => r.version === '1.0-1');
    const deb = await readFile(archive.debPath('hello', '1.0-1'));
    expect(hello).toMatchObject({
      uri: archive.url,
      filename: 'pool/main/h/hello/hello_1.0-1_amd64.deb',
      size: deb.length,
      sha256: createHash('sha256').update(deb).digest('hex'),
      essential: false,
      priority: 'optional',
      depends: [[{ name: 'libc6', op: '>=', version: '2.30' }]],
    });
    expect(hello?.fields['Maintainer']).toBe('kiln tests <test@kiln.invalid>');
  });

  it('fetches only the InReleases on a second open, and nothing at all offline', async () => {
    const spec = await specOf(archive);
    const start = archive.requests.length;
    await openArchive(spec, { cacheDir });
    const first = archive.requests.slice(start).sort();
    expect(first).toEqual(
      ['testing', 'testing-updates', 'testing-security']
        .flatMap((s) => [`/debian/dists/${s}/InRelease`, `/debian/dists/${s}/main/binary-amd64/Packages.xz`])
        .sort(),
    );
    const second = archive.requests.length;
    const again = await openArchive(spec, { cacheDir });
    expect(archive.requests.slice(second).sort()).toEqual(first.filter((p) => p.endsWith('/InRelease')));
    const third = archive.requests.length;
    const offline = await openArchive(spec, { cacheDir, offline: true });
    expect(archive.requests.length).toBe(third);
    expect(offline.all().map((r) => `${r.name} ${r.version}`)).toEqual(
      again.all().map((r) => `${r.name} ${r.version}`),
    );
  });

  it('fetches an index again when its cached copy is damaged', async () => {
    const spec = await specOf(archive);
    await openArchive(spec, { cacheDir });
    for (const f of await readdir(join(cacheDir, 'indexes')))
      await writeFile(join(cacheDir, 'indexes', f), 'garbage');
    const before = archive.requests.length;
    const index = await openArchive(spec, { cacheDir });
    expect(archive.requests.slice(before).filter((p) => p.endsWith('Packages.xz')).length).toBeGreaterThan(0);
    expect(index.has('hello')).toBe(true);
  });

  it('fails clearly offline when nothing is cached', async () => {
    const err = await openArchive(await specOf(archive), { cacheDir, offline: true }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(
      /offline: http:\/\/127\.0\.0\.1:\d+\/debian\/dists\/testing\S*\/InRelease has never been fetched/,
    );
  });

  it('refuses a Release past its Valid-Until unless allowed', async () => {
    const spec = await specOf(archive);
    const later = new Date(Date.now() + 2 * 365 * 86_400_000);
    await expect(openArchive(spec, { cacheDir, now: later })).rejects.toThrow(IntegrityError);
    await expect(openArchive(spec, { cacheDir, now: later })).rejects.toThrow(
      /InRelease: the Release expired at/,
    );
    const index = await openArchive(spec, { cacheDir, now: later, allowExpired: true });
    expect(index.has('hello')).toBe(true);
  });

  it('names the suite, component and architecture when an index is missing', async () => {
    const spec = await specOf(archive);
    const contrib = { ...spec, suites: spec.suites.map((s) => ({ ...s, components: ['contrib'] })) };
    await expect(openArchive(contrib, { cacheDir })).rejects.toThrow(
      /dists\/testing\S*\/InRelease lists no contrib\/binary-amd64\/Packages index \(it has: main\/binary-amd64, main\/binary-arm64\)/,
    );
  });

  it('says which keyring is missing and how to get one', async () => {
    const spec = await specOf(archive);
    const noKey = {
      ...spec,
      suites: spec.suites.map((s) => ({ ...s, keyring: join(cacheDir, 'absent.gpg') })),
    };
    await expect(openArchive(noKey, { cacheDir })).rejects.toThrow(UnavailableError);
    await expect(openArchive(noKey, { cacheDir })).rejects.toThrow(
      /absent\.gpg does not exist: install debian-archive-keyring or set mirror\.keyring/,
    );
  });

  it('names the URL of a suite the archive does not have', async () => {
    const spec = await specOf(archive);
    const other = { ...spec, suites: [{ ...spec.suites[0]!, name: 'nosuch' }] };
    await expect(openArchive(other, { cacheDir })).rejects.toThrow(
      /dists\/nosuch\/InRelease: 404 Not Found: check the archive URL/,
    );
  });
});

describe('openArchive on a hostile archive', () => {
  const archives: TestArchive[] = [];
  async function hostile(corrupt: TestArchiveOptions['corrupt']): Promise<TestArchive> {
    const archive = await startTestArchive({ packages: [{ name: 'hello', version: '1.0-1' }], corrupt });
    archives.push(archive);
    return archive;
  }
  afterAll(async () => {
    await Promise.all(archives.map((a) => a.close()));
  });

  async function failure(archive: TestArchive, options: Partial<OpenArchiveOptions> = {}): Promise<Error> {
    const err = await openArchive(await specOf(archive), { cacheDir, ...options }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    return err as Error;
  }

  it('refuses an InRelease edited after signing, and caches nothing of it', async () => {
    const archive = await hostile({ signature: ['testing-updates'] });
    const err = await failure(archive);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toContain(
      `${archive.url}/dists/testing-updates/InRelease: the archive's signature did not verify against ${archive.keyring}`,
    );
    expect(err.message).toMatch(/BAD signature[\s\S]*install debian-archive-keyring or set mirror\.keyring/);
    const cached = await readdir(join(cacheDir, 'inrelease')).catch(() => []);
    expect(cached.some((f) => f.startsWith('testing-updates-'))).toBe(false);
  });

  it('refuses an InRelease signed by a key the keyring does not hold', async () => {
    const archive = await hostile({ keyring: true });
    const err = await failure(archive);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/signature did not verify against .*keyring\.gpg \(gpgv: .*No public key/);
  });

  it('refuses an index whose checksum differs from the signed Release', async () => {
    // testing is the suite with a package: the empty indexes of the others are alike, so one
    // suite's verified copy would rightly serve another from the cache.
    const archive = await hostile({ index: ['testing'] });
    const err = await failure(archive);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(
      /dists\/testing\/main\/binary-amd64\/Packages\.xz: expected \d+ bytes with sha256 [0-9a-f]{64} as the signed Release lists, got \d+ bytes with sha256 [0-9a-f]{64}/,
    );
    // Only verified indexes reach the cache: each file is named by its own hash.
    for (const f of await readdir(join(cacheDir, 'indexes')).catch(() => [])) {
      expect(
        createHash('sha256')
          .update(await readFile(join(cacheDir, 'indexes', f)))
          .digest('hex'),
      ).toBe(f);
    }
  });
});
