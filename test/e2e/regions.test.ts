/**
 * Regions: two Debian docker-registry instances serve as the regions' registries, and each
 * region's target is a `kiln server` of its own (its own home, store and router) on this machine.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readServerFile, type ReleaseJson } from '../../src/api/index.js';
import type { RegionsDeployJson } from '../../src/cli/deploy-regions.js';
import { NotFoundError } from '../../src/errors/index.js';
import { SBOM_MEDIA_TYPE } from '../../src/bake/index.js';
import { OciStore, RegistryClient, SIGNATURE_ARTIFACT_TYPE, type Replication } from '../../src/oci/index.js';
import { cli } from '../support/bakery.js';
import { startCuttingProxy } from '../support/cutting-proxy.js';
import { useFleet, WEB_IMAGE_YAML, waitFor, type FleetProject } from '../support/fleet.js';
import { describeLoad, startLoad } from '../support/loadgen.js';
import { Cleanup, startRegistry, type RunningRegistry } from '../support/registry.js';

const MiB = 1024 ** 2;
const { fleet } = useFleet();
const registries = new Cleanup();
let regA: RunningRegistry;
let regB: RunningRegistry;

beforeAll(async () => {
  try {
    regA = await startRegistry(registries);
    regB = await startRegistry(registries);
  } catch (err) {
    await registries.run();
    throw err;
  }
});
afterAll(async () => {
  await registries.run();
});

async function skopeoDigest(ref: string): Promise<string> {
  const { stdout } = await execa('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
  return (JSON.parse(stdout) as { Digest: string }).Digest;
}

interface ReplicateJson {
  readonly image: { readonly name: string; readonly digest: string };
  readonly regions: readonly (Replication & { readonly region: string })[];
}

describe.sequential('regions with replicated images', () => {
  it('replicates an image into two registries with identical digests, resuming a copy cut mid-blob', async () => {
    // Given an image with an 8 MiB layer, and region eu's registry behind a proxy that cuts
    const f = await fleet({ replicas: 1 }, { bake: false });
    await f.project.write('big.bin', randomBytes(8 * MiB));
    const proxy = await startCuttingProxy(registries, regA.host, { buffered: true });
    await f.write(
      [
        '  - name: big',
        '    files: [{ src: big.bin, dest: /big.bin }]',
        'targets: { eu: { driver: local }, us: { driver: local } }',
        `regions: { eu: { target: eu, registry: "${proxy.host}/kiln" }, us: { target: us, registry: "${regB.host}/kiln" } }`,
        '',
      ].join('\n'),
    );
    await f.project.bake();
    const digest = (await (await f.project.store()).resolve('big'))!.digest;
    const replicate = ['replicate', 'big', '--regions', 'eu,us', '--chunk-size', '1Mi', '--json'];

    // When the copy to eu is cut after 5.5 MiB of the layer
    proxy.cutAfter(5.5 * MiB);
    const cut = await f.kiln(replicate);

    // Then it fails as unreachable, naming the region and how to resume
    expect(cut.code, cut.stdout + cut.stderr).toBe(3);
    expect(cut.stderr).toMatch(/replicating big to region eu .*run the same command again to resume/s);

    // When it is run again
    const before = proxy.received;
    const again = await f.kiln(replicate);
    expect(again.code, again.stderr).toBe(0);
    const json = JSON.parse(again.stdout) as ReplicateJson;

    // Then eu's copy went on from the registry's offset: fewer bytes than the layer went through
    const [eu, us] = json.regions;
    const layer = eu!.blobs.find((b) => b.size > 7 * MiB)!;
    console.log(
      `resumed at ${layer.resumedFrom} of ${layer.size} bytes; sent ${layer.bytesSent}; the proxy saw ${proxy.received - before}`,
    );
    expect(layer.resumedFrom).toBe(5 * MiB);
    expect(layer.bytesSent).toBe(layer.size - 5 * MiB);
    expect(proxy.received - before).toBeLessThan(layer.size);
    // And us got every blob whole
    expect(us!.blobs.every((b) => b.how === 'uploaded' && b.bytesSent === b.size)).toBe(true);

    // And both registries hold the same digest, as skopeo reads it, with the SBOM and signature
    expect(eu!.digest).toBe(digest);
    expect(us!.digest).toBe(digest);
    expect(await skopeoDigest(`${regA.host}/kiln/big@${digest}`)).toBe(digest);
    expect(await skopeoDigest(`${regB.host}/kiln/big@${digest}`)).toBe(digest);
    for (const host of [regA.host, regB.host]) {
      const client = new RegistryClient({ registry: host });
      const referrers = await client.getReferrers('kiln/big', digest as `sha256:${string}`);
      client.close();
      expect(referrers.map((r) => r.artifactType)).toEqual(
        expect.arrayContaining([SBOM_MEDIA_TYPE, SIGNATURE_ARTIFACT_TYPE]),
      );
    }

    // And copying again from eu's registry to us sends nothing: us has every blob
    const fromEu = await f.kiln(['replicate', `big@${digest}`, '--regions', 'us', '--from', 'eu', '--json']);
    expect(fromEu.code, fromEu.stderr).toBe(0);
    const copied = (JSON.parse(fromEu.stdout) as ReplicateJson).regions[0]!;
    expect(copied.digest).toBe(digest);
    expect(copied.bytesSent).toBe(0);
  }, 120_000);

  it('deploys region by region, each by canary, and stops at the region whose canary fails', async () => {
    // Given three regions, each its own control plane: eu and ap share registry A, us has B,
    // and us declares that the service fails on image generation 2
    const origin = await fleet({ replicas: 1 }, { bake: false });
    const place = () => fleet({ replicas: 1 }, { bake: false });
    const places = { eu: await place(), us: await place(), ap: await place() };
    const signer = path.join(origin.project.home, 'keys', 'signing.pub');
    const regionConfig = (f: FleetProject, failOn?: number) =>
      f.write(`${imageYaml(1)}services:\n${serviceYaml(f.port, signer, failOn)}`);
    await regionConfig(places.eu);
    await regionConfig(places.us, 2);
    await regionConfig(places.ap);
    const tokens: Record<string, string> = {};
    const apis: Record<string, string> = {};
    for (const [name, f] of Object.entries(places)) {
      await f.startServer();
      apis[name] = (await readServerFile(f.project.home))!.url;
      tokens[`KILN_TOKEN_${name.toUpperCase()}`] = (
        await readFile(path.join(f.project.home, 'admin-token'), 'utf8')
      ).trim();
    }
    const originConfig = async (gen: number) =>
      origin.write(
        [
          imageYaml(gen) + `services:\n${serviceYaml(origin.port, signer)}`,
          `targets: { eu: { driver: local, api: "${apis.eu}" }, us: { driver: local, api: "${apis.us}" }, ap: { driver: local, api: "${apis.ap}" } }`,
          `regions: { eu: { target: eu, registry: "${regA.host}/kiln" }, us: { target: us, registry: "${regB.host}/kiln" }, ap: { target: ap, registry: "${regA.host}/ap" } }`,
          '',
        ].join('\n'),
      );
    const deploy = (...flags: string[]) =>
      cli(origin.project.dir, ['deploy', 'web', '--regions', 'eu,us,ap', '--no-bake', ...flags], {
        KILN_HOME: origin.project.home,
        ...tokens,
      });
    await originConfig(1);
    await origin.project.bake();
    const gen1 = (await (await origin.project.store()).resolve('web'))!.digest;

    // When generation 1 is deployed to every region (as people read it, not --json)
    const first = await deploy();

    // Then each region made r1 of it, one after another
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const lines = first.stdout.split('\n').filter((l) => / r1 succeeded/.test(l));
    expect(lines.map((l) => l.split(':')[0])).toEqual(['eu', 'us', 'ap']);
    expect(first.stdout).toContain(`eu: ${regA.host}/kiln/web@${gen1}`);
    expect(first.stdout).toContain(`ap: ${regA.host}/ap/web@${gen1}`);
    // ap's registry is eu's: the blobs are mounted from eu's repository, not sent again.
    expect(first.stdout).toMatch(
      /^ap: .* — (\d+) blobs: 0 uploaded \(0 B sent\), \1 mounted, 0 already there;/m,
    );
    const r1 = { image: { digest: gen1 } };
    // Each control plane pulled the image by digest from its region's registry, signature included.
    for (const f of Object.values(places)) {
      const store = await OciStore.open(path.join(f.project.home, 'store'));
      expect((await store.resolve(r1.image.digest))?.digest).toBe(r1.image.digest);
      expect(
        (await store.referrers(r1.image.digest as `sha256:${string}`)).map((d) => d.artifactType),
      ).toContain(SIGNATURE_ARTIFACT_TYPE);
    }

    const urls = [places.eu, places.us].map((f) => f.url);
    for (const url of urls) {
      await waitFor(
        `${url} to answer`,
        async () => ((await fetch(url).catch(() => undefined))?.ok ? true : undefined),
        {
          timeoutMs: 15_000,
          everyMs: 50,
        },
      );
    }
    const loads = await Promise.all(urls.map((url) => startLoad({ url, rate: 150, bodies: true })));

    // When image generation 2 is deployed to eu, then us, then ap
    await originConfig(2);
    await origin.project.bake();
    const second = await deploy('--json');
    const summaries = await Promise.all(loads.map((l) => l.stop()));
    summaries.forEach((s, i) =>
      console.log(`${['eu', 'us'][i]} under the regional deploy: ${describeLoad(s)}`),
    );

    // Then eu succeeded by canary, us was rolled back by its canary, and the deploy stopped there
    expect(second.code, second.stderr).toBe(1);
    expect(second.stderr).toMatch(
      /stopped at region us: r2 rolled-back: canary analysis failed.*; not deployed to: ap/,
    );
    const r2 = JSON.parse(second.stdout) as RegionsDeployJson;
    expect(r2.failedRegion).toBe('us');
    expect(r2.regions.map((r) => [r.region, r.result, r.rollout?.strategy, r.rollout?.phase])).toEqual([
      ['eu', 'succeeded', 'canary', 'succeeded'],
      ['us', 'failed', 'canary', 'rolled-back'],
      ['ap', 'skipped', undefined, undefined],
    ]);
    expect(await skopeoDigest(`${regA.host}/kiln/web@${r2.image.digest}`)).toBe(r2.image.digest);
    expect(await skopeoDigest(`${regB.host}/kiln/web@${r2.image.digest}`)).toBe(r2.image.digest);

    // And ap got nothing: no release, and not even the image in its registry
    const current = async (f: FleetProject) =>
      (await (await f.api()).releases('web')).find((r: ReleaseJson) => r.current)!;
    expect((await current(places.eu)).digest).toBe(r2.image.digest);
    expect((await current(places.us)).name).toBe('r1');
    expect((await (await places.ap.api()).releases('web')).map((r) => r.name)).toEqual(['r1']);
    const a = new RegistryClient({ registry: regA.host });
    await expect(a.getManifest('ap/web', r2.image.digest)).rejects.toThrow(NotFoundError);
    a.close();
    expect(summaries[0]!.failed).toBe(0);
    // us's clients saw 500s only, and only from r2's canary
    expect(Object.keys(summaries[1]!.failures)).toEqual(['status 500']);
    expect(summaries[1]!.bodies?.['r2 gen 1 fail\n']).toBe(summaries[1]!.failed);
  }, 300_000);
});

/** busybox httpd serving a CGI page; `BASE_GEN` in the image's env says its generation. */
function imageYaml(gen: number): string {
  return `${WEB_IMAGE_YAML}    env: { BASE_GEN: "${gen}" }\n`;
}

/** The service as a region declares it: canary at 25 % analysed for 10 s; fails 5 % on generation `failOn`. */
function serviceYaml(port: number, signer: string, failOn?: number): string {
  const canary = {
    type: 'canary',
    steps: [{ weight: 25, analyse: '10s' }, { weight: 100 }],
    analysis: { interval: '5s', minSamples: 150 },
  };
  return [
    '  - name: web',
    '    image: web',
    '    replicas: 2',
    `    port: ${port}`,
    '    health: { http: /health.html, interval: 200ms, timeout: 1s }',
    `    env: ${JSON.stringify({ CGI: '1', GEN: '1', ...(failOn ? { FAIL_ON_BASE: String(failOn) } : {}) })}`,
    `    strategy: ${JSON.stringify(canary)}`,
    `    trust: { keys: [${JSON.stringify(signer)}] }`,
    '',
  ].join('\n');
}
