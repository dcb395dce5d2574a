import { afterEach, describe, expect, it } from 'vitest';
import { canaryStatusOf } from './canary-status.js';
import { controlRollout } from './rollout-control.js';
import { DIGEST_B, Harness } from './testkit.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

/** Steps of 10 % and 30 %, each analysed for 400 ms in four looks, then 100 %. */
const CANARY = {
  type: 'canary' as const,
  steps: [
    { weight: 10, analyse: '400ms' },
    { weight: 30, analyse: '400ms' },
  ],
  analysis: { interval: '100ms', minSamples: 100 },
};

/** r1 (image v1) serving 4 replicas, and simulated traffic in which r2's instances fail `bad` of requests. */
async function serving(bad: number, latency = 10, declared: object = CANARY): Promise<void> {
  h = new Harness();
  h.declare({ name: 'web', replicas: 4, strategy: declared as typeof CANARY });
  const isNew = (id: string) => h.host.find(id)?.spec.digest === DIGEST_B;
  h.router.traffic = {
    perCall: 2000,
    failRate: (id) => (isNew(id) ? bad : 0.001),
    latencyMs: (id) => (isNew(id) ? latency : 10),
  };
  await h.controller.start();
  const { rollout } = await h.deploy('web');
  await h.until(() => h.phase(rollout.id) === 'succeeded', 'the first release');
}

async function canary(): Promise<string> {
  const { rollout } = await h.deploy('web', { image: 'v2' });
  expect(rollout.strategy).toBe('canary');
  return rollout.id;
}

const done = (id: string) => () => ['succeeded', 'rolled-back', 'failed'].includes(h.phase(id));

