/**
 * Hostile .debs against readDeb (the `ar` container, the control and data tarballs): a corpus of
 * malformed packages, and properties over fuzzed tar members and mutated bytes. readDeb must return
 * entries that are safe to lay into a layer, or throw a kiln error naming the package.
 */
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntegrityError, UnavailableError, ValidationError } from '../../errors/index.js';
import { expectKilnError, fuzzParams, fuzzTimeout } from '../../../test/support/fuzz.js';
import { fuzzedRawEntry, rawTar, type RawEntry } from '../../../test/support/malicious-tars.js';
import { readDeb, type DebContents } from './deb.js';

/** An `ar` archive of `members`; `size` overrides a member's size field as written. */
function ar(members: readonly { name: string; data: Buffer; size?: string }[]): Buffer {
  const parts: Buffer[] = [Buffer.from('!<arch>\n')];
  for (const m of members) {
    const size = m.size ?? String(m.data.length);
    const header = `${m.name.padEnd(16)}${'0'.padEnd(12)}${'0'.padEnd(6)}${'0'.padEnd(6)}${'100644'.padEnd(8)}${size.padEnd(10)}\`\n`;
    parts.push(Buffer.from(header, 'latin1'), m.data);
    if (m.data.length % 2 === 1) parts.push(Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

const CONTROL = 'Package: hello\nVersion: 1.0-1\nArchitecture: amd64\n';

/** A .deb whose data tarball holds `entries`, its parts overridable one by one. */
function deb(
  entries: readonly RawEntry[],
  o: { control?: string; dataName?: string; data?: Buffer; first?: string; dataSize?: string } = {},
): Buffer {
  return ar([
    { name: o.first ?? 'debian-binary', data: Buffer.from('2.0\n') },
    { name: 'control.tar.gz', data: gzipSync(rawTar([{ name: './control', body: o.control ?? CONTROL }])) },
    {
      name: o.dataName ?? 'data.tar.gz',
      data: o.data ?? gzipSync(rawTar(entries)),
      ...(o.dataSize !== undefined ? { size: o.dataSize } : {}),
    },
  ]);
}

/** Calls readDeb; a throw must be a kiln error naming the package; entries must be safe. */
function readChecked(data: Buffer): DebContents | undefined {
  try {
    const out = readDeb(data, 'hello_1.0-1_amd64.deb');
    for (const e of out.entries) {
      for (const p of e.type === 'link' ? [e.path, e.linkname!] : [e.path]) {
        expect(
          p.startsWith('/') ||
            p.includes('\0') ||
            p.split('/').some((s) => s === '..' || s === '.' || s === ''),
          p,
        ).toBe(false);
      }
      for (const n of [e.uid, e.gid, e.mode]) expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
    }
    return out;
  } catch (err) {
    expectKilnError(err, 'readDeb');
    expect(err.message).toContain('hello_1.0-1_amd64.deb');
    return undefined;
  }
}

describe('readDeb against malformed packages', () => {
  const ok: RawEntry[] = [{ name: './usr/bin/hello', body: '#!/bin/sh\n', mode: 0o755 }];
  it.each<[string, () => Buffer, RegExp, (new (...a: never[]) => Error)?]>([
    // A size of -60 stepped back to the same header: readDeb looped forever, filling memory.
    [
      'a negative ar member size',
      () => deb(ok, { dataSize: '-60' }),
      /ar member data\.tar\.gz has a bad size "-60"/,
    ],
    ['an ar size in hex', () => deb(ok, { dataSize: '0x10' }), /bad size "0x10"/],
    ['an ar size in exponent form', () => deb(ok, { dataSize: '1e3' }), /bad size "1e3"/],
    ['an ar member past the end', () => deb(ok, { dataSize: '999999' }), /runs past the end of the file/],
    ['no ar magic', () => Buffer.from('garbage'), /not a \.deb \(no ar magic\)/],
    ['debian-binary not first', () => deb(ok, { first: 'evil' }), /not a format 2\.x \.deb/],
    ['zstd members', () => deb(ok, { dataName: 'data.tar.zst' }), /zstd-compressed/, UnavailableError],
    [
      'unknown compression',
      () => deb(ok, { dataName: 'data.tar.bz2' }),
      /unknown compression of data\.tar\.bz2/,
    ],
    [
      'a corrupt gzip member',
      () => deb(ok, { data: Buffer.from('1f8b0800', 'hex') }),
      /cannot decompress data\.tar\.gz/,
    ],
    ['a path climbing out', () => deb([{ name: './../../etc/passwd', body: 'x' }]), /escapes the root/],
    ['an absolute path', () => deb([{ name: '/etc/passwd', body: 'x' }]), /absolute path "\/etc\/passwd"/],
    [
      'a NUL in a pax path',
      () => deb([{ name: 'x', body: 'x', pax: { path: 'usr/a\0b' } }]),
      /contains a NUL byte/,
    ],
    [
      'a hard link climbing out',
      () => deb([{ name: 'h', type: '1', linkname: '../../etc/shadow' }]),
      /escapes the root/,
    ],
    ['a link without a target', () => deb([{ name: 'l', type: '2' }]), /link l has no target/],
    ['an unknown member type', () => deb([{ name: 'v', type: 'V' }]), /unsupported tar header type "V"/],
    [
      'a pax uid that is not a number',
      () => deb([{ name: 'f', body: 'x', pax: { uid: 'abc' } }]),
      /bad pax uid "abc"/,
    ],
    [
      'a pax size that is not a number',
      () => deb([{ name: 'f', body: 'x', pax: { size: '-5' } }]),
      /bad pax size "-5"/,
    ],
    ['a uid beyond 32 bits', () => deb([{ name: 'f', body: 'x', uid: 2 ** 40 }]), /bad uid field/],
    [
      'a truncated member',
      () => deb([], { data: gzipSync(rawTar([{ name: 'f', body: 'x'.repeat(2000) }]).subarray(0, 1024)) }),
      /is truncated/,
    ],
    [
      'a control.tar without control',
      () =>
        ar([
          { name: 'debian-binary', data: Buffer.from('2.0\n') },
          { name: 'control.tar', data: rawTar([{ name: './md5sums' }]) },
          { name: 'data.tar', data: rawTar([]) },
        ]),
      /control\.tar has no control file/,
    ],
    [
      'a malformed control file',
      () => deb(ok, { control: 'Package hello\n' }),
      /DEBIAN\/control: invalid/,
      ValidationError,
    ],
  ])('refuses %s', (_name, build, message, type = IntegrityError) => {
    const err = (() => {
      try {
        readDeb(build(), 'hello_1.0-1_amd64.deb');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expectKilnError(err, 'readDeb');
    expect(err).toBeInstanceOf(type);
    expect(err.message).toMatch(message);
    expect(err.message).toContain('hello_1.0-1_amd64.deb');
  });
});

describe('readDeb properties', () => {
  it(
    'fuzzed data members: safe entries or a kiln error naming the package',
    () => {
      fc.assert(
        fc.property(fc.array(fuzzedRawEntry, { maxLength: 5 }), fc.boolean(), (entries, gz) => {
          const tar = rawTar(entries);
          readChecked(deb([], { data: gz ? gzipSync(tar) : tar, dataName: gz ? 'data.tar.gz' : 'data.tar' }));
        }),
        fuzzParams(200, 0.5),
      );
    },
    fuzzTimeout(200, 0.5, 5),
  );

  it(
    'mutated bytes of a good .deb: entries or a kiln error naming the package',
    () => {
      const good = deb([], {
        dataName: 'data.tar',
        data: rawTar([
          { name: './usr/', type: '5' },
          { name: './usr/bin/hello', body: '#!/bin/sh\n', mode: 0o755 },
          { name: './usr/bin/hi', type: '1', linkname: './usr/bin/hello' },
          { name: './bin', type: '2', linkname: 'usr/bin' },
        ]),
      });
      expect(readChecked(good)?.entries.map((e) => e.path)).toEqual([
        'usr',
        'usr/bin/hello',
        'usr/bin/hi',
        'bin',
      ]);
      const edit = fc.record({
        flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        cut: fc.option(fc.nat(), { nil: undefined }),
      });
      fc.assert(
        fc.property(edit, ({ flips, cut }) => {
          const bytes = Buffer.from(good);
          for (const [at, b] of flips) bytes[at % bytes.length] = b;
          readChecked(cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1)));
        }),
        fuzzParams(300, 0.5),
      );
    },
    fuzzTimeout(300, 0.5, 5),
  );
});
