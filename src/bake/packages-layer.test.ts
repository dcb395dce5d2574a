import { describe, expect, it } from 'vitest';
import type { LayerEntry } from '../oci/index.js';
import { assemblePackages, excluder, mergedUsrPath, type PackageContents } from './packages-layer.js';

const file = (path: string, content = 'x'): LayerEntry => ({
  path,
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  content: Buffer.from(content),
});
const link = (path: string, linkname: string): LayerEntry => ({
  path,
  type: 'symlink',
  mode: 0o777,
  uid: 0,
  gid: 0,
  linkname,
});
const pkg = (name: string, entries: LayerEntry[]): PackageContents => ({
  name,
  version: '1',
  control: { Package: name, Version: '1' },
  entries,
});

describe('mergedUsrPath', () => {
  it.each([
    ['bin/sh', 'usr/bin/sh'],
    ['sbin/init', 'usr/sbin/init'],
    ['lib/x86_64-linux-gnu/libc.so.6', 'usr/lib/x86_64-linux-gnu/libc.so.6'],
    ['lib64/ld-linux-x86-64.so.2', 'usr/lib64/ld-linux-x86-64.so.2'],
    ['libexec/x', 'libexec/x'],
    ['usr/bin/node', 'usr/bin/node'],
    ['etc/passwd', 'etc/passwd'],
    ['binary/x', 'binary/x'],
  ])('%s → %s', (from, to) => expect(mergedUsrPath(from)).toBe(to));
});

describe('assemblePackages', () => {
  it('rewrites relative symlinks moved into /usr so they still reach the same file', () => {
    const entries = assemblePackages(
      [
        pkg('libc6', [
          file('lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'),
          link('lib64/ld-linux-x86-64.so.2', '../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'),
          link('bin/sh', 'dash'),
          link('bin/up', '../usr/bin/target'),
          link('bin/abs', '/usr/bin/target'),
        ]),
      ],
      { exclude: [], arch: 'amd64' },
    );
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(byPath.get('usr/lib64/ld-linux-x86-64.so.2')?.linkname).toBe(
      '../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
    );
    expect(byPath.get('usr/bin/sh')?.linkname).toBe('dash');
    expect(byPath.get('usr/bin/up')?.linkname).toBe('target');
    expect(byPath.get('usr/bin/abs')?.linkname).toBe('/usr/bin/target');
    expect(byPath.get('lib64')).toMatchObject({ type: 'symlink', linkname: 'usr/lib64' });
    expect(byPath.has('lib32')).toBe(false);
  });

  it('lets the later package (by name) win a file conflict, whatever the input order', () => {
    const a = pkg('aaa', [file('usr/bin/tool', 'from aaa')]);
    const b = pkg('bbb', [file('bin/tool', 'from bbb')]);
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      const tool = assemblePackages(order, { exclude: [], arch: 'amd64' }).find(
        (e) => e.path === 'usr/bin/tool',
      );
      expect(tool?.content?.toString()).toBe('from bbb');
    }
  });

  it('writes the dpkg status with base packages and sorted fields', () => {
    const entries = assemblePackages([pkg('zed', [])], {
      exclude: [],
      arch: 'amd64',
      basePackages: [{ Package: 'alpha', Version: '2', Depends: 'x' }],
    });
    const status = entries.find((e) => e.path === 'var/lib/dpkg/status')!.content!.toString();
    expect(status).toBe(
      'Package: alpha\nStatus: install ok installed\nVersion: 2\nDepends: x\n\nPackage: zed\nStatus: install ok installed\nVersion: 1\n',
    );
  });
});

describe('excluder', () => {
  const excluded = excluder(['/usr/share/doc/**', '!/usr/share/doc/*/copyright', '/usr/share/man/**']);
  it.each([
    ['usr/share/doc/curl/changelog.gz', true],
    ['usr/share/doc/curl/copyright', false],
    ['usr/share/doc/curl', true],
    ['usr/share/man/man1/curl.1.gz', true],
    ['usr/bin/curl', false],
    ['usr/share/docs/x', false],
  ])('%s excluded: %s', (p, expected) => expect(excluded(p)).toBe(expected));
});
