import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/cli/exit.js';
import { get, pageOf, SERVICE, useFleet } from '../support/fleet.js';

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
});
