import { describe, expect, it } from 'vitest';
import { canaryPlacement, instanceWeights } from './counts.js';
import { plan } from './planner.js';
import type { Action, DesiredService, InstancePhase, ObservedInstance } from './types.js';

const R1 = { name: 'r1', digest: 'sha256:1' };
const R2 = { name: 'r2', digest: 'sha256:2' };
const NOW = 1_000_000;
const ANALYSIS = {
  interval: 30_000,
  alpha: 0.05,
  minSamples: 500,
  thresholds: { pass: 95, marginal: 75 },
  metrics: [{ name: 'errors', source: 'errors' as const, direction: 'increase' as const, critical: true }],
  groups: {},
};

function inst(
  id: string,
  release: string,
  role?: 'baseline' | 'canary',
  phase: InstancePhase = 'healthy',
): ObservedInstance {
  return { id, service: 'web', release, phase, since: 0, ...(role ? { role } : {}) };
}

function canary(
  step: number,
  over: Partial<DesiredService> = {},
  stepStartedAt = NOW - 1000,
): DesiredService {
  return {
    name: 'web',
    replicas: 4,
    port: 8080,
    strategy: {
      type: 'canary',
      steps: [{ weight: 10, analyse: 60_000 }, { weight: 40 }, { weight: 100 }],
      analysis: ANALYSIS,
    },
    release: R2,
    rollout: {
      id: 'ro-1',
      from: R1,
      to: R2,
      phase: 'progressing',
      startedAt: NOW - 5000,
      canary: { step, stepStartedAt },
    },
    progressDeadlineMs: 60_000,
    ...over,
  };
}

function show(actions: readonly Action[]): string[] {
  return actions.map((a) => {
    switch (a.type) {
      case 'start':
        return `start ${a.release.name}${a.role ? ` ${a.role}` : ''}`;
      case 'stop':
        return `stop ${a.id} ${a.reason}`;
      case 'route':
        return `route ${a.backends.map((b) => `${b.id}=${b.weight}`).join(',') || '-'}`;
      case 'rollout':
        return `rollout ${a.phase}`;
    }
  });
}

const STABLE = [inst('s1', 'r1'), inst('s2', 'r1'), inst('s3', 'r1'), inst('s4', 'r1')];

describe('canaryPlacement', () => {
  it.each([
    // replicas, weight, analysed → canaries, baselines, stable/baseline/canary shares
    [4, 10, true, 1, 1, 80, 10, 10],
    [4, 25, true, 1, 1, 50, 25, 25],
    [4, 50, true, 2, 2, 0, 50, 50],
    [4, 40, false, 2, 0, 60, 0, 40],
    [10, 5, true, 1, 1, 90, 5, 5],
    [1, 30, true, 1, 1, 40, 30, 30],
    [4, 0, true, 0, 0, 100, 0, 0],
  ])('%i replicas at %i%% (analysed %s) → %i canaries, %i baselines', (r, w, a, c, b, ss, sb, sc) => {
    expect(canaryPlacement(r, w, a)).toEqual({
      canaries: c,
      baselines: b,
      shares: { stable: ss, baseline: sb, canary: sc },
    });
  });
});

describe('instanceWeights', () => {
  it.each([
    {
      groups: [
        { share: 90, instances: 3 },
        { share: 5, instances: 1 },
      ],
      weights: [256, 43],
    },
    {
      groups: [
        { share: 80, instances: 4 },
        { share: 10, instances: 1 },
        { share: 10, instances: 1 },
      ],
      weights: [256, 128, 128],
    },
    {
      groups: [
        { share: 0, instances: 4 },
        { share: 50, instances: 2 },
      ],
      weights: [0, 256],
    },
    {
      groups: [
        { share: 99.9, instances: 100 },
        { share: 0.1, instances: 1 },
      ],
      weights: [256, 26],
    },
    { groups: [{ share: 10, instances: 0 }], weights: [0] },
  ])('$groups → $weights', ({ groups, weights }) => {
    expect(instanceWeights(groups, 256)).toEqual(weights);
  });

  it('keeps each group at its share of the total, within rounding', () => {
    const groups = [
      { share: 80, instances: 4 },
      { share: 10, instances: 1 },
      { share: 10, instances: 1 },
    ];
    const w = instanceWeights(groups, 256);
    const total = groups.reduce((t, g, i) => t + g.instances * w[i]!, 0);
    groups.forEach((g, i) => expect((100 * g.instances * w[i]!) / total).toBeCloseTo(g.share, 0));
  });
});

