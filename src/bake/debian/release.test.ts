import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, ValidationError } from '../../errors/index.js';
import { startTestArchive, type TestArchive } from '../../../test/support/debian-archive.js';
import { parseRelease, verifyInRelease } from './release.js';

const HASH = 'a'.repeat(64);
const RELEASE = [
  'Origin: Debian',
  'Suite: oldstable',
  'Codename: bookworm',
  'Date: Sat, 11 Jul 2026 10:16:37 UTC',
  'Valid-Until: Sat, 18 Jul 2026 10:16:37 UTC',
  'SHA256:',
  ` ${HASH}   123456 main/binary-amd64/Packages.xz`,
  ` ${'b'.repeat(64)}      42 main/binary-amd64/Packages.gz`,
  '',
].join('\n');
const URL_ = 'http://archive.invalid/debian/dists/bookworm/InRelease';
const NOW = new Date('2026-07-12T00:00:00Z');

describe('parseRelease', () => {
  it('reads the suite, dates and index checksums', () => {
    const release = parseRelease(RELEASE, { suite: 'bookworm', url: URL_, now: NOW });
    expect(release.codename).toBe('bookworm');
    expect(release.suite).toBe('oldstable');
    expect(release.date?.toISOString()).toBe('2026-07-11T10:16:37.000Z');
    expect(release.validUntil?.toISOString()).toBe('2026-07-18T10:16:37.000Z');
    expect([...release.files]).toEqual([
      ['main/binary-amd64/Packages.xz', { sha256: HASH, size: 123456 }],
      ['main/binary-amd64/Packages.gz', { sha256: 'b'.repeat(64), size: 42 }],
    ]);
    expect(parseRelease(RELEASE, { suite: 'oldstable', url: URL_, now: NOW }).codename).toBe('bookworm');
  });

  it('refuses a Release for another suite', () => {
    expect(() => parseRelease(RELEASE, { suite: 'trixie', url: URL_, now: NOW })).toThrow(IntegrityError);
    expect(() => parseRelease(RELEASE, { suite: 'trixie', url: URL_, now: NOW })).toThrow(
      `${URL_}: the Release is for suite oldstable (codename bookworm), not trixie`,
    );
  });

  it('refuses an expired Release unless allowed', () => {
    const later = new Date('2026-07-19T00:00:00Z');
    expect(() => parseRelease(RELEASE, { suite: 'bookworm', url: URL_, now: later })).toThrow(
      /expired at 2026-07-18T10:16:37\.000Z \(Valid-Until\)/,
    );
    expect(
      parseRelease(RELEASE, { suite: 'bookworm', url: URL_, now: later, allowExpired: true }).files.size,
    ).toBe(2);
  });

  it('names the field of a malformed date or checksum line', () => {
    expect(() =>
      parseRelease(RELEASE.replace('Sat, 18 Jul', 'someday'), { suite: 'bookworm', url: URL_, now: NOW }),
    ).toThrow(/\[Valid-Until\] cannot read the date/);
    expect(() =>
      parseRelease(`${RELEASE.trimEnd()}\n xyz 1 main/Contents\n`, {
        suite: 'bookworm',
        url: URL_,
        now: NOW,
      }),
    ).toThrow(ValidationError);
  });
});

describe('verifyInRelease', () => {
  let archive: TestArchive;
  beforeAll(async () => {
    archive = await startTestArchive({ packages: [], suites: ['testing'] });
  });
  afterAll(async () => {
    await archive?.close();
  });

  it('returns the signed text, never what was added around the signature', async () => {
    const signed = await readFile(join(archive.dir, 'dists/testing/InRelease'), 'utf8');
    const release = await readFile(join(archive.dir, 'dists/testing/Release'), 'utf8');
    const padded = Buffer.from(`${signed}\nPackage: smuggled\nVersion: 1\n`);
    const text = await verifyInRelease(padded, archive.keyring, 'InRelease');
    expect(text).toBe(release);
    expect(text).not.toContain('smuggled');
  });

  it('refuses an unsigned Release', async () => {
    const release = await readFile(join(archive.dir, 'dists/testing/Release'));
    await expect(verifyInRelease(release, archive.keyring, 'http://x/InRelease')).rejects.toThrow(
      /http:\/\/x\/InRelease: the archive's signature did not verify/,
    );
  });
});
