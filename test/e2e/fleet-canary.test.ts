import { describe, expect, it } from 'vitest';
import type { DeployResultJson, RolloutDetailJson } from '../../src/api/index.js';
import { pageOf, SERVICE, useFleet, waitFor, type FleetProject, type WebService } from '../support/fleet.js';
import { describeLoad, startLoad } from '../support/loadgen.js';

const { fleet } = useFleet();
const RATE = 500;
const WEIGHT = 10;

/** A canary at 10 % analysed for 20 s in four looks, then promoted: 50 req/s a side, 1,000 each. */
const CANARY = {
  steps: [{ weight: WEIGHT, analyse: '20s' }, { weight: 100 }],
  analysis: { interval: '5s', minSamples: 300 },
};

function declared(gen: number, over: Partial<WebService> = {}): WebService {
  return { replicas: 3, gen, cgi: true, canary: CANARY, ...over };
}

async function deploy(f: FleetProject): Promise<{ code: number; result: DeployResultJson; out: string }> {
  const r = await f.kiln(['deploy', SERVICE, '--no-bake', '--wait', '--json']);
  return { code: r.code, result: JSON.parse(r.stdout) as DeployResultJson, out: r.stdout + r.stderr };
}

async function rolloutStatus(f: FleetProject): Promise<RolloutDetailJson> {
  const r = await f.kiln(['rollout', 'status', SERVICE, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as RolloutDetailJson;
}

/** Deploys r1 (gen 1) as a first release and waits until it serves. */
async function started(f: FleetProject): Promise<void> {
  await f.startServer();
  const first = await deploy(f);
  expect(first.code, first.out).toBe(0);
  await waitFor(
    `${f.url} to answer`,
    async () => ((await fetch(f.url).catch(() => undefined))?.ok ? true : undefined),
    {
      timeoutMs: 10_000,
      everyMs: 50,
    },
  );
}

describe.sequential('canary releases judged by statistics', () => {
  it('rolls back a canary that fails 3 % of requests, which only its share of traffic reached', async () => {
    // Given r1 serving under load
    const f = await fleet(declared(1));
    await started(f);
    const load = await startLoad({ url: f.url, rate: RATE, bodies: true });

    // When r2, which answers 500 to 3 % of requests, is released by canary
    await f.declare(declared(2, { failPermille: 30 }));
    await f.project.bake();
    const { code, result, out } = await deploy(f);
    const summary = await load.stop();
    console.log(`load through a failing canary: ${describeLoad(summary)}`);

    // Then it is rolled back on its own, and says why
    expect(code, out).toBe(1);
    expect(result.rollout).toMatchObject({ from: 'r1', to: 'r2', strategy: 'canary', phase: 'rolled-back' });
    expect(result.rollout.message).toMatch(/canary analysis failed at 10%.*errors/);
    const detail = await rolloutStatus(f);
    expect(detail.conditions).toContainEqual(
      expect.objectContaining({ type: 'Analysed', status: 'False', reason: 'AnalysisFailed' }),
    );
    const last = detail.canary!.looks.at(-1)!;
    expect(last.decision).toBe('fail');
    const errors = last.metrics.find((m) => m.name === 'errors')!;
    expect(errors.classification).toBe('high');
    expect(errors.canary.mean!).toBeGreaterThan(0.01);
    expect(errors.pValue!).toBeLessThan(errors.alpha!);
    const text = await f.kiln(['rollout', 'status', SERVICE]);
    expect(text.stdout).toMatch(/errors \(critical\): HIGH/);

    // And no more than the canary's share of requests reached it
    const bodies = summary.bodies ?? {};
    const r2 = Object.entries(bodies)
      .filter(([body]) => body.startsWith('r2 '))
      .reduce((n, [, k]) => n + k, 0);
    const share = r2 / summary.sent;
    console.log(`r2 answered ${r2} of ${summary.sent} requests (${(share * 100).toFixed(2)} %)`);
    expect(r2).toBeGreaterThan(0);
    expect(share).toBeLessThanOrEqual(WEIGHT / 100);
    // The only failures the clients saw were r2's own 500s.
    expect(Object.keys(summary.failures)).toEqual(['status 500']);
    expect(summary.failures['status 500']).toBe(bodies[`r2 gen 2 fail\n`]);
    // r1 serves everything again.
    const api = await f.api();
    const live = await api.instances(SERVICE);
    await waitFor(
      'only r1 to be left',
      async () => {
        const now = (await api.instances(SERVICE)).filter((i) => i.state !== 'stopped');
        return now.every((i) => i.release === 'r1') && now.length === 3 ? true : undefined;
      },
      { timeoutMs: 20_000, everyMs: 100 },
    );
    expect(live.length).toBeGreaterThan(0);
  }, 180_000);

  it('promotes a healthy canary through its analysis, with no failed request', async () => {
    const f = await fleet(declared(1));
    await started(f);
    const load = await startLoad({ url: f.url, rate: RATE, bodies: true });

    await f.declare(declared(2));
    await f.project.bake();
    const { code, result, out } = await deploy(f);
    const summary = await load.stop();
    console.log(`load through a healthy canary: ${describeLoad(summary)}`);

    expect(code, out).toBe(0);
    expect(result.rollout).toMatchObject({ from: 'r1', to: 'r2', strategy: 'canary', phase: 'succeeded' });
    expect(summary.failed).toBe(0);
    const detail = await rolloutStatus(f);
    const looks = detail.canary!.looks;
    expect(looks.map((l) => l.look)).toEqual([1, 2, 3, 4]);
    expect(looks.at(-1)!.decision).toBe('pass');
    expect(looks.at(-1)!.score).toBe(100);
    expect(looks.at(-1)!.samples.canary).toBeGreaterThanOrEqual(300);
    expect(detail.conditions).toContainEqual(
      expect.objectContaining({ type: 'Analysed', status: 'True', reason: 'AnalysisPassed' }),
    );
    const bodies = summary.bodies ?? {};
    expect(Object.keys(bodies).sort()).toEqual([pageOf('r1', 1), pageOf('r2', 2)]);
  }, 180_000);
});
