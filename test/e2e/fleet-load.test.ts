import { describe, expect, it } from 'vitest';
import type { DeployResultJson } from '../../src/api/index.js';
import { pageOf, SERVICE, useFleet, waitServes, type FleetProject } from '../support/fleet.js';
import { describeLoad, startLoad } from '../support/loadgen.js';

const { fleet } = useFleet();
const RATE = 500;

/** Runs a deploy or rollback with `--wait --json` and returns what it printed, failing on exit ≠ 0. */
async function waited(f: FleetProject, args: string[]): Promise<DeployResultJson> {
  const r = await f.kiln([...args, '--wait', '--json']);
  expect(r.code, `kiln ${args.join(' ')}:\n${r.stdout}${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as DeployResultJson;
}

/** Waits until five GETs in a row are answered by `page`. */
function serves(f: FleetProject, page: string): Promise<void> {
  return waitServes(f.url, page, { timeoutMs: 5_000, everyMs: 20 });
}

describe.sequential('a fleet under load', () => {
  it(`serves ${RATE} req/s without one failure through a rolling deploy, a blue/green deploy and a rollback`, async () => {
    // Given a control plane and three replicas of r1
    const f = await fleet({ replicas: 3, gen: 1 });
    await f.startServer();
    const first = await waited(f, ['deploy', SERVICE]);
    expect(first.rollout).toMatchObject({ to: 'r1', phase: 'succeeded' });
    await serves(f, pageOf('r1', 1));

    // And a constant load through the router
    const load = await startLoad({ url: f.url, rate: RATE, bodies: true });
    const started = Date.now();

    // When r2 rolls out instance by instance
    await f.declare({ replicas: 3, gen: 2 });
    const rolling = await waited(f, ['deploy', SERVICE]);
    expect(rolling.rollout).toMatchObject({ from: 'r1', to: 'r2', strategy: 'rolling', phase: 'succeeded' });
    // Then r2 serves
    await serves(f, pageOf('r2', 2));

    // When r3 replaces r2 by blue/green
    await f.declare({ replicas: 3, gen: 3 });
    const bluegreen = await waited(f, ['deploy', SERVICE, '--strategy', 'bluegreen']);
    expect(bluegreen.rollout).toMatchObject({
      from: 'r2',
      to: 'r3',
      strategy: 'bluegreen',
      phase: 'succeeded',
    });
    await serves(f, pageOf('r3', 3));

    // When it is rolled back
    const back = await waited(f, ['rollback', SERVICE]);
    expect(back.rollout).toMatchObject({ from: 'r3', to: 'r2', phase: 'succeeded' });
    await serves(f, pageOf('r2', 2));

    // Then the load saw no failure, at the rate asked, and every release answered it
    const seconds = (Date.now() - started) / 1000;
    const summary = await load.stop();
    console.log(`load through deploy, blue/green and rollback: ${describeLoad(summary)}`);
    expect(summary.failures).toEqual({});
    expect(summary.failed).toBe(0);
    expect(summary.ok).toBe(summary.sent);
    expect(summary.sent).toBeGreaterThanOrEqual(Math.floor(RATE * seconds * 0.9));
    const bodies = summary.bodies ?? {};
    expect(Object.keys(bodies).sort()).toEqual([pageOf('r1', 1), pageOf('r2', 2), pageOf('r3', 3)]);

    // And the releases are as made: r2 current again
    const api = await f.api();
    const releases = await api.releases(SERVICE);
    expect(releases.map((r) => [r.name, r.current])).toEqual([
      ['r3', false],
      ['r2', true],
      ['r1', false],
    ]);
    const live = await api.instances(SERVICE);
    expect(live.filter((i) => i.state === 'healthy' && i.release === 'r2')).toHaveLength(3);
  }, 120_000);
});
