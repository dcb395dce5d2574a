import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../src/bake/index.js';
import { ensureRootfs, processFromImage, runOnce } from '../../src/runtime/index.js';
import type { ImageConfig } from '../../src/oci/index.js';
import type { TestArchive } from '../support/debian-archive.js';
import { cli, makeProject, startBakeryArchive, type Project } from '../support/bakery.js';
import { PODMAN_RUN_FLAGS, podmanStorage, requireTools } from '../support/oci-fixtures.js';
import { Cleanup, startRegistry } from '../support/registry.js';

const exec = promisify(execFile);

let archive: TestArchive;
let p: Project;
let exported: string;
const cleanup = new Cleanup();

beforeAll(async () => {
  await requireTools('skopeo', 'umoci', 'podman', 'docker-registry');
  archive = await startBakeryArchive();
  p = await makeProject();
  // Given an image of busybox-static only, whose default command prints a greeting,
  // and one with a run step that changes the image while it is built
  await p.config(
    archive,
    `  - name: busybox
    from: debian:testing
    packages: [busybox-static]
    entrypoint: [/usr/bin/busybox]
    cmd: [echo, hello from kiln]
  - name: stepped
    from: busybox
    packages: [hello-tool]
    run:
      - command: [/usr/bin/busybox, sh, -c, "echo built > /etc/built-by-run && rm /usr/bin/hello-tool"]
`,
  );
  await p.bake();
  // podman names an oci: image after its path, and names must be lowercase.
  exported = path.join(tmpdir(), `kiln-export-${randomBytes(6).toString('hex')}`);
  const out = await cli(p.dir, ['bake', 'busybox', '--out', `oci:${exported}`], { KILN_HOME: p.home });
  expect(out.stderr).toContain('exported busybox');
});

afterAll(async () => {
  await cleanup.run();
  if (exported) await rm(exported, { recursive: true, force: true });
  await p?.cleanup();
  await archive?.close();
});

async function imageRun(name: string, runtime: 'crun' | 'runc', args: string[] = []) {
  const store = await p.store();
  const desc = (await store.resolve(name))!;
  const manifest = await store.getManifest(desc.digest);
  const config = JSON.parse((await store.getBlob(manifest.config.digest)).toString()) as ImageConfig;
  const rootfs = await ensureRootfs(store, desc.digest, path.join(p.home, 'rootfs'));
  return runOnce({ rootfs, runtime, ...processFromImage(config, args), timeoutMs: 30_000 });
}

describe.each(['runc', 'crun'] as const)('a baked busybox image under %s', (runtime) => {
  it('runs its default command and prints what it is told', async () => {
    const r = await imageRun('busybox', runtime);
    expect(r).toMatchObject({ exitCode: 0, stdout: 'hello from kiln\n' });
    const told = await imageRun('busybox', runtime, ['echo', `told ${runtime}`]);
    expect(told.stdout).toBe(`told ${runtime}\n`);
  });
});

describe('ensureRootfs', () => {
  it('unpacks an image once when many instances ask for it at the same time', async () => {
    const store = await p.store();
    const desc = (await store.resolve('busybox'))!;
    // Reads of the image's layers: each layer once per unpack.
    const layers = new Set((await store.getManifest(desc.digest)).layers.map((l) => l.digest));
    let reads = 0;
    const getBlob = store.getBlob.bind(store);
    store.getBlob = (digest) => {
      if (layers.has(digest)) reads++;
      return getBlob(digest);
    };
    const dir = path.join(p.home, 'rootfs-concurrent');
    const roots = await Promise.all(Array.from({ length: 20 }, () => ensureRootfs(store, desc.digest, dir)));
    expect(new Set(roots).size).toBe(1);
    expect(reads).toBe(layers.size);
    expect(existsSync(path.join(roots[0]!, 'bin', 'busybox'))).toBe(true);
  });
});

