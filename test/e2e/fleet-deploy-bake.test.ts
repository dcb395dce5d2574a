import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/cli/exit.js';
import type { DeployResultJson } from '../../src/api/index.js';
import { get, pageOf, SERVICE, useFleet, WEB_IMAGE_YAML } from '../support/fleet.js';

const { fleet } = useFleet();

describe.sequential('kiln deploy bakes first', () => {
  it("bakes the service's image before releasing it, unless told --no-bake", async () => {
    // Given a project whose image was never baked, and its server
    const f = await fleet({ replicas: 1 }, { bake: false });
    await f.startServer();

    // When it is deployed with --no-bake, the server has no such image: a usage error naming the fix
    const refused = await f.kiln(['deploy', SERVICE, '--no-bake']);
    expect(refused.code, refused.stdout + refused.stderr).toBe(ExitCode.Usage);
    expect(refused.stderr).toContain('kiln bake web');

    // When it is deployed as usual, the image is baked first and released
    const deployed = await f.kiln(['deploy', SERVICE, '--wait', '--timeout', '60s']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    expect(deployed.stderr).toMatch(/image web: baked sha256:[0-9a-f]{12}/);
    const answer = await get(f.url);
    expect(answer).toEqual({ status: 200, body: pageOf('r1', 1) });

    // And a second deploy with nothing changed bakes nothing and releases nothing new
    const again = await f.kiln(['deploy', SERVICE]);
    expect(again.code).toBe(0);
    expect(again.stderr).not.toContain('baked');
    expect(again.stdout).toContain('already current');
  }, 120_000);

  it('--bake rebakes only what changed and releases it blue/green', async () => {
    // Given r1 of an image that carries a file of the project, serving
    const f = await fleet({ replicas: 2 }, { bake: false });
    const config = async (text: string) => {
      await f.project.write('notes.txt', text);
      const image = `${WEB_IMAGE_YAML}    files: [{ src: notes.txt, dest: /etc/notes.txt }]\n`;
      const services = `services:\n  - { name: ${SERVICE}, image: web, replicas: 2, port: ${f.port}, health: { http: /index.html, interval: 200ms }, env: { GEN: "1" } }\n`;
      await f.write(`${image}${services}`);
    };
    await config('first\n');
    await f.startServer();
    const first = await f.kiln(['deploy', SERVICE, '--wait', '--json']);
    expect(first.code, first.stdout + first.stderr).toBe(0);

    // When only that file changes and the service is deployed with --bake
    await config('second\n');
    const started = Date.now();
    const fast = await f.kiln(['deploy', SERVICE, '--bake', '--wait', '--json']);
    const ms = Date.now() - started;
    console.log(`kiln deploy --bake after a one-file change: ${ms} ms, bake and blue/green release included`);

    // Then a new image was baked and released blue/green, to r2, with no failed request on the way
    expect(fast.code, fast.stdout + fast.stderr).toBe(0);
    expect(fast.stderr).toMatch(/image web: baked sha256:[0-9a-f]{12}/);
    const result = JSON.parse(fast.stdout) as DeployResultJson;
    expect(result.rollout).toMatchObject({ from: 'r1', to: 'r2', strategy: 'bluegreen', phase: 'succeeded' });
    const r1 = JSON.parse(first.stdout) as DeployResultJson;
    expect(result.release.digest).not.toBe(r1.release.digest);
    expect(await get(f.url)).toEqual({ status: 200, body: pageOf('r2', 1) });

    // And --bake refuses a server it cannot know shares this project's store
    const remote = await f.kiln(['deploy', SERVICE, '--bake', '--server', 'http://127.0.0.1:9']);
    expect(remote.code).toBe(ExitCode.Usage);
    expect(remote.stderr).toMatch(/\[--bake\] the server is named by --server or KILN_SERVER/);
  }, 120_000);
});
