/**
 * Shared set-up for the bakery's end-to-end tests: fixture Debian packages (one of them the host's
 * static busybox, so images can run something real), a signed archive serving them on loopback,
 * and throwaway projects whose config points at it.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { bake, homePaths, type BakeOptions, type BakedImage } from '../../src/bake/index.js';
import { OciStore, readLayer, type ImageManifest, type LayerEntry } from '../../src/oci/index.js';
import { loadConfig } from '../../src/spec/index.js';
import {
  startTestArchive,
  type FixturePackage,
  type TestArchive,
  type TestArchiveOptions,
} from './debian-archive.js';
import { assertStaticBusybox, HOST_BUSYBOX } from './rootfs.js';

const run = promisify(execFile);

/** The repository root, for running the built CLI. */
export const REPO = path.resolve(import.meta.dirname, '../..');

/** The packages every bakery test archive starts with, in the `testing` suite. */
export function basePackages(): FixturePackage[] {
  return [
    {
      name: 'libfake1',
      version: '1.0-1',
      files: {
        'lib/x86_64-linux-gnu/libfake.so.1.0': 'not really a library\n',
        'lib/x86_64-linux-gnu/libfake.so.1': { symlink: 'libfake.so.1.0' },
      },
      copyright: { license: 'LGPL-2.1+' },
    },
    {
      name: 'hello-tool',
      version: '1.0-1',
      depends: 'libfake1 (>= 1.0), mail-transport-agent | fake-mta',
      files: {
        'bin/hello-tool': { content: '#!/bin/sh\necho hello\n', mode: 0o755 },
        'usr/share/man/man1/hello-tool.1.gz': '.TH HELLO-TOOL 1\n',
        'usr/share/hello-tool/data.txt': 'data\n',
      },
    },
    {
      name: 'fake-mta',
      version: '2.0-1',
      provides: 'mail-transport-agent',
      files: { 'usr/sbin/sendmail': { content: 'x', mode: 0o755 } },
    },
    {
      name: 'busybox-static',
      version: '1:1.35.0-4',
      files: { 'bin/busybox': { source: HOST_BUSYBOX, mode: 0o755 } },
      copyright: { license: 'GPL-2' },
    },
    {
      name: 'fake-certs',
      version: '1',
      files: {
        'usr/share/ca-certificates/test/b.crt':
          '-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n',
        'usr/share/ca-certificates/test/a.crt':
          '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----',
      },
    },
    { name: 'unrelated', version: '1', files: { 'usr/bin/unrelated': 'x' } },
  ];
}

/** The same archive with a security update of hello-tool. */
export function updatedPackages(): FixturePackage[] {
  return [
    ...basePackages(),
    {
      name: 'hello-tool',
      version: '1.0-1+deb1u1',
      suite: 'testing-security',
      depends: 'libfake1 (>= 1.0)',
      files: { 'bin/hello-tool': { content: '#!/bin/sh\necho patched\n', mode: 0o755 } },
    },
  ];
}

/** Starts a fixture archive with the host's static busybox packaged in it. */
export async function startBakeryArchive(options: Partial<TestArchiveOptions> = {}): Promise<TestArchive> {
  await assertStaticBusybox(HOST_BUSYBOX);
  return startTestArchive({ packages: basePackages(), ...options });
}

/** A throwaway project directory; `write` puts files in it. */
export interface Project {
  readonly dir: string;
  readonly home: string;
  write(file: string, content: string | Buffer): Promise<void>;
  /** Writes kiln.yaml with the archive as mirror and `images` (YAML text, indented under `images:`). */
  config(archive: TestArchive, images: string): Promise<string>;
  bake(options?: Partial<BakeOptions>): Promise<BakedImage[]>;
  store(): Promise<OciStore>;
  /** Files of an image as the final root holds them (last layer wins, whiteouts applied). */
  files(name: string): Promise<Map<string, LayerEntry>>;
  copyTo(other: Project): Promise<void>;
  cleanup(): Promise<void>;
}

/** Makes a project in a new temp dir, with its state (`KILN_HOME`) in another. */
export async function makeProject(): Promise<Project> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kiln-project-'));
  const home = await mkdtemp(path.join(tmpdir(), 'kiln-home-'));
  const project: Project = {
    dir,
    home,
    async write(file, content) {
      await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
      await writeFile(path.join(dir, file), content);
    },
    async config(archive, images) {
      const text = `mirror: { url: "${archive.url}", keyring: "${archive.keyring}" }\narch: amd64\nimages:\n${images}`;
      await project.write('kiln.yaml', text);
      return path.join(dir, 'kiln.yaml');
    },
    async bake(options = {}) {
      const config = await loadConfig(path.join(dir, 'kiln.yaml'));
      return bake({ config, home, env: {}, ...options });
    },
    async store() {
      return OciStore.open(homePaths(home).store);
    },
    async files(name) {
      const store = await project.store();
      const desc = await store.resolve(name);
      if (!desc) throw new Error(`no image ${name}`);
      const manifest: ImageManifest = await store.getManifest(desc.digest);
      const tree = new Map<string, LayerEntry>();
      for (const layer of manifest.layers) {
        for (const e of await readLayer(await store.getBlob(layer.digest))) {
          const base = path.posix.basename(e.path);
          if (base.startsWith('.wh.')) {
            const gone = path.posix.join(path.posix.dirname(e.path), base.slice(4));
            for (const p of [...tree.keys()]) if (p === gone || p.startsWith(`${gone}/`)) tree.delete(p);
          } else tree.set(e.path, e);
        }
      }
      return tree;
    },
    async copyTo(other) {
      await cp(dir, other.dir, { recursive: true });
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
      await rm(home, { recursive: true, force: true });
    },
  };
  return project;
}

/**
 * An apt root with no sources: the CLI under test reads apt sources from here (KILN_APT_ROOT), so a
 * config that forgot its fixture mirror fails instead of reaching the machine's real archive.
 */
export const NO_APT_SOURCES = '/nonexistent/kiln-tests-have-no-apt-sources';

/** Runs the built CLI (`npm test` builds it first) and returns its exit code and output. */
export async function cli(
  cwd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('node', [path.join(REPO, 'bin', 'kiln.js'), ...args], {
      cwd,
      env: { ...process.env, SOURCE_DATE_EPOCH: '', KILN_APT_ROOT: NO_APT_SOURCES, ...env },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Reads a file of a project. */
export function readProjectFile(project: Project, file: string): Promise<string> {
  return readFile(path.join(project.dir, file), 'utf8');
}

/**
 * Registers the usual hooks of a bakery test file: one fixture archive for the file, and projects
 * (made with `project()`) removed after each test, even when it fails.
 */
export function useBakery(): {
  archive: () => TestArchive;
  project: () => Promise<Project>;
  track: (a: TestArchive) => TestArchive;
} {
  let archive: TestArchive | undefined;
  const projects: Project[] = [];
  const extra: TestArchive[] = [];
  beforeAll(async () => {
    archive = await startBakeryArchive();
  });
  afterAll(async () => {
    await archive?.close();
  });
  afterEach(async () => {
    for (const p of projects.splice(0)) await p.cleanup();
    for (const a of extra.splice(0)) await a.close();
  });
  return {
    archive: () => {
      if (!archive) throw new Error('the fixture archive did not start');
      return archive;
    },
    project: async () => {
      const p = await makeProject();
      projects.push(p);
      return p;
    },
    track: (a) => {
      extra.push(a);
      return a;
    },
  };
}
