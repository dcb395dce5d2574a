import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, IntegrityError, NotFoundError } from '../../errors/index.js';
import {
  startTestArchive,
  type FixturePackage,
  type TestArchive,
} from '../../../test/support/debian-archive.js';
import { openArchive } from './archive.js';
import { buildPackageIndex, type PackageIndex, type PackageRecord } from './package-index.js';
import { lockedPackages, resolvePackages, type PackageRequest } from './resolve.js';
import { archiveSpec, readAptSources } from './sources.js';
import { parseRelations } from './control.js';

const U1 = '18.20.4+dfsg-1~deb12u1';
const U3 = '18.20.4+dfsg-1~deb12u3';
const SEC = 'testing-security';

const PACKAGES: FixturePackage[] = [
  // A chain with an exact-version link, newer in the security suite.
  {
    name: 'nodejs',
    version: U1,
    depends: `libc6 (>= 2.34), libnode108 (= ${U1})`,
    provides: 'node-types (= 18.18)',
  },
  {
    name: 'nodejs',
    version: U3,
    suite: SEC,
    depends: `libc6 (>= 2.34), libnode108 (= ${U3})`,
    provides: 'node-types (= 18.18)',
  },
  { name: 'libnode108', version: U1, depends: 'libicu72 (>= 72.1), libssl3 (>= 3.0.0)' },
  { name: 'libnode108', version: U3, suite: SEC, depends: 'libicu72 (>= 72.1), libssl3 (>= 3.0.0)' },
  { name: 'libicu72', version: '72.1-3' },
  { name: 'libssl3', version: '3.0.11-1' },
  { name: 'libssl3', version: '3.0.15-1', suite: SEC },
  { name: 'libc6', version: '2.36-9', priority: 'required' },
  { name: 'bash', version: '5.2.15-2', priority: 'required', essential: true, preDepends: 'libc6 (>= 2.36)' },
  { name: 'base-files', version: '12.4', priority: 'required', essential: true },
  // Alternatives, virtual packages, versioned provides, arch qualifiers, recommends.
  {
    name: 'web',
    version: '1',
    depends: 'httpd-nope (>= 2) | nginx, mail-transport-agent',
    recommends: 'bloat',
  },
  { name: 'nginx', version: '1.22.1-9', depends: 'libc6' },
  { name: 'exim4-daemon', version: '4.96-15', provides: 'mail-transport-agent', priority: 'important' },
  { name: 'postfix', version: '3.7.11-0', provides: 'mail-transport-agent' },
  { name: 'bloat', version: '1' },
  { name: 'greeter', version: '1', depends: 'libgreet' },
  { name: 'libgreet', version: '1' },
  { name: 'aaa-greet-compat', version: '1', provides: 'libgreet' },
  { name: 'ts-tool', version: '1', depends: 'node-types (>= 18)' },
  { name: 'old-ts-tool', version: '1', depends: 'node-types (>= 20) | nodejs (>= 20)' },
  { name: 'py-tool', version: '1', depends: 'python3:any (>= 3.11)' },
  { name: 'python3', version: '3.11.2-1', arch: 'all' },
  { name: 'i386-tool', version: '1', depends: 'libc6:i386' },
  // Needs backtracking: libx's newest wants libz >= 2, liby wants libz << 2.
  { name: 'app-bt', version: '1', depends: 'libx, liby' },
  { name: 'libx', version: '2.0', depends: 'libz (>= 2)' },
  { name: 'libx', version: '1.0', depends: 'libz (>= 1)' },
  { name: 'liby', version: '1.0', depends: 'libz (<< 2)' },
  { name: 'libz', version: '2.1' },
  { name: 'libz', version: '1.5' },
  // Failures.
  { name: 'broken-app', version: '1.0', depends: 'libbroken (>= 1)' },
  { name: 'libbroken', version: '1.0', depends: 'libc6, libmissing (>= 72.1)' },
  { name: 'old-app', version: '1.0', depends: 'libicu72 (>= 80)' },
  { name: 'sendmail-x', version: '8.17', conflicts: 'postfix' },
  { name: 'newlib-user', version: '1', depends: 'libssl3 (>= 3.0.15)' },
];

let archive: TestArchive;
let cacheDir: string;
let index: PackageIndex;
beforeAll(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), 'kiln-resolve-'));
  archive = await startTestArchive({ packages: PACKAGES });
  const sources = await readAptSources(archive.sourcesFile());
  index = await openArchive(archiveSpec({ suite: 'testing', sources, arch: 'amd64' }), { cacheDir });
});
afterAll(async () => {
  await archive?.close();
  if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
});

