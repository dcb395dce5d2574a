/**
 * Test fixture: a real, signed Debian archive served over HTTP on 127.0.0.1, built from a list of
 * packages with `dpkg-deb` (byte-reproducible), indexed (`Packages`, `.gz`, `.xz`), and signed
 * (`InRelease`) with an ephemeral gpg key. Options serve hostile variants (a tampered .deb, an
 * InRelease edited after signing, a keyring of another key, an index the Release does not list).
 *
 * @example
 * const archive = await startTestArchive({ packages: [{ name: 'hello', version: '1.0-1' }] });
 * try { … archive.url … archive.keyring … } finally { await archive.close(); }
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  chmod,
  lutimes,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  link,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { xz } from '@napi-rs/lzma';

const run = promisify(execFile);

/** The time every fixture file and .deb carries (`SOURCE_DATE_EPOCH`). */
export const FIXTURE_EPOCH = 1_700_000_000;

/** The suites an archive has when none are named. */
export const DEFAULT_TEST_SUITES: readonly string[] = ['testing', 'testing-updates', 'testing-security'];

/**
 * One file of a fixture package: text content, or a file with a mode, a symlink, a hard link, or
 * a copy of a host file (`source`, such as the static busybox, so images can run something real).
 */
export type FixtureFile =
  string | { content?: string; source?: string; mode?: number; symlink?: string; hardlink?: string };

/** A package to build into the archive. */
export interface FixturePackage {
  readonly name: string;
  readonly version: string;
  /** @default the first suite */
  readonly suite?: string;
  /** @default 'amd64' */
  readonly arch?: string;
  readonly depends?: string;
  readonly preDepends?: string;
  readonly provides?: string;
  readonly conflicts?: string;
  readonly breaks?: string;
  readonly recommends?: string;
  /** @default 'optional' */
  readonly priority?: string;
  readonly essential?: boolean;
  /** Files by path (`usr/bin/hello`); the copyright and changelog are always added. */
  readonly files?: Readonly<Record<string, FixtureFile>>;
  /** @default { license: 'MIT' } */
  readonly copyright?: { readonly license: string };
}

/** Ways to make the archive hostile. */
export interface CorruptOptions {
  /** Serve these packages' .debs (by name) with one byte flipped, so their SHA-256 no longer matches. */
  readonly debs?: readonly string[];
  /** Edit these suites' InRelease after signing, so the signature is bad. */
  readonly signature?: readonly string[];
  /** Hand out a keyring holding another key than the one that signed. */
  readonly keyring?: boolean;
  /** Serve these suites' Packages indexes with content the Release does not list. */
  readonly index?: readonly string[];
}

/** Options of {@link startTestArchive}. */
export interface TestArchiveOptions {
  readonly packages: readonly FixturePackage[];
  /** @default DEFAULT_TEST_SUITES */
  readonly suites?: readonly string[];
  /** Architectures the indexes are for. @default ['amd64'] */
  readonly arches?: readonly string[];
  readonly corrupt?: CorruptOptions;
}

/** A running fixture archive. */
export interface TestArchive {
  /** Archive root, `http://127.0.0.1:PORT/debian`. */
  readonly url: string;
  /** Binary OpenPGP keyring with the signing key's public half (for `gpgv --keyring`). */
  readonly keyring: string;
  /** The served archive directory (`dists/`, `pool/`). */
  readonly dir: string;
  readonly suites: readonly string[];
  /** Every request path the server received, in order (`/debian/dists/testing/InRelease`). */
  readonly requests: string[];
  /** The served .deb of a package. */
  debPath(name: string, version: string): string;
  /** Writes a deb822 apt source naming the archive's URL, suites and keyring; returns a root for `readAptSources`. */
  sourcesFile(): string;
  close(): Promise<void>;
}

/**
 * Builds, signs and serves an archive. Everything it creates (temp dirs, the gpg home and its
 * agent, the server) is removed by `close()`, and also when starting fails.
 */
