import { chmod, open } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/errors/index.js';
import { loadOrCreateSigningKey, signManifest, SIGNATURE_ARTIFACT_TYPE } from '../../src/bake/index.js';
import { ExitCode } from '../../src/cli/exit.js';
import { canonicalJson } from '../../src/oci/index.js';
import {
  get,
  pageOf,
  SERVICE,
  useFleet,
  waitFor,
  WEB_IMAGE_YAML,
  type FleetProject,
} from '../support/fleet.js';

const { fleet } = useFleet();

/** The web service as the fleet tests declare it, trusting `keys` when given. */
function servicesYaml(f: FleetProject, gen: number, keys?: readonly string[]): string {
  return [
    'services:',
    `  - name: ${SERVICE}`,
    '    image: web',
    '    replicas: 1',
    `    port: ${f.port}`,
    '    health: { http: /index.html, interval: 200ms, timeout: 1s }',
    `    env: { GEN: "${gen}" }`,
    ...(keys ? [`    trust: { keys: ${JSON.stringify(keys)} }`] : []),
    '',
  ].join('\n');
}

/** The id of the project's own signing key (`.kiln/keys/signing.pub`). */
async function projectKeyId(f: FleetProject): Promise<string> {
  return (await loadOrCreateSigningKey(path.join(f.project.home, 'keys'))).keyid;
}

describe.sequential('signed images only', () => {
  it('refuses to deploy an image signed by a key the service does not trust, and deploys it once signed by one it does', async () => {
    // Given a project whose image was baked (and so signed by the project's own key), and its server
    const f = await fleet({ replicas: 1 });
    const own = await projectKeyId(f);
    const digest = (await (await f.project.store()).resolve('web'))!.digest;
    // And a second key, of a CI that signs releases, which is the only key the service trusts
    const ci = await loadOrCreateSigningKey(path.join(f.project.dir, 'ci-keys'));
    const ciPub = path.join(f.project.dir, 'ci-keys', 'signing.pub');
    await f.write(`${WEB_IMAGE_YAML}${servicesYaml(f, 1, ['ci-keys/signing.pub'])}`);
    await f.startServer();

    // When the service is deployed
    const refused = await f.kiln(['deploy', SERVICE, '--no-bake']);

    // Then it is refused as an integrity failure saying what signed the image, what is trusted, and the fix
    expect(refused.code, refused.stdout + refused.stderr).toBe(ExitCode.Integrity);
    expect(refused.stderr).toContain(
      `web: refusing to deploy web (${digest}): no signature by a key the service trusts`,
    );
    expect(refused.stderr).toContain(`signed by: ${own}`);
    expect(refused.stderr).toContain(`trusted: ${ci.keyid} (${ciPub})`);
    expect(refused.stderr).toMatch(/fix: bake and sign the image with a trusted key .*trust\.keys/);
    // And nothing was recorded: no service, no release; the audit log has the refusal
    const api = await f.api();
    await expect(api.releases(SERVICE)).rejects.toBeInstanceOf(NotFoundError);
    expect((await api.audit(1))[0]).toMatchObject({ action: 'deploy', target: SERVICE, result: 'failed' });

    // When the CI key signs the image too (a signature attached in the store, as a bake by it would)
    const store = await f.project.store();
    const image = (await store.resolve('web'))!;
    await store.attach(image, {
      artifactType: SIGNATURE_ARTIFACT_TYPE,
      mediaType: SIGNATURE_ARTIFACT_TYPE,
      data: canonicalJson(signManifest(ci, 'web', image.digest)),
    });

    // Then the same deploy is admitted and released, and serves
    const deployed = await f.kiln(['deploy', SERVICE, '--no-bake', '--wait', '--timeout', '60s']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    expect((await api.releases(SERVICE)).map((r) => [r.name, r.digest])).toEqual([['r1', digest]]);
    expect(await get(f.url)).toEqual({ status: 200, body: pageOf('r1', 1) });
  }, 120_000);

  it('refuses to deploy an image with one flipped byte in a layer blob, naming the blob, and records nothing', async () => {
    // Given r1 of the service serving, its image signed by the project's key (the default trust)
    const f = await fleet({ replicas: 1 });
    await f.startServer();
    const first = await f.kiln(['deploy', SERVICE, '--no-bake', '--wait', '--timeout', '60s']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    // And one byte of the image's largest layer flipped on disk, under .kiln/store/blobs/sha256/
    const store = await f.project.store();
    const digest = (await store.resolve('web'))!.digest;
    const manifest = await store.getManifest(digest);
    const largest = [...manifest.layers].sort((a, b) => b.size - a.size)[0]!;
    const index = manifest.layers.indexOf(largest);
    const file = store.blobPath(largest.digest);
    expect(file.startsWith(path.join(f.project.home, 'store', 'blobs', 'sha256'))).toBe(true);
    await flipByte(file, Math.floor(largest.size / 2));

    // When a change of the service (a new release) is deployed
    await f.write(`${WEB_IMAGE_YAML}${servicesYaml(f, 2)}`);
    const refused = await f.kiln(['deploy', SERVICE, '--no-bake']);

    // Then it is refused as an integrity failure naming the layer, its blob and file, and the fix
    expect(refused.code, refused.stdout + refused.stderr).toBe(ExitCode.Integrity);
    expect(refused.stderr).toContain(
      `web: refusing to deploy web (${digest}): layer ${index + 1} of ${manifest.layers.length}: blob ${largest.digest} (${file}) does not match its digest`,
    );
    expect(refused.stderr).toContain('fix: delete that file and bake the image again');
    // And no release was recorded; r1 still serves (asked until it answers: on a busy machine a
    // health check may time out, and the instance is replaced from the same root)
    const api = await f.api();
    expect((await api.releases(SERVICE)).map((r) => r.name)).toEqual(['r1']);
    const page = await waitFor('r1 to answer', async () => {
      const answer = await get(f.url);
      return 'status' in answer && answer.status === 200 ? answer.body : undefined;
    });
    expect(page).toBe(pageOf('r1', 1));
  }, 120_000);
});

/** Flips one bit of the byte at `at` in place, as a failing disk or an intruder would. */
async function flipByte(file: string, at: number): Promise<void> {
  await chmod(file, 0o644);
  const fh = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, at);
    byte[0] = byte[0]! ^ 0x10;
    await fh.write(byte, 0, 1, at);
  } finally {
    await fh.close();
  }
}
