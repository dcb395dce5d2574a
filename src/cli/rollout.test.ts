import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MetricVerdictJson, RolloutDetailJson } from '../api/index.js';
import { ExitCode } from './exit.js';
import { rolloutText } from './rollout.js';
import { fakeServer, kiln, type FakeServer } from './testkit.js';

let server: FakeServer;
beforeEach(async () => {
  server = await fakeServer();
});
afterEach(async () => {
  await server?.close();
});

const verdict = (m: Partial<MetricVerdictJson> & Pick<MetricVerdictJson, 'name'>): MetricVerdictJson => ({
  classification: 'pass',
  kind: 'continuous',
  direction: 'increase',
  critical: false,
  group: m.name,
  pValue: 0.41,
  alpha: 0.0118,
  u: 4_700_000,
  z: 0.23,
  effect: 0.03,
  tolerance: 0.1,
  shift: { estimate: 0.4, lower: -0.1, upper: 0.9, confidence: 0.95 },
  baseline: { n: 9000, median: 12.5, mean: 14.25 },
  canary: { n: 1000, median: 12.9, mean: 14.8 },
  reason: 'within the band',
  ...m,
});

/** web's canary r1 → r2 at its first step, judged once: errors high, latency passing. */
const DETAIL: RolloutDetailJson = {
  id: 'rollout-3',
  service: 'web',
  from: 'r1',
  to: 'r2',
  strategy: 'canary',
  phase: 'analysing',
  done: false,
  message: 'analysing step 1 of 2 (10%)',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:02:00.000Z',
  conditions: [
    {
      type: 'Progressing',
      status: 'True',
      reason: 'Analysing',
      message: 'judging the canary',
      lastTransitionTime: '2026-01-01T00:01:00.000Z',
    },
  ],
  canary: {
    step: 1,
    steps: [{ weight: 10, analyseMs: 300_000 }, { weight: 50 }],
    weight: 10,
    windowStartedAt: '2026-01-01T00:01:00.000Z',
    looks: [
      {
        step: 1,
        weight: 10,
        look: 2,
        looks: 4,
        at: '2026-01-01T00:02:00.000Z',
        score: 42.4,
        decision: 'fail',
        reason: 'the critical metric errors failed',
        samples: { baseline: 9000, canary: 1000 },
        metrics: [
          verdict({
            name: 'errors',
            classification: 'high',
            critical: true,
            pValue: 0.000123,
            effect: 0.021,
            tolerance: 0.005,
            baseline: { n: 9000, median: 0, mean: 0.001 },
            canary: { n: 1000, median: 0, mean: 0.022 },
          }),
          verdict({ name: 'latency', effect: null }),
        ],
        warnings: ['latency: 1000 canary samples give 62% power'],
      },
    ],
  },
};

describe('kiln rollout status', () => {
  it('shows the rollout, its conditions, the steps with the current one marked, and each look', async () => {
    server.plane.rolloutDetails.set('web', DETAIL);
    const { code, stdout } = await kiln('rollout', 'status', 'web', ...server.conn);
    expect(code).toBe(0);
    expect(stdout).toBe(
      [
        'web: rollout rollout-3 r1 → r2 by canary: analysing',
        '  analysing step 1 of 2 (10%)',
        '  Progressing=True (Analysing): judging the canary',
        '  steps: [10% analyse 300s] → 50% → 100%   (canary weight now 10%)',
        '  analysis window opened 2026-01-01T00:01:00.000Z',
        '  step 1 (10%) look 2/4 at 2026-01-01T00:02:00.000Z: score 42, fail; 9000 baseline / 1000 canary requests',
        '    the critical metric errors failed',
        '    errors (critical): HIGH  baseline median 0.00 mean 0.0010 (n=9000), canary median 0.00 mean 0.0220 (n=1000); ' +
          'effect 2.1% (band 0.5%), p=0.00012 vs α=0.012',
        '    latency: pass  baseline median 12.50 mean 14.2500 (n=9000), canary median 12.90 mean 14.8000 (n=1000); ' +
          'effect – (band 10.0%), p=0.41 vs α=0.012',
        '    warning: latency: 1000 canary samples give 62% power',
        '',
      ].join('\n'),
    );
    expect(server.plane.calls).toEqual([{ method: 'serviceRollout', args: ['web'] }]);
  });

  it('prints RolloutDetailJson with --json', async () => {
    server.plane.rolloutDetails.set('web', DETAIL);
    const { code, stdout } = await kiln('rollout', 'status', 'web', '--json', ...server.conn);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual(DETAIL);
  });

  it('exits 2 naming the service when it has no rollout yet', async () => {
    const { code, error } = await kiln('rollout', 'status', 'web', ...server.conn);
    expect(code).toBe(ExitCode.Usage);
    expect(error).toBe('kiln: web has no rollouts yet');
  });
});