export async function startTestArchive(options: TestArchiveOptions): Promise<TestArchive> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-archive-'));
  const gnupg = await mkdtemp(join(tmpdir(), 'kiln-gpg-'));
  let server: Server | undefined;
  const cleanup = async (): Promise<void> => {
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((done) => server?.close(() => done()));
    }
    await run('gpgconf', ['--homedir', gnupg, '--kill', 'all']).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
    await rm(gnupg, { recursive: true, force: true });
  };
  try {
    const suites = options.suites ?? DEFAULT_TEST_SUITES;
    const corrupt = options.corrupt ?? {};
    const dir = join(root, 'debian');
    const debs = new Map<string, string>();
    const hashes = new Map<string, string>();
    const bySuite = new Map<string, string[]>(suites.map((s) => [s, []]));
    for (const pkg of options.packages) {
      const suite = pkg.suite ?? suites[0] ?? 'testing';
      const list = bySuite.get(suite);
      if (!list)
        throw new Error(`fixture package ${pkg.name} is in suite ${suite}, which the archive does not have`);
      const arch = pkg.arch ?? 'amd64';
      const filename = `pool/main/${pkg.name[0]}/${pkg.name}/${pkg.name}_${pkg.version.replace(/^\d+:/, '')}_${arch}.deb`;
      const file = join(dir, filename);
      await buildDeb(pkg, file, join(root, 'build'));
      const data = await readFile(file);
      const built = hashes.get(filename);
      if (built !== undefined && built !== sha256(data)) {
        throw new Error(
          `fixture packages ${pkg.name} ${pkg.version} differ between suites: give them different versions`,
        );
      }
      hashes.set(filename, sha256(data));
      const control = (await run('dpkg-deb', ['--field', file])).stdout.trimEnd();
      list.push(`${control}\nFilename: ${filename}\nSize: ${data.length}\nSHA256: ${sha256(data)}\n`);
      if (corrupt.debs?.includes(pkg.name)) {
        data[data.length - 1] = (data[data.length - 1] ?? 0) ^ 0xff;
        await writeFile(file, data);
      }
      debs.set(`${pkg.name}\0${pkg.version}`, file);
    }
    const signer = await newKey(gnupg, 'kiln test archive <test@kiln.invalid>');
    for (const suite of suites) {
      await writeSuite(dir, suite, options.arches ?? ['amd64'], bySuite.get(suite) ?? [], corrupt);
      await signSuite(gnupg, signer, join(dir, 'dists', suite), corrupt.signature?.includes(suite) ?? false);
    }
    const keyring = join(root, 'keyring.gpg');
    const exported = corrupt.keyring ? await newKey(gnupg, 'kiln other key <other@kiln.invalid>') : signer;
    await run('gpg', ['--batch', '--homedir', gnupg, '--output', keyring, '--export', exported]);

    const requests: string[] = [];
    server = createServer((req, res) => {
      let path = (req.url ?? '/').split('?')[0] ?? '/';
      try {
        path = decodeURIComponent(path);
      } catch {
        // A malformed escape is served as the 404 below, not a crash.
      }
      requests.push(path);
      const target = resolve(root, `.${path}`);
      if (req.method !== 'GET' || !path.startsWith('/debian/') || !target.startsWith(dir + sep)) {
        res.writeHead(404).end();
        return;
      }
      readFile(target).then(
        (body) => res.writeHead(200, { 'content-length': body.length }).end(body),
        () => res.writeHead(404).end(),
      );
    });
    await new Promise<void>((done) => server?.listen(0, '127.0.0.1', done));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian`;
    return {
      url,
      keyring,
      dir,
      suites,
      requests,
      debPath(name, version) {
        const file = debs.get(`${name}\0${version}`);
        if (!file) throw new Error(`the fixture archive has no ${name} ${version}`);
        return file;
      },
      sourcesFile() {
        const aptRoot = join(root, 'apt-root');
        const text = `Types: deb\nURIs: ${url}\nSuites: ${suites.join(' ')}\nComponents: main\nSigned-By: ${keyring}\n`;
        mkdirSync(join(aptRoot, 'etc/apt/sources.list.d'), { recursive: true });
        writeFileSync(join(aptRoot, 'etc/apt/sources.list.d/kiln-test.sources'), text);
        return aptRoot;
      },
      close: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * Builds one package with `dpkg-deb --root-owner-group -Zgzip -z9`, every file's mtime and
 * `SOURCE_DATE_EPOCH` set to {@link FIXTURE_EPOCH}, so the same package gives the same bytes on
 * every run. `workDir` holds the package tree while building; `compression` is for tests of
 * readers (the archive itself always uses gzip).
 */
export async function buildDeb(
  pkg: FixturePackage,
  out: string,
  workDir: string,
  compression: 'gzip' | 'xz' | 'zstd' | 'none' = 'gzip',
): Promise<void> {
  const tree = join(workDir, `${pkg.name}_${pkg.version}_${pkg.arch ?? 'amd64'}`);
  await rm(tree, { recursive: true, force: true });
  const files: Record<string, FixtureFile> = {
    [`usr/share/doc/${pkg.name}/copyright`]: copyrightFile(pkg),
    [`usr/share/doc/${pkg.name}/changelog.Debian.gz`]: {
      content: `${pkg.name} (${pkg.version}) unstable; urgency=medium\n`,
    },
    ...pkg.files,
  };
  // Hard links last, so their targets exist.
  const entries = Object.entries(files).sort(([, a], [, b]) => Number(isHardlink(a)) - Number(isHardlink(b)));
  for (const [path, spec] of entries) {
    const target = join(tree, path);
    await mkdir(dirname(target), { recursive: true });
    const f = typeof spec === 'string' ? { content: spec } : spec;
    if (f.symlink !== undefined) await symlink(f.symlink, target);
    else if (f.hardlink !== undefined) await link(join(tree, f.hardlink), target);
    else {
      const body =
        'source' in f && f.source !== undefined
          ? await readFile(f.source)
          : path.endsWith('.gz')
            ? gzipSync(f.content ?? '', { level: 9 })
            : Buffer.from(f.content ?? '');
      await writeFile(target, body);
      await chmod(target, f.mode ?? 0o644);
    }
  }
  await mkdir(join(tree, 'DEBIAN'), { recursive: true });
  await writeFile(join(tree, 'DEBIAN/control'), controlText(pkg));
  await settle(tree);
  await mkdir(dirname(out), { recursive: true });
  await run('dpkg-deb', ['--root-owner-group', `-Z${compression}`, '-z9', '--build', tree, out], {
    env: { ...process.env, SOURCE_DATE_EPOCH: String(FIXTURE_EPOCH) },
  });
  await rm(tree, { recursive: true, force: true });
}

function isHardlink(f: FixtureFile): boolean {
  return typeof f !== 'string' && f.hardlink !== undefined;
}

// Directories 0755 whatever the umask, and every mtime the fixed epoch (children before parents).
async function settle(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await settle(path);
    else if (entry.isSymbolicLink()) await lutimes(path, FIXTURE_EPOCH, FIXTURE_EPOCH);
    else await utimes(path, FIXTURE_EPOCH, FIXTURE_EPOCH);
  }
  await chmod(dir, 0o755);
  await utimes(dir, FIXTURE_EPOCH, FIXTURE_EPOCH);
}

function controlText(pkg: FixturePackage): string {
  const fields: [string, string | undefined][] = [
    ['Package', pkg.name],
    ['Version', pkg.version],
    ['Architecture', pkg.arch ?? 'amd64'],
    ['Maintainer', 'kiln tests <test@kiln.invalid>'],
    ['Essential', pkg.essential ? 'yes' : undefined],
    ['Pre-Depends', pkg.preDepends],
    ['Depends', pkg.depends],
    ['Provides', pkg.provides],
    ['Conflicts', pkg.conflicts],
    ['Breaks', pkg.breaks],
    ['Recommends', pkg.recommends],
    ['Section', 'misc'],
    ['Priority', pkg.priority ?? 'optional'],
    ['Description', `fixture package ${pkg.name}\n a package built by kiln's tests.`],
  ];
  return fields.flatMap(([k, v]) => (v === undefined ? [] : [`${k}: ${v}`])).join('\n') + '\n';
}