describe('canary rollouts, judged', () => {
  it('promotes a healthy canary step by step, each step passing all its looks', async () => {
    await serving(0.001);
    const id = await canary();
    await h.until(done(id), 'the canary to finish', 15_000);
    expect(h.phase(id)).toBe('succeeded');
    const status = canaryStatusOf(h.store.rollouts.get(id));
    expect(status.looks.map((l) => [l.step, l.look, l.decision])).toEqual([
      [0, 1, 'continue'],
      [0, 2, 'continue'],
      [0, 3, 'continue'],
      [0, 4, 'pass'],
      [1, 1, 'continue'],
      [1, 2, 'continue'],
      [1, 3, 'continue'],
      [1, 4, 'pass'],
    ]);
    expect(status.looks.every((l) => l.samples.canary >= 100 && l.samples.baseline >= 100)).toBe(true);
    const conditions = h.store.rollouts.get(id).status.conditions;
    expect(conditions.find((c) => c.type === 'Analysed')).toMatchObject({
      status: 'True',
      reason: 'AnalysisPassed',
    });
    await h.until(
      () =>
        h
          .live('web')
          .filter((i) => i.state !== 'stopped')
          .every((i) => i.release === 2),
      'only r2',
    );
    const kinds = h.store.events.tail(200).map((e) => e.kind);
    expect(kinds.filter((k) => k === 'rollout.analysis')).toHaveLength(8);
    expect(kinds.filter((k) => k === 'rollout.step')).toHaveLength(2);
  });

  it('starts a baseline of the old image beside each canary, with the same share of traffic', async () => {
    await serving(0.001);
    const id = await canary();
    await h.until(() => canaryStatusOf(h.store.rollouts.get(id)).window !== undefined, 'the window to open');
    const live = h.store.instances.list({ service: 'web' }).filter((i) => i.state === 'healthy');
    const baseline = live.filter((i) => i.role === 'baseline');
    const canaries = live.filter((i) => i.role === 'canary');
    expect(baseline.map((i) => i.release)).toEqual([1]);
    expect(canaries.map((i) => i.release)).toEqual([2]);
    const route = h.router.route('web')!;
    const weight = (id: string) => route.backends.find((b) => b.id === id)?.weight;
    expect(weight(baseline[0]!.id)).toBe(weight(canaries[0]!.id));
    const total = route.backends.reduce((n, b) => n + b.weight, 0);
    expect(weight(canaries[0]!.id)! / total).toBeCloseTo(0.1, 2);
  });

  it('rolls back a canary that fails 5 % of requests, naming the metric', async () => {
    await serving(0.05);
    const id = await canary();
    await h.until(done(id), 'the canary to finish', 15_000);
    const r = h.store.rollouts.get(id);
    expect(r.phase).toBe('rolled-back');
    const progressing = r.status.conditions.find((c) => c.type === 'Progressing')!;
    expect(progressing.reason).toBe('AnalysisFailed');
    expect(progressing.message).toMatch(/^canary analysis failed at 10%: .*errors/);
    const last = canaryStatusOf(r).looks.at(-1)!;
    expect(last.decision).toBe('fail');
    expect(last.metrics.find((m) => m.name === 'errors')!.classification).toBe('high');
    await h.until(
      () =>
        h
          .live('web')
          .filter((i) => i.state !== 'stopped')
          .every((i) => i.release === 1),
      'only r1',
    );
  });

  it('rolls back a canary 30 % slower', async () => {
    await serving(0.001, 13);
    const id = await canary();
    await h.until(done(id), 'the canary to finish', 15_000);
    const last = canaryStatusOf(h.store.rollouts.get(id)).looks.at(-1)!;
    expect(h.phase(id)).toBe('rolled-back');
    expect(last.metrics.find((m) => m.name === 'latency')!.classification).toBe('high');
  });

  it('takes no look while paused, goes on when resumed, and promotes in full on demand', async () => {
    await serving(0.001);
    const id = await canary();
    await h.until(() => canaryStatusOf(h.store.rollouts.get(id)).looks.length >= 1, 'a first look');
    const paused = await controlRollout(h.ctx(), { service: 'web', command: 'pause', actor: 'alice' });
    expect(paused.phase).toBe('paused');
    const looks = canaryStatusOf(paused).looks.length;
    await new Promise((r) => setTimeout(r, 600));
    expect(canaryStatusOf(h.store.rollouts.get(id)).looks.length).toBe(looks);
    expect(h.phase(id)).toBe('paused');
    await controlRollout(h.ctx(), { service: 'web', command: 'resume', actor: 'alice' });
    await h.until(
      () => canaryStatusOf(h.store.rollouts.get(id)).looks.length > looks,
      'a look after resuming',
    );
    const promoted = await controlRollout(h.ctx(), {
      service: 'web',
      command: 'promote',
      actor: 'alice',
      full: true,
    });
    expect(canaryStatusOf(promoted).step).toBe(2);
    await h.until(done(id), 'the promotion', 10_000);
    expect(h.phase(id)).toBe('succeeded');
    const kinds = h.store.events.tail(200).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['rollout.paused', 'rollout.resumed', 'rollout.promoted']));
  });

  it('aborts on demand, and refuses commands with no canary in flight', async () => {
    await serving(0.001);
    const id = await canary();
    const aborted = await controlRollout(h.ctx(), { service: 'web', command: 'abort', actor: 'bob' });
    expect(aborted.phase).toBe('rolled-back');
    expect(aborted.status.conditions.find((c) => c.type === 'Progressing')!.message).toBe('aborted by bob');
    expect(h.phase(id)).toBe('rolled-back');
    await expect(controlRollout(h.ctx(), { service: 'web', command: 'pause', actor: 'bob' })).rejects.toThrow(
      /has no rollout in progress to pause/,
    );
  });

  it('waits for traffic at the last look, then fails when the deadline passes', async () => {
    await serving(0.001, 10, { ...CANARY, analysis: { interval: '100ms', minSamples: 1_000_000 } });
    h.declare({
      name: 'web',
      replicas: 4,
      progressDeadline: '500ms',
      strategy: { ...CANARY, analysis: { interval: '100ms', minSamples: 1_000_000 } },
    });
    const id = await canary();
    await h.until(
      () =>
        /waiting for traffic/.test(
          h.store.rollouts.get(id).status.conditions.find((c) => c.type === 'Analysed')?.message ?? '',
        ),
      'the wait',
      5_000,
    );
    await h.until(done(id), 'the deadline', 5_000);
    const progressing = h.store.rollouts.get(id).status.conditions.find((c) => c.type === 'Progressing')!;
    expect(progressing.message).toMatch(/not enough traffic to judge r2/);
  });
});
