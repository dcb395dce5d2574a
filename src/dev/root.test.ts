import { lstat, mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { ancestorsOf, planDevRoot, prepareDevRoot, type BaseEntry } from './root.js';

const dir = (name: string): BaseEntry => ({ name, type: 'directory' });
const file = (name: string): BaseEntry => ({ name, type: 'file' });
const link = (name: string, target: string): BaseEntry => ({ name, type: 'symlink', target });

/** A merged-/usr Debian root as kiln bakes it, with the directories a runtime made in it. */
const DEBIAN_ROOT: readonly BaseEntry[] = [
  link('bin', 'usr/bin'),
  dir('dev'),
  dir('etc'),
  dir('home'),
  link('lib', 'usr/lib'),
  dir('proc'),
  dir('srv'),
  dir('usr'),
  dir('var'),
  file('.marker'),
];

const plan = (dest: string, listings: [string, readonly BaseEntry[]][]) =>
  planDevRoot({ baseRootfs: '/base', appDir: '/src/app', dest, listings: new Map(listings) });

describe('planDevRoot', () => {
  it('uses the base as it is when it has the destination already', () => {
    const p = plan('/srv/www', [
      ['', DEBIAN_ROOT],
      ['srv', [dir('www')]],
      ['srv/www', []],
    ]);
    expect(p).toEqual({
      skeleton: false,
      entries: [],
      mounts: [{ source: '/src/app', destination: '/srv/www', readonly: true }],
    });
  });

  it('lays out a skeleton of the root when the destination is new: every entry bound or copied, runtime mount points empty', () => {
    const p = plan('/app', [['', DEBIAN_ROOT]]);
    expect(p.skeleton).toBe(true);
    expect(p.entries).toEqual([
      { kind: 'file', path: '.marker' },
      { kind: 'symlink', path: 'bin', target: 'usr/bin' },
      { kind: 'directory', path: 'dev' },
      { kind: 'directory', path: 'etc' },
      { kind: 'directory', path: 'home' },
      { kind: 'symlink', path: 'lib', target: 'usr/lib' },
      { kind: 'directory', path: 'proc' },
      { kind: 'directory', path: 'srv' },
      { kind: 'directory', path: 'usr' },
      { kind: 'directory', path: 'var' },
      { kind: 'directory', path: 'app' },
      { kind: 'directory', path: 'sys' },
      { kind: 'directory', path: 'tmp' },
    ]);
    expect(p.mounts.map((m) => `${m.source} → ${m.destination}${m.readonly ? ' (ro)' : ''}`)).toEqual([
      '/base/.marker → /.marker (ro)',
      '/base/etc → /etc (ro)',
      '/base/home → /home (ro)',
      '/base/srv → /srv (ro)',
      '/base/usr → /usr (ro)',
      '/base/var → /var (ro)',
      '/src/app → /app (ro)',
    ]);
  });

  it('opens up each ancestor the base has, down to the first missing part', () => {
    const p = plan('/srv/www/site', [
      ['', [dir('srv'), dir('usr')]],
      ['srv', [dir('ftp'), dir('www')]],
      ['srv/www', [file('index.html')]],
    ]);
    expect(p.entries.map((e) => `${e.kind} ${e.path}`)).toEqual([
      'directory usr',
      'directory srv',
      'directory srv/ftp',
      'directory srv/www',
      'file srv/www/index.html',
      'directory srv/www/site',
      'directory dev',
      'directory proc',
      'directory sys',
      'directory tmp',
    ]);
    expect(p.mounts.map((m) => m.destination)).toEqual([
      '/usr',
      '/srv/ftp',
      '/srv/www/index.html',
      '/srv/www/site',
    ]);
  });

  it('makes every missing level of a deep destination', () => {
    const p = plan('/opt/acme/app', [['', [dir('usr')]]]);
    expect(p.entries.filter((e) => e.path.startsWith('opt')).map((e) => e.path)).toEqual([
      'opt',
      'opt/acme',
      'opt/acme/app',
    ]);
  });

  it.each([
    ['/lib/app', 'symlink'],
    ['/.marker/app', 'file'],
  ])('refuses %s, which goes through a %s of the base', (dest, type) => {
    expect(() => plan(dest, [['', DEBIAN_ROOT]])).toThrow(ValidationError);
    expect(() => plan(dest, [['', DEBIAN_ROOT]])).toThrow(`which is a ${type} in the base image`);
  });

  it.each(['app', '/', '/srv/../etc'])('refuses the destination %j', (dest) => {
    expect(() => plan(dest, [['', DEBIAN_ROOT]])).toThrow(/\[app\.dest\]/);
  });

  it('lists the root and each ancestor of the destination', () => {
    expect(ancestorsOf('/srv/www/site')).toEqual(['', 'srv', 'srv/www']);
    expect(ancestorsOf('/app/')).toEqual(['']);
  });
});

describe('prepareDevRoot', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  async function base(): Promise<string> {
    const root = await mkdtemp(path.join(tmpdir(), 'kiln-dev-root-'));
    dirs.push(root);
    await mkdir(path.join(root, 'base', 'usr', 'bin'), { recursive: true });
    await mkdir(path.join(root, 'base', 'etc'));
    await writeFile(path.join(root, 'base', 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    await symlink('usr/bin', path.join(root, 'base', 'bin'));
    return root;
  }

  it('makes the skeleton in place of a temporary directory and leaves the base untouched', async () => {
    const root = await base();
    const before = (await readdir(path.join(root, 'base'))).sort();
    const made = await prepareDevRoot({
      baseRootfs: path.join(root, 'base'),
      appDir: '/src/app',
      dest: '/app',
      skeletonDir: path.join(root, 'session', 'root'),
    });
    expect(made.rootfs).toBe(path.join(root, 'session', 'root'));
    expect((await readdir(made.rootfs)).sort()).toEqual([
      'app',
      'bin',
      'dev',
      'etc',
      'proc',
      'sys',
      'tmp',
      'usr',
    ]);
    expect(await readlink(path.join(made.rootfs, 'bin'))).toBe('usr/bin');
    expect((await readdir(path.join(made.rootfs, 'etc'))).length).toBe(0);
    expect((await lstat(made.rootfs)).mode & 0o777).toBe(0o755);
    expect(await readdir(path.join(root, 'session'))).toEqual(['root']);
    expect((await readdir(path.join(root, 'base'))).sort()).toEqual(before);
  });

  it('runs the base rootfs itself when the destination is there', async () => {
    const root = await base();
    const made = await prepareDevRoot({
      baseRootfs: path.join(root, 'base'),
      appDir: '/src/app',
      dest: '/usr/bin',
      skeletonDir: path.join(root, 'session', 'root'),
    });
    expect(made).toEqual({
      rootfs: path.join(root, 'base'),
      mounts: [{ source: '/src/app', destination: '/usr/bin', readonly: true }],
    });
  });
});
