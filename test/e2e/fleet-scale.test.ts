import { describe, expect, it } from 'vitest';
import { get, pageOf, SERVICE, stopFleet, useFleet, waitFor } from '../support/fleet.js';

const { fleet } = useFleet();
const REPLICAS = 100;

describe.sequential('a hundred instances', () => {
  it(`come up healthy and routed: ${REPLICAS} busybox httpd instances behind one router`, async () => {
    // Given a service of 100 replicas, checked every second
    const f = await fleet({ replicas: REPLICAS, interval: '1s', timeout: '2s' });
    const server = await f.startServer();
    const t0 = Date.now();

    // When it is deployed
    const deployed = await f.kiln(['deploy', SERVICE, '--wait', '--timeout', '150s']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    const rolledOut = Date.now() - t0;

    // Then all 100 are healthy in the API, run in the runtime, and the router routes to each
    const api = await f.api();
    const router = await f.router();
    const healthy = await waitFor(
      `${REPLICAS} healthy, routed instances`,
      async () => {
        const live = (await api.instances(SERVICE)).filter((i) => i.state === 'healthy');
        const route = (await router.routes()).find((r) => r.service === SERVICE);
        const routed = new Set(route?.backends.filter((b) => b.weight > 0).map((b) => b.id));
        if (live.length !== REPLICAS || routed.size !== REPLICAS) return undefined;
        return live.every((i) => routed.has(i.id)) ? live : undefined;
      },
      { timeoutMs: 120_000, everyMs: 250 },
    );
    const allUp = Date.now() - t0;
    expect(new Set(healthy.map((i) => i.port)).size).toBe(REPLICAS);
    const running = (await f.containers()).filter((c) => c.state === 'running');
    expect(running.map((c) => c.id).sort()).toEqual(healthy.map((i) => i.id).sort());

    // And requests through the router reach many different instances, each answering as r1
    const answers = await Promise.all(Array.from({ length: 200 }, () => get(f.url)));
    expect(answers.every((a) => 'body' in a && a.status === 200 && a.body === pageOf('r1', 1))).toBe(true);
    const metrics = await router.metrics();
    const served = metrics.filter((m) => m.service === SERVICE && m.responses['2xx'] > 0);
    expect(served.length).toBeGreaterThanOrEqual(REPLICAS / 2);
    console.log(
      `${REPLICAS} instances: rollout succeeded after ${rolledOut} ms, all healthy and routed after ${allUp} ms`,
    );

    // When the control plane and the fleet are torn down
    process.kill(server.pid, 'SIGTERM');
    expect(await server.exited).toBe(0);
    const t1 = Date.now();
    await stopFleet(f.project.home);
    // Then nothing of it runs any more
    expect((await f.containers()).filter((c) => c.state === 'running')).toEqual([]);
    expect(await get(f.url)).toHaveProperty('error');
    console.log(`${REPLICAS} instances stopped in ${Date.now() - t1} ms`);
  }, 240_000);
});