function copyrightFile(pkg: FixturePackage): string {
  const license = pkg.copyright?.license ?? 'MIT';
  return [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    `Upstream-Name: ${pkg.name}`,
    '',
    'Files: *',
    'Copyright: 2023 kiln tests',
    `License: ${license}`,
    '',
    `License: ${license}`,
    ` The ${license} licence text would be here.`,
    '',
  ].join('\n');
}

async function writeSuite(
  dir: string,
  suite: string,
  arches: readonly string[],
  paragraphs: readonly string[],
  corrupt: CorruptOptions,
): Promise<void> {
  const dists = join(dir, 'dists', suite);
  const sums: string[] = [];
  for (const arch of arches) {
    const own = paragraphs.filter((p) => new RegExp(`^Architecture: (${arch}|all)$`, 'm').test(p));
    const text = own.join('\n');
    const indexes: [string, Buffer][] = [
      ['Packages', Buffer.from(text)],
      ['Packages.gz', gzipSync(text, { level: 9 })],
      ['Packages.xz', await xz.compress(Buffer.from(text))],
    ];
    for (const [name, data] of indexes) {
      const rel = `main/binary-${arch}/${name}`;
      sums.push(` ${sha256(data)} ${String(data.length).padStart(8)} ${rel}`);
      const served = corrupt.index?.includes(suite) ? extraParagraph(name, text) : data;
      await mkdir(join(dists, dirname(rel)), { recursive: true });
      await writeFile(join(dists, rel), await served);
    }
  }
  const now = Date.now();
  const validUntil = now + 365 * 86_400_000;
  const release = [
    'Origin: kiln-test',
    'Label: kiln-test',
    `Suite: ${suite}`,
    `Codename: ${suite}`,
    `Date: ${new Date(now).toUTCString()}`,
    `Valid-Until: ${new Date(validUntil).toUTCString()}`,
    `Architectures: ${arches.join(' ')}`,
    'Components: main',
    'Description: kiln test archive',
    'SHA256:',
    ...sums,
    '',
  ].join('\n');
  await writeFile(join(dists, 'Release'), release);
}

