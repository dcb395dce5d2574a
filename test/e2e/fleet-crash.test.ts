import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { DeployResultJson } from '../../src/api/index.js';
import { get, pageOf, runtimeContainerIds, SERVICE, useFleet, waitFor } from '../support/fleet.js';
import { describeLoad, startLoad } from '../support/loadgen.js';

const { fleet } = useFleet();
const REPLICAS = 3;
const RATE = 500;
/** How long the control plane stays down while the load goes on. */
const DOWN_MS = 2_000;

describe.sequential('the control plane killed with SIGKILL in the middle of a rolling deploy', () => {
  it('leaves traffic served, and once restarted finishes the rollout with exactly the replicas, none orphaned', async () => {
    // Given three replicas of r1 under load
    const f = await fleet({ replicas: REPLICAS, gen: 1 });
    const server = await f.startServer();
    const first = await f.kiln(['deploy', SERVICE, '--wait']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const api = await f.api();
    const r1 = await api.instances(SERVICE);
    const load = await startLoad({ url: f.url, rate: RATE, bodies: true });
    const started = Date.now();

    // When a rolling deploy of r2 starts
    await f.declare({ replicas: REPLICAS, gen: 2 });
    const deploy = await f.kiln(['deploy', SERVICE, '--json']);
    expect(deploy.code, deploy.stdout + deploy.stderr).toBe(0);
    const { rollout } = JSON.parse(deploy.stdout) as DeployResultJson;
    expect(rollout).toMatchObject({ from: 'r1', to: 'r2', strategy: 'rolling' });
    // And the control plane is killed as soon as the first r2 instance exists
    const firstNew = await waitFor(
      'the first r2 instance',
      async () => (await api.instances(SERVICE)).find((i) => i.release === 'r2'),
      { timeoutMs: 10_000, everyMs: 5 },
    );
    process.kill(server.pid, 'SIGKILL');
    expect(await server.exited).toBe('SIGKILL');
    const killedAt = Date.now();

    // Then, while it is down, the router goes on serving
    await sleep(DOWN_MS);
    const during = await get(f.url);
    expect(during).toMatchObject({ status: 200 });

    // When it is started again
    const restartedAt = Date.now();
    await f.startServer();
    const restartedAfter = Date.now() - killedAt;
    const api2 = await f.api();

    // Then the rollout finishes and succeeds
    const done = await api2.waitForRollout(rollout.id, { timeoutMs: 60_000, pollMs: 100 });
    expect(done, JSON.stringify(done)).toMatchObject({ phase: 'succeeded', to: 'r2' });

    // And exactly three instances run, all r2, the same ones the API, the runtime and the router know
    const settled = await waitFor(
      'exactly three r2 instances, in the API and in the runtime, and nothing else',
      async () => {
        const live = await api2.instances(SERVICE);
        // Every bundle under .kiln/instances, whatever its state: an exited one left behind counts.
        const running = await f.containers();
        if (live.length !== REPLICAS || running.length !== REPLICAS) return undefined;
        if (!running.every((c) => c.state === 'running')) return undefined;
        if (!live.every((i) => i.release === 'r2' && i.state === 'healthy')) return undefined;
        return { live, running };
      },
      { timeoutMs: 30_000, everyMs: 100 },
    );
    const ids = settled.live.map((i) => i.id).sort();
    expect(new Set(ids).size).toBe(REPLICAS);
    expect(settled.running.map((c) => c.id).sort()).toEqual(ids);
    expect(new Set(settled.live.map((i) => i.port)).size).toBe(REPLICAS);
    expect(settled.running.every((c) => c.release === 'r2' && c.service === SERVICE)).toBe(true);
    const route = (await (await f.router()).routes()).find((r) => r.service === SERVICE);
    expect(route?.backends.map((b) => b.id).sort()).toEqual(ids);
    expect(r1.some((i) => ids.includes(i.id))).toBe(false);

    // And r2 serves; the load never failed, not even while no control plane ran
    await waitFor('r2 to answer', async () => {
      const r = await get(f.url);
      return 'body' in r && r.body === pageOf('r2', 2) ? true : undefined;
    });
    const seconds = (Date.now() - started) / 1000;
    const summary = await load.stop();
    console.log(
      `load across a control-plane kill (down ${restartedAfter} ms until the restart answered): ${describeLoad(summary)}`,
    );
    expect(summary.failures).toEqual({});
    expect(summary.failed).toBe(0);
    expect(summary.sent).toBeGreaterThanOrEqual(Math.floor(RATE * seconds * 0.9));
    expect(Object.keys(summary.bodies ?? {}).sort()).toEqual([pageOf('r1', 1), pageOf('r2', 2)]);

    // And the releases are intact, r2 current
    const releases = await api2.releases(SERVICE);
    expect(releases.map((r) => [r.name, r.current])).toEqual([
      ['r2', true],
      ['r1', false],
    ]);

    // And the event log holds the whole history, before and after the crash
    const events = await api2.events(0, SERVICE, 1000);
    const kinds = events.map((e) => `${e.kind} ${e.subject ?? ''}`);
    expect((await api2.status(SERVICE))[0]!.rollout!.id).toBe(rollout.id);
    expect(kinds.filter((k) => k.startsWith('rollout.succeeded'))).toHaveLength(2);
    expect(kinds).toContain(`rollout.started ${rollout.id}`);
    expect(kinds).toContain(`rollout.succeeded ${rollout.id}`);
    // r1's instances were started, and each one's end is on record: stopped (by the old control
    // plane, or adopted by the new one and stopped), or, when the crash came mid-stop and its
    // process was already gone at the restart, exited
    for (const i of r1) {
      expect(kinds).toContain(`instance.started ${i.id}`);
      expect(
        kinds.filter((k) => k === `instance.stopped ${i.id}` || k === `instance.exited ${i.id}`),
      ).not.toEqual([]);
    }
    // The restarted control plane adopted what still ran
    expect(kinds.filter((k) => k.startsWith('instance.adopted ')).length).toBeGreaterThan(0);
    // Each r2 instance was started by the restarted control plane or adopted by it: an instance
    // whose start the crash cut short has no `instance.started`, but its adoption is logged.
    for (const i of settled.live) {
      const before = Date.parse(i.createdAt) < restartedAt;
      expect(kinds).toContain(`instance.${before ? 'adopted' : 'started'} ${i.id}`);
    }
    // The first r2 instance was adopted or, when the crash came before its container existed,
    // recorded as gone (and replaced).
    expect(kinds).toContain(`instance.${ids.includes(firstNew.id) ? 'adopted' : 'exited'} ${firstNew.id}`);
    expect(kinds.filter((k) => k.startsWith('instance.orphan'))).toEqual([]);
    expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => a - b));

    // And the OCI runtime itself runs no other container of this project: none was orphaned
    const known = new Set(events.map((e) => e.subject));
    expect((await runtimeContainerIds()).filter((id) => known.has(id)).sort()).toEqual(ids);
  }, 120_000);
});