describe('plan: canary', () => {
  it('starts one canary and one baseline beside the full stable set, routing only the stable ones', () => {
    expect(show(plan([canary(0)], STABLE, NOW))).toEqual([
      'start r1 baseline',
      'start r2 canary',
      'route s1=256,s2=256,s3=256,s4=256',
    ]);
  });

  it('gives the healthy canary and baseline 10 % each once both serve', () => {
    const observed = [...STABLE, inst('b1', 'r1', 'baseline'), inst('c1', 'r2', 'canary')];
    expect(show(plan([canary(0)], observed, NOW))).toEqual([
      'route b1=128,c1=128,s1=256,s2=256,s3=256,s4=256',
    ]);
  });

  it('routes a canary that is up while its baseline still starts at its own share only', () => {
    const observed = [...STABLE, inst('b1', 'r1', 'baseline', 'starting'), inst('c1', 'r2', 'canary')];
    expect(show(plan([canary(0)], observed, NOW))).toEqual(['route c1=128,s1=256,s2=256,s3=256,s4=256']);
  });

  it('drops the baseline at a step without analysis and adds canaries to reach the step', () => {
    const observed = [...STABLE, inst('b1', 'r1', 'baseline'), inst('c1', 'r2', 'canary')];
    expect(show(plan([canary(1)], observed, NOW))).toEqual([
      'stop b1 surplus',
      'start r2 canary',
      // 40 % on two canaries (one still to start) is 20 % each; 60 % on four stable is 15 % each.
      'route c1=256,s1=192,s2=192,s3=192,s4=192',
    ]);
  });

  it('promotes at the 100 % step: the baseline goes and the canaries replace the stable set', () => {
    const observed = [
      ...STABLE,
      inst('b1', 'r1', 'baseline'),
      inst('c1', 'r2', 'canary'),
      inst('c2', 'r2', 'canary'),
    ];
    expect(show(plan([canary(2)], observed, NOW))).toEqual([
      'stop b1 superseded',
      // Six live already exceed replicas + surge (5): no start until stable ones go.
      'route c1=100,c2=100,s1=100,s2=100,s3=100,s4=100',
      'stop s1 superseded',
      'stop s2 superseded',
    ]);
  });

  it('succeeds once the canaries are all the instances', () => {
    const observed = [inst('c1', 'r2'), inst('c2', 'r2'), inst('c3', 'r2'), inst('c4', 'r2')];
    expect(show(plan([canary(3)], observed, NOW))).toEqual([
      'route c1=100,c2=100,c3=100,c4=100',
      'rollout succeeded',
    ]);
  });

  it('fails a step whose instances are not healthy by the deadline, and not while paused', () => {
    const observed = [...STABLE, inst('b1', 'r1', 'baseline'), inst('c1', 'r2', 'canary', 'starting')];
    const late = canary(0, {}, NOW - 61_000);
    expect(show(plan([late], observed, NOW)).at(-1)).toBe('rollout failed');
    const paused = { ...late, rollout: { ...late.rollout!, phase: 'paused' as const } };
    expect(show(plan([paused], observed, NOW))).not.toContain('rollout failed');
  });

  it('fails a promotion that does not finish by the deadline', () => {
    const observed = [...STABLE, inst('c1', 'r2', 'canary', 'starting')];
    expect(show(plan([canary(2, {}, NOW - 61_000)], observed, NOW)).at(-1)).toBe('rollout failed');
    expect(show(plan([canary(2, {}, NOW - 1_000)], observed, NOW))).not.toContain('rollout failed');
  });

  it('replaces a failed canary like any instance', () => {
    const observed = [...STABLE, inst('b1', 'r1', 'baseline'), inst('c1', 'r2', 'canary', 'unhealthy')];
    expect(show(plan([canary(0)], observed, NOW))).toEqual([
      'stop c1 unhealthy',
      'start r2 canary',
      'route b1=128,s1=256,s2=256,s3=256,s4=256',
    ]);
  });
});
