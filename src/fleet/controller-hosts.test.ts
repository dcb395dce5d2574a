/**
 * Instances on an engine of many machines (Swarm): the controller routes and probes each at the
 * address its driver reports, follows it when the engine moves it, and hands `exec` health to the
 * engine as its own check.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Harness } from './testkit.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

async function firstRelease(health?: { exec: string[] }) {
  h = new Harness();
  h.declare({ name: 'web', replicas: 2, ...(health ? { health } : {}) });
  await h.controller.start();
  const { rollout } = await h.deploy('web');
  await h.until(() => h.phase(rollout.id) === 'succeeded', 'the first rollout');
  await h.until(() => (h.router.route('web')?.backends ?? []).length === 2, 'two backends');
}

describe('FleetController on a multi-machine engine', () => {
  it('routes an instance at the address its driver reports, and follows it when it is moved', async () => {
    await firstRelease();
    expect(h.router.route('web')!.backends.map((b) => b.host)).toEqual(['127.0.0.1', '127.0.0.1']);
    const [moved] = h.live('web');
    h.host.place(moved!.id, '10.9.9.9');
    await h.until(
      () => h.router.route('web')!.backends.find((b) => b.id === moved!.id)?.host === '10.9.9.9',
      'the route to follow the instance',
    );
    const other = h.router.route('web')!.backends.find((b) => b.id !== moved!.id);
    expect(other?.host).toBe('127.0.0.1');
    expect(h.live('web').map((i) => i.id)).toContain(moved!.id);
  });

  it('hands an exec health check to the engine, with its interval, timeout and threshold', async () => {
    await firstRelease({ exec: ['/bin/check', '--quick'] });
    const [one] = h.live('web');
    expect(h.host.find(one!.id)?.spec.healthCheck).toEqual({
      args: ['/bin/check', '--quick'],
      intervalMs: 1_000,
      timeoutMs: 500,
      retries: 3,
    });
  });

  it('hands HTTP and TCP health to no engine: kiln probes those from the router side', async () => {
    await firstRelease();
    const [one] = h.live('web');
    expect(h.host.find(one!.id)?.spec.healthCheck).toBeUndefined();
  });
});
