import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DIGEST_A, DIGEST_B, Harness } from './testkit.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

/** Ids of the backends routed at weight > 0. */
function serving(route: { backends: readonly { id: string; weight: number }[] } | undefined): string[] {
  return (route?.backends ?? []).filter((b) => b.weight > 0).map((b) => b.id);
}

async function firstRelease(replicas = 3, strategy?: { type: 'bluegreen'; rollbackWindow?: string }) {
  h = new Harness();
  h.declare({ name: 'web', replicas, ...(strategy ? { strategy } : {}) });
  await h.controller.start();
  const { rollout } = await h.deploy('web');
  await h.until(() => h.phase(rollout.id) === 'succeeded', 'the first rollout');
  await h.until(() => serving(h.router.route('web')).length === replicas, 'three backends');
}

describe('FleetController', () => {
  it('brings a first release up: instances recorded, healthy, routed, rollout succeeded', async () => {
    await firstRelease();
    const live = h.live('web');
    expect(live).toHaveLength(3);
    expect(live.every((i) => i.state === 'healthy' && i.release === 1)).toBe(true);
    const route = h.router.route('web')!;
    expect(route.listenPort).toBe(8080);
    expect(new Set(route.backends.map((b) => b.port)).size).toBe(3);
    expect(h.host.ids()).toEqual(live.map((i) => i.id).sort());
    expect(h.store.events.tail(50).map((e) => e.kind)).toContain('rollout.succeeded');
  });

  it('replaces a crashed instance with a new one from the same digest and routes it', async () => {
    await firstRelease();
    const [victim] = h.live('web');
    h.driver.crash(victim!.id, 137);
    await h.until(
      () => h.live('web').length === 3 && !h.live('web').some((i) => i.id === victim!.id),
      'a replacement',
    );
    await h.until(() => serving(h.router.route('web')).length === 3, 'three served');
    expect(serving(h.router.route('web'))).not.toContain(victim!.id);
    expect(h.store.instances.get(victim!.id).state).toBe('stopped');
    const exited = h.store.events.tail(100).find((e) => e.kind === 'instance.exited');
    expect(exited?.subject).toBe(victim!.id);
    expect(h.host.find(h.live('web')[2]!.id)?.spec.digest).toBe(DIGEST_A);
  });

  it('replaces an instance that turns unhealthy', async () => {
    await firstRelease();
    const [victim] = h.live('web');
    h.sick.add(victim!.id);
    await h.until(() => h.store.instances.get(victim!.id).state === 'stopped', 'the sick one stopped');
    await h.until(() => h.live('web').filter((i) => i.state === 'healthy').length === 3, 'three healthy');
  });

  it('rolls out without ever serving fewer than the replicas, then retires the old release', async () => {
    await firstRelease();
    const before = h.router.history.length;
    const { release, rollout } = await h.deploy('web', { image: 'v2' });
    expect(release.name).toBe('r2');
    await h.until(() => h.phase(rollout.id) === 'succeeded', 'the rollout', 10_000);
    await h.until(() => h.live('web').every((i) => i.release === 2) && h.live('web').length === 3, 'r1 gone');
    for (const route of h.router.history.slice(before))
      expect(serving(route).length).toBeGreaterThanOrEqual(3);
    expect(h.host.ids().map((id) => h.host.find(id)!.spec.digest)).toEqual([DIGEST_B, DIGEST_B, DIGEST_B]);
    expect(h.store.releases.list('web').map((r) => r.name)).toEqual(['r1', 'r2']);
  });

  it('deploying what already runs changes nothing', async () => {
    await firstRelease();
    const again = await h.deploy('web');
    expect(again.unchanged).toBe(true);
    expect(h.store.releases.list('web')).toHaveLength(1);
  });

  it('blue/green: starts all of green, switches at once, keeps blue, and rolls back instantly', async () => {
    await firstRelease(3, { type: 'bluegreen', rollbackWindow: '1m' });
    const blue = h.live('web').map((i) => i.id);
    const before = h.router.history.length;
    const { rollout } = await h.deploy('web', { image: 'v2' });
    await h.until(() => h.phase(rollout.id) === 'succeeded', 'the switch');
    // Every route served either all blue or all green: never a mix.
    for (const route of h.router.history.slice(before)) {
      const ids = serving(route);
      const blues = ids.filter((id) => blue.includes(id)).length;
      expect(blues === 0 || blues === ids.length).toBe(true);
      expect(ids.length).toBe(3);
    }
    await h.controller.settle();
    expect(h.live('web')).toHaveLength(6); // blue kept warm for the rollback window
    const green = serving(h.router.route('web'));
    const back = await h.rollback('web');
    expect(back.instant).toBe(true);
    expect(back.release.name).toBe('r1');
    await h.until(() => h.phase(back.rollout.id) === 'succeeded', 'the switch back');
    expect(serving(h.router.route('web')).sort()).toEqual([...blue].sort());
    expect(
      h
        .live('web')
        .map((i) => i.id)
        .sort(),
    ).toEqual([...blue, ...green].sort());
  });

  it('rolls back a rollout whose instances never become healthy, by its deadline', async () => {
    h = new Harness();
    h.declare({ name: 'web', progressDeadline: '300ms' });
    await h.controller.start();
    await h.until(() => true, '');
    const first = await h.deploy('web');
    await h.until(() => h.phase(first.rollout.id) === 'succeeded', 'r1');
    h.brokenDigests.add(DIGEST_B);
    const { rollout } = await h.deploy('web', { image: 'v2' });
    await h.until(() => h.phase(rollout.id) === 'rolled-back', 'the automatic rollback');
    await h.until(() => h.live('web').every((i) => i.release === 1), 'r2 retired');
    expect(serving(h.router.route('web'))).toHaveLength(3);
    expect(h.store.rollouts.get(rollout.id).status.conditions[0]?.message).toMatch(/rolled back to r1/);
  });

  it('adopts running instances after a restart: nothing duplicated, nothing orphaned', async () => {
    await firstRelease();
    const ids = h.live('web').map((i) => i.id);
    await h.restart();
    await h.controller.settle();
    await h.controller.settle();
    expect(h.live('web').map((i) => i.id)).toEqual(ids);
    expect(h.host.ids()).toEqual([...ids].sort());
  });

  it('finishes a rollout interrupted by a restart', async () => {
    await firstRelease();
    const { rollout } = await h.deploy('web', { image: 'v2' });
    await h.until(() => h.live('web').some((i) => i.release === 2), 'the rollout under way');
    await h.restart();
    await h.until(() => h.phase(rollout.id) === 'succeeded', 'the resumed rollout', 10_000);
    await h.until(() => h.live('web').length === 3 && h.host.ids().length === 3, 'exactly three');
    expect(h.live('web').every((i) => i.release === 2)).toBe(true);
  });

  it('skips a port another program listens on', async () => {
    const squatter = await squat(20000, 20000);
    try {
      await firstRelease();
      const ports = h.router.route('web')!.backends.map((b) => b.port);
      expect(ports).toHaveLength(3);
      expect(ports).not.toContain(20000);
    } finally {
      await squatter.close();
    }
  });

  it('skips a long run of ports other programs listen on, without backing off', async () => {
    // Such as another project's fleet of a hundred instances on the same host.
    const squatter = await squat(20000, 20099);
    try {
      await firstRelease();
      const ports = h.router.route('web')!.backends.map((b) => b.port);
      expect(ports).toHaveLength(3);
      expect(ports.every((p) => p > 20099)).toBe(true);
    } finally {
      await squatter.close();
    }
  });

  it('stops an instance no record claims', async () => {
    await firstRelease(1);
    await h.driver.start({
      id: 'stray-1',
      service: 'web',
      release: 'r9',
      digest: DIGEST_A,
      args: ['/x'],
      env: {},
      port: 9999,
    });
    await h.until(() => !h.host.ids().includes('stray-1'), 'the orphan stopped');
    expect(h.store.events.tail(50).some((e) => e.kind === 'instance.orphan')).toBe(true);
  });

  it('refuses a second deploy while one rolls out (the same one joins it), and rollback abandons the one in flight', async () => {
    await firstRelease();
    h.brokenDigests.add(DIGEST_B);
    const { rollout } = await h.deploy('web', { image: 'v2' });
    await expect(h.deploy('web', { image: 'v1' })).rejects.toThrow(/already rolling out/);
    // Deploying the very release in flight again (kiln up after a Ctrl-C) joins it instead.
    const again = await h.deploy('web', { image: 'v2' });
    expect(again).toMatchObject({ unchanged: true, rollout: { id: rollout.id } });
    const back = await h.rollback('web');
    expect(back.rollout.id).toBe(rollout.id);
    expect(h.phase(rollout.id)).toBe('rolled-back');
    await h.until(() => h.live('web').every((i) => i.release === 1) && h.live('web').length === 3, 'r1 only');
  });

  it('backs off starting a release whose instances fail to start', async () => {
    await firstRelease(1);
    let failures = 0;
    const start = h.driver.start.bind(h.driver);
    h.driver.start = async (spec) => {
      if (spec.release === 'r2') {
        failures++;
        throw new Error('no such file');
      }
      return start(spec);
    };
    await h.deploy('web', { image: 'v2' });
    await new Promise((r) => setTimeout(r, 1200));
    // 500 ms then 1 s: a handful of tries, not one per pass.
    expect(failures).toBeGreaterThan(0);
    expect(failures).toBeLessThanOrEqual(4);
    expect(serving(h.router.route('web'))).toHaveLength(1);
  });
});

/**
 * Listens on 127.0.0.1 ports `from`..`to`. A port something else already holds (another test's
 * instance) is busy all the same, so a failed listen is fine.
 */
async function squat(from: number, to: number): Promise<{ close(): Promise<void> }> {
  const servers = await Promise.all(
    Array.from({ length: to - from + 1 }, async (_, i) => {
      const server = net.createServer();
      const listening = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(from + i, '127.0.0.1', () => resolve(true));
      });
      return listening ? server : undefined;
    }),
  );
  return {
    close: async () => {
      await Promise.all(servers.map((s) => s && new Promise((resolve) => s.close(resolve))));
    },
  };
}
