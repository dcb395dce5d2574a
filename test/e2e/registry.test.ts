/**
 * kiln's own registry, as independent clients see it: `kiln server` serves the image store under
 * `/v2/` with the API's tokens, and skopeo (containers/image), podman and kiln's own RegistryClient
 * pull from it (skopeo and kiln's client push to it too) over plain HTTP on loopback.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { readServerFile } from '../../src/api/index.js';
import { OciStore, RegistryClient } from '../../src/oci/index.js';
import { buildTinyImage, PODMAN_RUN_FLAGS, podmanStorage, requireTools } from '../support/oci-fixtures.js';
import { useFleet, type FleetProject } from '../support/fleet.js';

const { fleet } = useFleet();
const temps: string[] = [];
afterEach(async () => {
  for (const dir of temps.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

/** A project with its image `web` baked and `kiln server` running; tokens of each scope. */
async function serving(): Promise<{ fp: FleetProject; host: string; read: string; deploy: string }> {
  await requireTools('skopeo');
  const fp = await fleet({ replicas: 1 });
  await fp.startServer(['--verify-interval', '0']);
  const api = await fp.api();
  const read = (await api.createToken({ name: 'puller', scopes: ['read'] })).secret;
  const deploy = (await api.createToken({ name: 'ci', scopes: ['deploy'] })).secret;
  const { url } = (await readServerFile(fp.project.home))!;
  return { fp, host: new URL(url).host, read, deploy };
}

function skopeo(args: string[]) {
  return execa('skopeo', ['--insecure-policy', ...args], { reject: false, timeout: 120_000 });
}

async function imagesJson(fp: FleetProject): Promise<{ name: string; digest: string }[]> {
  const out = await fp.kiln(['images', '--json']);
  expect(out.code, out.stderr).toBe(0);
  return JSON.parse(out.stdout) as { name: string; digest: string }[];
}