function names(requests: PackageRequest[], profile: 'minimal' | 'minbase' = 'minimal'): string[] {
  return resolvePackages(index, requests, { profile }).map((r) => `${r.name} ${r.version}`);
}

function failure(requests: PackageRequest[]): Error {
  try {
    resolvePackages(index, requests, { profile: 'minimal' });
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected resolution to fail');
}

describe('resolvePackages', () => {
  it('follows a dependency chain to the newest versions, preferring the security suite', () => {
    const chosen = resolvePackages(index, [{ name: 'nodejs' }], { profile: 'minimal' });
    expect(chosen.map((r) => `${r.name} ${r.version} ${r.suite}`)).toEqual([
      'libc6 2.36-9 testing',
      `libicu72 72.1-3 testing`,
      `libnode108 ${U3} ${SEC}`,
      `libssl3 3.0.15-1 ${SEC}`,
      `nodejs ${U3} ${SEC}`,
    ]);
  });

  it('respects version pins, on the request and through exact-version dependencies', () => {
    expect(
      names([
        { name: 'nodejs', version: U1 },
        { name: 'libssl3', version: '3.0.11-1' },
      ]),
    ).toEqual(['libc6 2.36-9', 'libicu72 72.1-3', `libnode108 ${U1}`, 'libssl3 3.0.11-1', `nodejs ${U1}`]);
  });

  it('takes the first alternative that can be satisfied, and a provider for a virtual package', () => {
    expect(names([{ name: 'web' }])).toEqual([
      'exim4-daemon 4.96-15',
      'libc6 2.36-9',
      'nginx 1.22.1-9',
      'web 1',
    ]);
  });

  it('prefers a real package to a provider of the same name', () => {
    expect(names([{ name: 'greeter' }])).toEqual(['greeter 1', 'libgreet 1']);
  });

  it('prefers a provider that is already chosen', () => {
    expect(names([{ name: 'postfix' }, { name: 'web' }])).toContain('postfix 3.7.11-0');
    expect(names([{ name: 'postfix' }, { name: 'web' }])).not.toContain('exim4-daemon 4.96-15');
  });

  it('satisfies versioned dependencies with versioned provides only', () => {
    expect(names([{ name: 'ts-tool' }])).toContain(`nodejs ${U3}`);
    expect(failure([{ name: 'old-ts-tool' }]).message).toContain(
      'cannot install old-ts-tool: old-ts-tool 1 → node-types (>= 20) | nodejs (>= 20): no candidate in testing, testing-updates, testing-security',
    );
  });

  it('reads :any and :native as this architecture, and refuses another', () => {
    expect(names([{ name: 'py-tool' }])).toEqual(['py-tool 1', 'python3 3.11.2-1']);
    expect(failure([{ name: 'i386-tool' }]).message).toContain('libc6:i386: no candidate');
  });

  it('backtracks when the newest choice leads to a conflict of versions', () => {
    expect(names([{ name: 'app-bt' }])).toEqual(['app-bt 1', 'libx 1.0', 'liby 1.0', 'libz 1.5']);
  });

  it('adds required packages for minbase only, and never recommends', () => {
    expect(names([{ name: 'nginx' }])).toEqual(['libc6 2.36-9', 'nginx 1.22.1-9']);
    expect(names([{ name: 'nginx' }], 'minbase')).toEqual([
      'base-files 12.4',
      'bash 5.2.15-2',
      'libc6 2.36-9',
      'nginx 1.22.1-9',
    ]);
    expect(names([{ name: 'web' }])).not.toContain('bloat 1');
  });

  it('names the whole chain of an unmet dependency', () => {
    const err = failure([{ name: 'nginx' }, { name: 'broken-app' }]);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(
      'cannot install broken-app: broken-app 1.0 → libbroken (>= 1) → libmissing (>= 72.1): no candidate in testing, testing-updates, testing-security',
    );
  });

  it('says which versions exist when none satisfies', () => {
    expect(failure([{ name: 'old-app' }]).message).toBe(
      'cannot install old-app: old-app 1.0 → libicu72 (>= 80): no candidate in testing, testing-updates, testing-security (the archive has libicu72 72.1-3)',
    );
  });

  it('suggests close names for an unknown package, and lists the versions of a missing pin', () => {
    const err = failure([{ name: 'nodjs' }, { name: 'libicu72', version: '70-1' }]);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(
      [
        'cannot install nodjs: no package nodjs in testing, testing-updates, testing-security (did you mean nodejs?)',
        'cannot install libicu72 70-1: no such version in testing, testing-updates, testing-security; available: 72.1-3 (testing)',
      ].join('\n'),
    );
  });

  it('reports a conflict between two chosen packages', () => {
    const err = failure([{ name: 'postfix' }, { name: 'sendmail-x' }]);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.message).toBe(
      'cannot install sendmail-x: sendmail-x 8.17 conflicts with postfix 3.7.11-0 (requested)',
    );
  });

  it('reports a pin that contradicts a dependency', () => {
    const err = failure([{ name: 'libssl3', version: '3.0.11-1' }, { name: 'newlib-user' }]);
    expect(err).toBeInstanceOf(ConflictError);
    expect(err.message).toBe(
      'cannot install newlib-user: newlib-user 1 → libssl3 (>= 3.0.15): needs libssl3 3.0.15-1 but libssl3 3.0.11-1 is requested',
    );
  });
});

