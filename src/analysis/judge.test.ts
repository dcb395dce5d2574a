import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { judge, validateJudgeConfig, type JudgeConfig, type MetricSamples } from './judge.js';
import { mulberry32, referenceConfig, sampleTally } from './simulate.js';
import { lookAlpha } from './spending.js';
import { tallyOf, type Tally } from './tally.js';

const rng = mulberry32(42);
const latency = (n: number, factor = 1): Tally =>
  sampleTally({ kind: 'lognormal', median: 100 * factor, sigma: 0.6 }, n, rng);
const errors = (n: number, failed: number): Tally =>
  tallyOf([
    [0, n - failed],
    [1, failed],
  ]);

function samples(
  n: number,
  opts: { factor?: number; baselineErrors?: number; canaryErrors?: number } = {},
): MetricSamples[] {
  return [
    { name: 'latency', baseline: latency(n), canary: latency(n, opts.factor ?? 1) },
    {
      name: 'errors',
      baseline: errors(n, opts.baselineErrors ?? 0),
      canary: errors(n, opts.canaryErrors ?? 0),
    },
  ];
}

const config = referenceConfig();

describe('judge', () => {
  it('tests each metric at alpha / metrics spent over the looks', () => {
    for (const look of [1, 2, 3, 4]) {
      const r = judge(config, samples(200 * look), look);
      for (const m of r.metrics) expect(m.alpha).toBeCloseTo(lookAlpha(0.05 / 2, look, 4), 15);
      expect(r).toMatchObject({ look, looks: 4, final: look === 4 });
    }
  });

  it('passes a canary like its baseline at the final look', () => {
    const r = judge(config, samples(800), 4);
    expect(r.decision).toBe('pass');
    expect(r.score).toBe(100);
    expect(r.metrics.map((m) => m.classification)).toEqual(['pass', 'pass']);
    expect(r.reason).toMatch(/^pass at the final look: score 100 ≥ 95/);
  });

  it('continues before the final look while the score is at least marginal', () => {
    const r = judge(config, samples(400), 2);
    expect(r.decision).toBe('continue');
    expect(r.reason).toMatch(/^continue after look 2 of 4: score 100 ≥ marginal 75/);
  });

  it('fails a clear latency rise, with the effect, its interval and the levels in the reason', () => {
    const r = judge(config, samples(400, { factor: 1.3 }), 2);
    const lat = r.metrics[0]!;
    expect(lat.classification).toBe('high');
    expect(lat.effect).toBeGreaterThan(0.2);
    expect(lat.effect).toBeLessThan(0.4);
    expect(lat.shift.lower).toBeLessThan(lat.shift.estimate);
    expect(lat.shift.upper).toBeGreaterThan(lat.shift.estimate);
    expect(lat.pValue).toBeLessThan(lat.alpha);
    expect(lat.reason).toMatch(
      /^latency rose \d+% \(95% CI \d+% to \d+%\), p=.* ≤ 0\.0015: outside the 10% band$/,
    );
    expect(r.score).toBe(50); // two groups of equal weight, one failed
    expect(r.decision).toBe('fail');
    expect(r.reason).toBe('fail at look 2 of 4: score 50 < marginal 75 (failed: latency (high))');
  });

  it('passes a significant change inside the tolerance band', () => {
    const r = judge(config, samples(20000, { factor: 1.05 }), 4);
    const lat = r.metrics[0]!;
    expect(lat.pValue).toBeLessThan(lat.alpha);
    expect(lat.classification).toBe('pass');
    expect(lat.reason).toMatch(/but within the 10% band$/);
  });

  it('ignores a change in the harmless direction, and tests two-sided for "either"', () => {
    const faster = judge(config, samples(800, { factor: 0.7 }), 4);
    expect(faster.metrics[0]!.classification).toBe('pass');
    expect(faster.metrics[0]!.pValue).toBeGreaterThan(0.99);
    const either = referenceConfig({ metrics: [{ ...config.metrics[0]!, direction: 'either' }], groups: {} });
    const r = judge(either, samples(800, { factor: 0.7 }).slice(0, 1), 4);
    expect(r.metrics[0]!.classification).toBe('low');
    expect(r.decision).toBe('fail');
  });

  it('fails at once when a critical metric fails, whatever the score', () => {
    const weighted = referenceConfig({ groups: { latency: 100, errors: 1 } });
    const r = judge(weighted, samples(800, { baselineErrors: 1, canaryErrors: 20 }), 3);
    expect(r.metrics[1]!.classification).toBe('high');
    expect(r.score).toBeCloseTo((100 * 100) / 101, 10);
    expect(r.decision).toBe('fail');
    expect(r.reason).toMatch(
      /^fail at look 3 of 4: critical metric errors \(high\) failed \(errors rose from 0\.13% to 2\.50%/,
    );
  });

  it('weighs groups, counting only judged metrics, and defaults unlisted groups to 1', () => {
    const cfg = referenceConfig({
      metrics: [
        {
          name: 'latency',
          kind: 'continuous',
          direction: 'increase',
          tolerance: 0.1,
          critical: false,
          group: 'speed',
        },
        {
          name: 'p99',
          kind: 'continuous',
          direction: 'increase',
          tolerance: 0.1,
          critical: false,
          group: 'speed',
        },
        {
          name: 'errors',
          kind: 'proportion',
          direction: 'increase',
          tolerance: 0.005,
          critical: false,
          group: 'errors',
        },
      ],
      groups: { speed: 3 },
    });
    const input = [
      { name: 'latency', baseline: latency(800), canary: latency(800, 1.4) },
      { name: 'p99', baseline: latency(800), canary: latency(800) },
      { name: 'errors', baseline: errors(800, 0), canary: errors(800, 0) },
    ];
    const r = judge(cfg, input, 4);
    // speed: 3 × 1/2, errors: 1 × 1 → 2.5 / 4
    expect(r.score).toBeCloseTo(62.5, 10);
    expect(r.decision).toBe('fail');
    const partial = judge(
      cfg,
      [...input.slice(0, 2), { name: 'errors', baseline: errors(10, 0), canary: errors(10, 0) }],
      2,
    );
    expect(partial.metrics[2]!.classification).toBe('nodata');
    expect(partial.score).toBeCloseTo(50, 10); // errors left out, not counted as passing
  });

  it('marks metrics with fewer than minSamples per side as nodata, and waits at the final look', () => {
    const early = judge(config, samples(30), 1);
    expect(early.metrics.map((m) => m.classification)).toEqual(['nodata', 'nodata']);
    expect(early.score).toBeNaN();
    expect(early.decision).toBe('continue');
    expect(early.metrics[0]!.reason).toBe(
      'latency: not judged, 30 of 50 samples per side (baseline 30, canary 30)',
    );
    const final = judge(
      config,
      [samples(800)[0]!, { name: 'errors', baseline: errors(800, 0), canary: errors(49, 0) }],
      4,
    );
    expect(final.metrics.map((m) => m.classification)).toEqual(['pass', 'nodata']);
    expect(final.decision).toBe('continue');
    expect(final.reason).toMatch(/errors has 49 of 50 samples per side; waiting for more traffic/);
    const missing = judge(config, samples(800).slice(0, 1), 4);
    expect(missing.metrics[1]!.classification).toBe('nodata');
    expect(missing.decision).toBe('continue');
  });

  it('fails a low score at the final look even while a metric still lacks data', () => {
    const r = judge(
      config,
      [samples(800, { factor: 1.5 })[0]!, { name: 'errors', baseline: errors(10, 0), canary: errors(10, 0) }],
      4,
    );
    expect(r.score).toBe(0);
    expect(r.decision).toBe('fail');
  });

  it('fails a final look between marginal and pass', () => {
    const cfg = referenceConfig({ groups: { latency: 1, errors: 4 } }); // latency failing → score 80
    const r = judge(cfg, samples(800, { factor: 1.4 }), 4);
    expect(r.score).toBe(80);
    expect(r.decision).toBe('fail');
    expect(r.reason).toBe('fail at the final look: score 80 < pass 95 (failed: latency (high))');
    expect(judge(cfg, samples(400, { factor: 1.4 }), 2).decision).toBe('continue');
  });

  it('warns when the tolerance-sized change cannot be detected at the current sample size', () => {
    const r = judge(config, samples(100), 1);
    expect(r.warnings).toHaveLength(2);
    expect(r.warnings[0]).toMatch(
      /^latency: at 100 samples per side, a rise of 10% \(the tolerance\) would be missed more than 20% of the time: about [\d,]+ per side are needed for 80% power at the final look's α=0\.015; at this rate the final look will have about 400$/,
    );
    expect(r.warnings[1]).toMatch(
      /^errors: at 100 samples per side, a rise of 0\.5 points \(the tolerance\)/,
    );
    const big = judge(config, samples(5000), 4);
    expect(big.warnings).toEqual([]);
  });

  it('warns about samples for unknown metrics and refuses duplicates', () => {
    const extra = [...samples(800), { name: 'cpu', baseline: latency(10), canary: latency(10) }];
    expect(judge(config, extra, 4).warnings).toContain("samples for unknown metric 'cpu' ignored");
    expect(() => judge(config, [...samples(100), ...samples(100)], 1)).toThrow(/given twice/);
  });

  it('refuses a look out of range and proportion samples that are not 0/1', () => {
    expect(() => judge(config, samples(100), 0)).toThrow(/invalid look 0 of 4/);
    expect(() => judge(config, samples(100), 5)).toThrow(ValidationError);
    const bad = [{ name: 'errors', baseline: tallyOf([[0, 100]]), canary: tallyOf([[2, 100]]) }];
    expect(() => judge(config, bad, 1)).toThrow(/must be 0 or 1/);
  });

  it('is deterministic', () => {
    const input = samples(300, { factor: 1.1, canaryErrors: 2 });
    expect(judge(config, input, 2)).toEqual(judge(config, input, 2));
  });
});

describe('validateJudgeConfig', () => {
  it('accepts the reference configuration', () => {
    expect(validateJudgeConfig(config)).toEqual(config);
  });

  it('reports every problem with its path and fix', () => {
    const bad = {
      metrics: [
        { name: 'latency', kind: 'continous', direction: 'up', tolerance: 10, critical: 'yes', group: '' },
        {
          name: 'latency',
          kind: 'proportion',
          direction: 'increase',
          tolerance: 5,
          critical: true,
          group: 'errors',
        },
      ],
      groups: { errors: 0, latncy: 1 },
      thresholds: { pass: 75, marginal: 95 },
      alpha: 5,
      looks: 0,
      minSamples: 1.5,
    };
    let error: unknown;
    try {
      validateJudgeConfig(bad);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ValidationError);
    const paths = (error as ValidationError).issues.map((i) => i.path);
    expect(paths).toEqual([
      'metrics[0].kind',
      'metrics[0].direction',
      'metrics[0].critical',
      'metrics[0].group',
      'metrics[1].name',
      'metrics[1].tolerance',
      'groups.errors',
      'groups.latncy',
      'thresholds.marginal',
      'alpha',
      'looks',
      'minSamples',
    ]);
    expect((error as ValidationError).issues.every((i) => i.fix !== undefined && i.fix !== '')).toBe(true);
    expect((error as ValidationError).message).toMatch(/\[groups\.latncy\] no metric is in group 'latncy'/);
  });

  it('reads a continuous tolerance of 10 or more as a percentage typo', () => {
    const cfg = { ...config, metrics: [{ ...config.metrics[0]!, tolerance: 10 }], groups: {} };
    expect(() => validateJudgeConfig(cfg)).toThrow(/tolerance 10 means 1000%.*0\.1 is 10%/);
  });

  it('refuses a non-object and an empty metric list', () => {
    expect(() => validateJudgeConfig(null)).toThrow(/must be an object/);
    expect(() => validateJudgeConfig({ ...config, metrics: [] } satisfies JudgeConfig)).toThrow(
      /non-empty list/,
    );
  });
});