describe('rolloutText', () => {
  it.each<[string, Partial<RolloutDetailJson>, string]>([
    ['a first release has no "from"', { from: undefined, canary: undefined, conditions: [] }, 'r2 by canary'],
    [
      'a finished canary marks no step',
      { done: true, phase: 'succeeded' },
      '  steps: 10% analyse 300s → 50% → 100%   (canary weight now 10%)',
    ],
    [
      'a look without a score says so',
      { canary: { ...DETAIL.canary!, looks: [{ ...DETAIL.canary!.looks[0]!, score: null }] } },
      '2026-01-01T00:02:00.000Z: no score, fail;',
    ],
  ])('%s', (_, change, line) => {
    expect(rolloutText({ ...DETAIL, ...change })).toContain(line);
  });

  it('says nodata with the reason and none of the numbers', () => {
    const look = {
      ...DETAIL.canary!.looks[0]!,
      metrics: [verdict({ name: 'p99', classification: 'nodata', reason: 'no samples' })],
    };
    const text = rolloutText({ ...DETAIL, canary: { ...DETAIL.canary!, looks: [look] } });
    expect(text).toContain('\n    p99: nodata: no samples\n');
    expect(text).not.toContain('p99: nodata  baseline');
  });
});

describe('kiln rollout promote|abort|pause|resume', () => {
  beforeEach(() => {
    server.plane.rolloutDetails.set('web', DETAIL);
  });

  it.each<[string[], string, object, string]>([
    [['pause', 'web'], 'pause', {}, 'paused'],
    [['resume', 'web'], 'resume', {}, 'progressing'],
    [['promote', 'web'], 'promote', {}, 'progressing'],
    [['promote', 'web', '--full'], 'promote', { full: true }, 'progressing'],
    [['abort', 'web'], 'abort', {}, 'rolled-back'],
  ])('kiln rollout %j calls controlRollout', async (args, command, request, phase) => {
    const { code, stdout } = await kiln('rollout', ...args, ...server.conn);
    expect(code).toBe(0);
    expect(stdout).toBe(`web: ${command} done; rollout rollout-3 is ${phase}\n`);
    expect(server.plane.calls).toEqual([
      { method: 'controlRollout', args: ['web', command, request, 'alice'] },
    ]);
  });

  it('prints the detail with --json, and refuses --full on anything but promote, or no service (exit 2)', async () => {
    const { stdout } = await kiln('rollout', 'pause', 'web', '--json', ...server.conn);
    expect(JSON.parse(stdout)).toMatchObject({ id: 'rollout-3', phase: 'paused', done: false });
    const full = await kiln('rollout', 'abort', 'web', '--full', ...server.conn);
    expect(full.code).toBe(ExitCode.Usage);
    expect(full.error).toContain("unknown option '--full'");
    const bare = await kiln('rollout', 'resume', ...server.conn);
    expect(bare.code).toBe(ExitCode.Usage);
    expect(bare.error).toContain("missing required argument 'service'");
    expect(server.plane.calls.map((c) => c.args[1])).toEqual(['pause']);
  });

  it('exits 2 with the conflict when no canary is in progress', async () => {
    server.plane.rolloutDetails.set('web', { ...DETAIL, phase: 'succeeded', done: true });
    const { code, error } = await kiln('rollout', 'pause', 'web', ...server.conn);
    expect(code).toBe(ExitCode.Usage);
    expect(error).toBe('kiln: web has no rollout in progress');
  });
});