describe('resolvePackages search', () => {
  function record(name: string, version: string, depends = ''): PackageRecord {
    return {
      name,
      version,
      arch: 'amd64',
      suite: 's',
      uri: 'http://archive.invalid',
      filename: `${name}.deb`,
      size: 1,
      sha256: '0'.repeat(64),
      essential: false,
      depends: parseRelations(depends),
      provides: [],
      fields: {},
    };
  }
  // n libraries with two versions each come before the failing dependency, so a plain
  // chronological search would try 2^n combinations before giving up.
  const n = 18;
  const libs = Array.from({ length: n }, (_, i) => [record(`l${i}`, '2'), record(`l${i}`, '1')]).flat();
  const deps = Array.from({ length: n }, (_, i) => `l${i}`).join(', ');
  const index = (top: string, ...more: PackageRecord[]): PackageIndex =>
    buildPackageIndex([...libs, record('top', '1', `${deps}, ${top}`), ...more], ['s'], 'amd64');

  it('jumps back over unrelated choices when a dependency can never be met', () => {
    const big = index('mid', record('mid', '1', 'gone (>= 2)'), record('gone', '1'));
    const run = (): PackageRecord[] =>
      resolvePackages(big, [{ name: 'top' }], { profile: 'minimal', maxSteps: 100 });
    expect(run).toThrow(NotFoundError);
    expect(run).toThrow(
      /^cannot install top: top 1 → mid → gone \(>= 2\): no candidate in s \(the archive has gone 1\)$/,
    );
  });

  it('stops at the step bound on a real clash and still reports its cause', () => {
    const big = index(
      'holder, mid',
      record('holder', '1', 'libq (= 1)'),
      record('mid', '1', 'libq (>= 2)'),
      record('libq', '2'),
      record('libq', '1'),
    );
    const run = (): PackageRecord[] =>
      resolvePackages(big, [{ name: 'top' }], { profile: 'minimal', maxSteps: 2_000 });
    expect(run).toThrow(ConflictError);
    expect(run).toThrow(
      'cannot install top: top 1 → mid → libq (>= 2): needs libq 2 but libq 1 is chosen for top 1 → holder → libq (= 1) (gave up after 2000 search steps)',
    );
  });
});

describe('lockedPackages', () => {
  it('finds exactly the locked records, by name', () => {
    const libicu = index.newest('libicu72') as PackageRecord;
    const libssl = index.get('libssl3').find((r) => r.version === '3.0.11-1') as PackageRecord;
    const found = lockedPackages(
      index,
      [libssl, libicu].map((r) => ({ name: r.name, version: r.version, sha256: r.sha256 })),
    );
    expect(found).toEqual([libicu, libssl]);
  });

  it('says to update when a locked version is gone', () => {
    const run = (): PackageRecord[] =>
      lockedPackages(index, [
        { name: 'libssl3', version: '3.0.9-1', sha256: 'a'.repeat(64) },
        { name: 'vanished', version: '1', sha256: 'b'.repeat(64) },
      ]);
    expect(run).toThrow(NotFoundError);
    expect(run).toThrow(
      'libssl3 3.0.9-1 (the archive now has 3.0.15-1 in testing-security), vanished 1 (no longer in the archive): run `kiln bake --update`',
    );
  });

  it('refuses a locked version whose hash changed', () => {
    const r = index.newest('libicu72') as PackageRecord;
    expect(() =>
      lockedPackages(index, [{ name: r.name, version: r.version, sha256: 'c'.repeat(64) }]),
    ).toThrow(IntegrityError);
  });
});
