import { describe, expect, it } from 'vitest';
import { get, isAlive, pageOf, SERVICE, useFleet, waitFor } from '../support/fleet.js';

const { fleet } = useFleet();

describe.sequential('the router killed with SIGKILL while the control plane runs', () => {
  it('is started again by the control plane, with its routes, and serves', async () => {
    // Given a deployed service behind the router
    const f = await fleet({ replicas: 2 });
    await f.startServer();
    const deployed = await f.kiln(['deploy', SERVICE, '--wait', '--timeout', '60s']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    expect(await get(f.url)).toEqual({ status: 200, body: pageOf('r1', 1) });
    const first = (await f.routerPid())!;

    // When the router process is killed
    process.kill(first, 'SIGKILL');

    // Then a new router process serves the same service at the same URL
    const second = await waitFor(
      'a new router serving the service',
      async () => {
        const pid = await f.routerPid();
        if (pid === undefined || pid === first) return undefined;
        const answer = await get(f.url);
        return 'status' in answer && answer.status === 200 ? pid : undefined;
      },
      { timeoutMs: 15_000, everyMs: 50 },
    );
    expect(await isAlive(first)).toBe(false);
    expect(await isAlive(second)).toBe(true);
    // And the control plane still drives it: a new release reaches the new router
    await f.declare({ replicas: 2, gen: 2 });
    const again = await f.kiln(['deploy', SERVICE, '--wait', '--timeout', '60s']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(await get(f.url)).toEqual({ status: 200, body: pageOf('r2', 2) });
  }, 120_000);
});