async function extraParagraph(name: string, text: string): Promise<Buffer> {
  const forged = `${text}\nPackage: forged\nVersion: 1\nArchitecture: all\nFilename: pool/forged.deb\nSize: 1\nSHA256: ${'0'.repeat(64)}\n`;
  if (name.endsWith('.gz')) return gzipSync(forged);
  if (name.endsWith('.xz')) return xz.compress(Buffer.from(forged));
  return Buffer.from(forged);
}

async function newKey(gnupg: string, uid: string): Promise<string> {
  const gpg = ['--batch', '--homedir', gnupg, '--pinentry-mode', 'loopback', '--passphrase', ''];
  await run('gpg', [...gpg, '--quick-gen-key', uid, 'ed25519', 'sign', 'never']);
  const { stdout } = await run('gpg', ['--batch', '--homedir', gnupg, '--with-colons', '--list-keys', uid]);
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(stdout)?.[1];
  if (!fpr) throw new Error(`gpg made no key for ${uid}`);
  return fpr;
}

async function signSuite(gnupg: string, key: string, dists: string, tamper: boolean): Promise<void> {
  const inRelease = join(dists, 'InRelease');
  await run('gpg', [
    ...['--batch', '--homedir', gnupg, '--pinentry-mode', 'loopback', '--passphrase', ''],
    ...[
      '--local-user',
      key,
      '--digest-algo',
      'SHA256',
      '--clearsign',
      '--output',
      inRelease,
      join(dists, 'Release'),
    ],
  ]);
  if (tamper) {
    const text = await readFile(inRelease, 'utf8');
    await writeFile(inRelease, text.replace('Origin: kiln-test', 'Origin: kiln-evil'));
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