describe('kiln registry', () => {
  it('Given a baked image, When skopeo copies it out with a read token, Then the copy has the same digest', async () => {
    const { fp, host, read } = await serving();
    const [web] = (await imagesJson(fp)).filter((i) => i.name === 'web');
    expect(web).toBeDefined();
    const dest = path.join(await tempDir('kiln-registry-out-'), 'layout');
    const copy = await skopeo([
      'copy',
      '--src-creds',
      `kiln:${read}`,
      '--src-tls-verify=false',
      `docker://${host}/web:latest`,
      `oci:${dest}:web`,
    ]);
    expect(copy.exitCode, copy.stderr).toBe(0);
    const index = JSON.parse(await readFile(path.join(dest, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    expect(index.manifests.map((m) => m.digest)).toEqual([web!.digest]);
    const inspect = await skopeo([
      'inspect',
      '--creds',
      `kiln:${read}`,
      '--tls-verify=false',
      `docker://${host}/web`,
    ]);
    expect(inspect.exitCode, inspect.stderr).toBe(0);
    expect((JSON.parse(inspect.stdout) as { Digest: string }).Digest).toBe(web!.digest);
    const tags = await skopeo([
      'list-tags',
      '--creds',
      `kiln:${read}`,
      '--tls-verify=false',
      `docker://${host}/web`,
    ]);
    expect((JSON.parse(tags.stdout) as { Tags: string[] }).Tags).toEqual(['latest']);

    const anonymous = await skopeo([
      'copy',
      '--src-tls-verify=false',
      `docker://${host}/web:latest`,
      `oci:${dest}-2:web`,
    ]);
    expect(anonymous.exitCode).not.toBe(0);
    expect(anonymous.stderr).toMatch(/unauthorized|authentication required/i);
  });

  it('Given a baked image, When podman pulls it with a read token, Then it runs it, with the same digest', async () => {
    await requireTools('podman');
    const { fp, host, read } = await serving();
    const [web] = (await imagesJson(fp)).filter((i) => i.name === 'web');
    const dir = await tempDir('kiln-registry-podman-');
    const podman = (args: string[]) =>
      execa('podman', [...podmanStorage(dir), ...args], { reject: false, timeout: 120_000 });
    const image = `${host}/web:latest`;
    const anonymous = await podman(['pull', '--tls-verify=false', image]);
    expect(anonymous.exitCode).not.toBe(0);

    const pulled = await podman(['pull', '--tls-verify=false', '--creds', `kiln:${read}`, image]);
    expect(pulled.exitCode, pulled.stderr).toBe(0);
    const digest = await podman(['image', 'inspect', '--format', '{{.Digest}}', image]);
    expect(digest.stdout.trim()).toBe(web!.digest);
    const ran = await podman([
      'run',
      '--rm',
      ...PODMAN_RUN_FLAGS,
      '--entrypoint',
      '/bin/busybox',
      image,
      'echo',
      'podman ran it from kiln',
    ]);
    expect(ran.exitCode, ran.stderr).toBe(0);
    expect(ran.stdout.trim().split('\n').at(-1)).toBe('podman ran it from kiln');
  });

  it('Given an OCI layout, When skopeo copies it in with a deploy token, Then kiln images lists it; a read token and no token are refused', async () => {
    const { fp, host, read, deploy } = await serving();
    const src = await OciStore.open(path.join(await tempDir('kiln-registry-in-'), 'store'));
    const tiny = await buildTinyImage(src, 'tiny', 'copied in by skopeo');
    const layout = path.join(await tempDir('kiln-registry-layout-'), 'layout');
    await src.exportImage('tiny', layout, { tag: 'tiny' });
    const into = (creds: string[]) =>
      skopeo([
        'copy',
        ...creds,
        '--dest-tls-verify=false',
        `oci:${layout}:tiny`,
        `docker://${host}/tiny:1.0`,
      ]);

    const refused = await into(['--dest-creds', `kiln:${read}`]);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toMatch(/denied|403|forbidden/i);
    const anonymous = await into([]);
    expect(anonymous.exitCode).not.toBe(0);
    expect((await imagesJson(fp)).map((i) => i.name)).not.toContain('tiny:1.0');

    const pushed = await into(['--dest-creds', `kiln:${deploy}`]);
    expect(pushed.exitCode, pushed.stderr).toBe(0);
    const listed = (await imagesJson(fp)).find((i) => i.name === 'tiny:1.0');
    expect(listed?.digest).toBe(tiny.descriptor.digest);

    const records = await (await fp.api()).audit(200);
    const mine = records.filter((r) => r.action.startsWith('registry.'));
    expect(mine).toContainEqual(
      expect.objectContaining({ actor: 'ci', action: 'registry.manifest.put', result: 'ok' }),
    );
    expect(mine).toContainEqual(expect.objectContaining({ actor: 'puller', result: 'denied' }));
  });

  it("Given kiln's own registry client, When it pushes an image with its referrers and pulls it back, Then digests and referrers survive", async () => {
    const { fp, host, deploy, read } = await serving();
    const local = await OciStore.open(path.join(fp.project.home, 'store'));
    const web = (await local.resolve('web'))!;
    const referrers = await local.referrers(web.digest);
    expect(referrers.length).toBeGreaterThanOrEqual(2); // SBOM and signature at least

    const src = await OciStore.open(path.join(await tempDir('kiln-registry-client-'), 'store'));
    const tiny = await buildTinyImage(src, 'tiny', 'pushed by RegistryClient');
    await src.attach(tiny.descriptor, {
      artifactType: 'application/vnd.example.note',
      mediaType: 'text/plain',
      data: Buffer.from('a note'),
    });
    const pusher = new RegistryClient({ registry: host, username: 'kiln', password: deploy, chunkSize: 64 });
    const puller = new RegistryClient({ registry: host, username: 'kiln', password: read });
    try {
      const pushed = await pusher.pushImage(
        src,
        'tiny',
        { repository: 'team/tiny', tag: '2.0' },
        { referrers: true },
      );
      expect(pushed.descriptor.digest).toBe(tiny.descriptor.digest);
      expect(pushed.fallbackTags).toEqual([]); // the registry indexed the subject itself (OCI-Subject)
      expect((await local.resolve('team/tiny:2.0'))?.digest).toBe(tiny.descriptor.digest);

      const fresh = await OciStore.open(path.join(await tempDir('kiln-registry-pull-'), 'store'));
      const pulled = await puller.pullImage({ repository: 'web', tag: 'latest' }, fresh, 'web', {
        referrers: true,
      });
      expect(pulled.descriptor.digest).toBe(web.digest);
      expect(pulled.referrers.map((r) => r.digest).sort()).toEqual(referrers.map((r) => r.digest).sort());
      await expect(puller.pushImage(src, 'tiny', { repository: 'team/tiny', tag: '3.0' })).rejects.toThrow(
        /403|denied|deploy/i,
      );
    } finally {
      pusher.close();
      puller.close();
    }
  });
});