describe('run steps', () => {
  it('turn the changes a command makes inside the image into a layer, deletions included', async () => {
    const files = await p.files('stepped');
    expect(files.get('etc/built-by-run')!.content!.toString()).toBe('built\n');
    expect(files.has('usr/bin/hello-tool')).toBe(false);
    const r = await imageRun('stepped', 'runc', ['cat', '/etc/built-by-run']);
    expect(r.stdout).toBe('built\n');
    const gone = await imageRun('stepped', 'runc', ['ls', '/usr/bin/hello-tool']);
    expect(gone.exitCode).not.toBe(0);
  });
});

describe('independent OCI tools read what kiln writes', () => {
  it('skopeo inspects the exported layout, with the same digest', async () => {
    const store = await p.store();
    const digest = (await store.resolve('busybox'))!.digest;
    const { stdout } = await exec('skopeo', ['inspect', `oci:${exported}:busybox`]);
    const info = JSON.parse(stdout) as { Digest: string; Architecture: string; Os: string };
    expect(info).toMatchObject({ Digest: digest, Architecture: 'amd64', Os: 'linux' });
  });

  it('umoci unpacks it into a root filesystem with the busybox binary', async () => {
    const bundle = await cleanup.tempDir('kiln-umoci-');
    await exec('umoci', ['unpack', '--image', `${exported}:busybox`, path.join(bundle, 'b')]);
    const { stdout } = await exec('ls', ['-l', path.join(bundle, 'b', 'rootfs', 'usr', 'bin', 'busybox')]);
    expect(stdout).toMatch(/^-rwxr-xr-x/);
  });

  it('podman runs it', async () => {
    const dir = await cleanup.tempDir('kiln-podman-');
    const { stdout } = await exec(
      'podman',
      [
        ...podmanStorage(dir),
        'run',
        '--rm',
        ...PODMAN_RUN_FLAGS,
        `oci:${exported}:busybox`,
        'echo',
        'podman ran a kiln image',
      ],
      { timeout: 120_000 },
    );
    expect(stdout.trim().split('\n').at(-1)).toBe('podman ran a kiln image');
  });

  it('kiln push to a Debian docker-registry on loopback is read back by skopeo, SBOM and signature included', async () => {
    const registry = await startRegistry(cleanup);
    const r = await cli(p.dir, ['push', 'busybox', `${registry.host}/team/busybox:1.0`, '--json'], {
      KILN_HOME: p.home,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const pushed = JSON.parse(r.stdout) as { digest: string };
    const { stdout } = await exec('skopeo', [
      'inspect',
      '--tls-verify=false',
      `docker://${registry.host}/team/busybox:1.0`,
    ]);
    expect((JSON.parse(stdout) as { Digest: string }).Digest).toBe(pushed.digest);
    // The referrers fallback tag (distribution 2.8 has no referrers API) lists the SBOM, the
    // signature and the manifest of files.
    const tag = pushed.digest.replace(':', '-');
    const raw = await exec('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${registry.host}/team/busybox:${tag}`,
    ]);
    const types = (JSON.parse(raw.stdout) as { manifests: { artifactType: string }[] }).manifests
      .map((m) => m.artifactType)
      .sort();
    expect(types).toEqual([
      'application/vnd.cyclonedx+json',
      'application/vnd.dsse.envelope.v1+json',
      'application/vnd.kiln.files.v1+json',
    ]);
  });
});

describe('kiln run', () => {
  it('runs the image through the CLI and passes its exit code on', async () => {
    const ok = await cli(p.dir, ['run', 'busybox'], { KILN_HOME: p.home });
    expect(ok).toMatchObject({ code: 0, stdout: 'hello from kiln\n' });
    const failed = await cli(p.dir, ['run', 'busybox', '--', 'sh', '-c', 'exit 7'], { KILN_HOME: p.home });
    expect(failed.code).toBe(7);
    expect(homePaths(p.home).store).toBeTruthy();
  });
});
