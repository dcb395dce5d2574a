import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import type { ApiClient, InstanceJson } from '../../src/api/index.js';
import type { RouterClient } from '../../src/traffic/index.js';
import { isAlive, medianAndP99, SERVICE, useFleet, waitFor } from '../support/fleet.js';

const { fleet } = useFleet();
const KILLS = 20;
const REPLICAS = 3;
/** Generous: this is a functional check, the bench measures recovery formally. */
const RECOVERY_TIMEOUT_MS = 15_000;

/** The backends the router sends new requests to (weight above 0). */
async function routed(router: RouterClient): Promise<Set<string>> {
  const route = (await router.routes()).find((r) => r.service === SERVICE);
  return new Set((route?.backends ?? []).filter((b) => b.weight > 0).map((b) => b.id));
}

/**
 * Waits until an instance not in `before` is healthy in the API and routed, and the killed one is
 * neither live nor routed. Returns the replacement and the live set then.
 */
async function replacement(
  api: ApiClient,
  router: RouterClient,
  before: ReadonlySet<string>,
  victim: string,
): Promise<{ id: string; live: InstanceJson[] }> {
  return waitFor(
    `a replacement of ${victim}`,
    async () => {
      const [live, backends] = await Promise.all([api.instances(SERVICE), routed(router)]);
      const fresh = live.find((i) => !before.has(i.id) && i.state === 'healthy' && backends.has(i.id));
      if (!fresh || live.some((i) => i.id === victim) || backends.has(victim)) return undefined;
      return { id: fresh.id, live };
    },
    { timeoutMs: RECOVERY_TIMEOUT_MS, everyMs: 5 },
  );
}

describe.sequential('an instance killed with SIGKILL', () => {
  it(`is replaced by a new, healthy, routed instance, ${KILLS} times in a row`, async () => {
    // Given three healthy replicas behind the router
    const f = await fleet({ replicas: REPLICAS });
    await f.startServer();
    const deployed = await f.kiln(['deploy', SERVICE, '--wait']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    const api = await f.api();
    const router = await f.router();

    const times: number[] = [];
    const killed: string[] = [];
    for (let i = 0; i < KILLS; i++) {
      const live = await api.instances(SERVICE);
      expect(live.filter((x) => x.state === 'healthy')).toHaveLength(REPLICAS);
      // When one healthy instance's process is killed, a different one each time
      const victim = live[i % live.length]!;
      expect(victim.pid, `instance ${victim.id} has a pid`).toBeGreaterThan(0);
      const before = new Set(live.map((x) => x.id));
      const t0 = performance.now();
      process.kill(victim.pid!, 'SIGKILL');
      // Then a new instance replaces it: healthy in the API and in the router's route
      const { id, live: after } = await replacement(api, router, before, victim.id);
      times.push(performance.now() - t0);
      killed.push(victim.id);
      expect(id).not.toBe(victim.id);
      expect(await isAlive(victim.pid!)).toBe(false);
      // And the service is back at its replica count, every instance a new id when replaced
      await waitFor('three healthy replicas', async () => {
        const now = await api.instances(SERVICE);
        return now.length === REPLICAS && now.every((x) => x.state === 'healthy') ? now : undefined;
      });
      expect(after.some((x) => killed.includes(x.id))).toBe(false);
    }

    const { median, p99 } = medianAndP99(times);
    console.log(
      `kill -9 to a healthy, routed replacement, ${KILLS} times: median ${median.toFixed(0)} ms, ` +
        `p99 ${p99.toFixed(0)} ms (all: ${times.map((t) => t.toFixed(0)).join(', ')})`,
    );
    expect(times).toHaveLength(KILLS);

    // And the event log has each exit. (It may hold more: another kiln on this host can take a
    // replacement's port between the check and the bind, and that instance exits and is replaced.)
    const exits = (await api.events(0, SERVICE, 1000)).filter((e) => e.kind === 'instance.exited');
    expect(exits.map((e) => e.subject)).toEqual(expect.arrayContaining(killed));
  }, 120_000);
});
