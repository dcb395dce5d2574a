/**
 * The building blocks against known values: tallies (R's `quantile(type = 7)`), the normal
 * distribution (R's `pnorm`/`qnorm`), the exact Wilcoxon distribution (R's `pwilcox`/`qwilcox`),
 * the spending function, and the power formulas (against R's `power.prop.test` and, for the
 * Mann-Whitney test, against simulation). R 4.2.2, `options(digits = 17)`.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { mannWhitney } from './mann-whitney.js';
import { normalCdf, normalQuantile } from './normal.js';
import { detectableChange, logSpread, powerAt, requiredSamples } from './power.js';
import { mulberry32, sampleTally } from './simulate.js';
import { lookAlpha, spentAlpha } from './spending.js';
import { mergeTallies, tally, tallyMean, tallyOf, tallyQuantile, tallySize } from './tally.js';
import { wilcoxonCdf, wilcoxonQuantile } from './wilcoxon-exact.js';

describe('tally', () => {
  it('sorts and merges equal values', () => {
    expect(tally([3, 1, 3, -0, 0, 2.5])).toEqual({ values: [0, 1, 2.5, 3], counts: [2, 1, 1, 2] });
    expect(tally([])).toEqual({ values: [], counts: [] });
  });

  it('builds from histogram buckets in any order, merging duplicates and dropping empty ones', () => {
    expect(
      tallyOf([
        [10, 2],
        [5, 1],
        [10, 3],
        [7, 0],
      ]),
    ).toEqual({ values: [5, 10], counts: [1, 5] });
  });

  it('refuses NaN, infinities and fractional counts', () => {
    expect(() => tally([1, NaN])).toThrow(ValidationError);
    expect(() => tally([Infinity])).toThrow(/not a finite number/);
    expect(() => tallyOf([[1, 0.5]])).toThrow(/invalid count/);
    expect(() => tallyOf([[1, -1]])).toThrow(/invalid count/);
  });

  it('has size, mean and quantiles', () => {
    const t = tally([3, 1, 4, 1, 5, 9, 2, 6]);
    expect(tallySize(t)).toBe(8);
    expect(tallyMean(t)).toBe(31 / 8);
    expect(tallyMean(tally([]))).toBeNaN();
    // quantile(c(3,1,4,1,5,9,2,6), c(0, 0.1, 0.25, 0.5, 0.9, 1), type = 7) → 1 1 1.75 3.5 6.9 9
    const qs = [0, 0.1, 0.25, 0.5, 0.9, 1].map((q) => tallyQuantile(t, q));
    expect(qs.slice(0, 4)).toEqual([1, 1, 1.75, 3.5]);
    expect(qs[4]).toBeCloseTo(6.9, 14);
    expect(qs[5]).toBe(9);
    expect(tallyQuantile(tally([]), 0.5)).toBeNaN();
    // quantile(c(rep(0, 997), rep(1, 3)), c(0.5, 0.998)) → 0 1
    const errors = tallyOf([
      [0, 997],
      [1, 3],
    ]);
    expect([tallyQuantile(errors, 0.5), tallyQuantile(errors, 0.998)]).toEqual([0, 1]);
    expect(() => tallyQuantile(t, 1.5)).toThrow(/invalid quantile/);
  });

  it('merges tallies as if their samples were pooled', () => {
    const a = [5, 1, 7, 7, 3];
    const b = [7, 2, 1];
    const c = [9];
    expect(mergeTallies(tally(a), tally(b), tally(c))).toEqual(tally([...a, ...b, ...c]));
    expect(mergeTallies()).toEqual(tally([]));
  });
});

describe('normal distribution', () => {
  // format(pnorm(c(-40,-38,-10,-5.7,-3,-1,-0.5,0,0.3,0.66291,2,5.7,8)), digits = 17)
  it.each([
    [-40, 0],
    [-10, 7.6198530241605269e-24],
    [-5.7, 5.9903714010635279e-9],
    [-3.5, 2.3262907903552494e-4],
    [-3, 1.3498980316300946e-3],
    [-1, 1.5865525393145705e-1],
    [-0.5, 3.0853753872598694e-1],
    [0, 0.5],
    [0.3, 6.1791142218895267e-1],
    [0.66291, 7.4630590161026e-1],
    [2, 9.7724986805182079e-1],
    [5.7, 9.9999999400962858e-1],
    [8, 9.9999999999999933e-1],
  ])('normalCdf(%d) = %d', (z, p) => {
    expect(Math.abs(normalCdf(z) - p)).toBeLessThanOrEqual(1e-15 * Math.max(p, 1e-300) + 1e-300);
  });

  it('keeps the upper tail precise through symmetry', () => {
    // pnorm(8.2, lower.tail = FALSE) = 1.2019351542735859e-16
    expect(normalCdf(-8.2) / 1.2019351542735859e-16).toBeCloseTo(1, 13);
  });

  // format(qnorm(c(1e-300, 1e-20, 1e-10, 0.001, 0.025, 0.3, 0.5, 0.975, 0.999, 1 - 1e-12)), digits = 17)
  it.each([
    [1e-300, -37.04709629936120052],
    [1e-20, -9.26234008979840517],
    [1e-10, -6.3613409024040557],
    [0.001, -3.09023230616781319],
    [0.025, -1.95996398454005383],
    [0.3, -0.52440051270804067],
    [0.5, 0],
    [0.975, 1.959963984540054],
    [0.999, 3.09023230616781319],
    [1 - 1e-12, 7.03448691004783555],
  ])('normalQuantile(%d) = %d', (p, z) => {
    expect(Math.abs(normalQuantile(p) - z)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(z)));
  });

  it('inverts normalCdf and handles the ends', () => {
    for (const z of [-7, -3.3, -1, -0.1, 0.2, 1.5, 4]) expect(normalQuantile(normalCdf(z))).toBeCloseTo(z, 9);
    expect(normalQuantile(0)).toBe(-Infinity);
    expect(normalQuantile(1)).toBe(Infinity);
    expect(normalQuantile(1.1)).toBeNaN();
    expect(normalCdf(NaN)).toBeNaN();
  });
});

describe('exact Wilcoxon distribution', () => {
  it('equals R', () => {
    // pwilcox(c(0, 3, 10, 24), 5, 10)
    const expected = [0.000333000333000333, 0.002331002331002331, 0.037629037629037625, 0.476523476523476541];
    [0, 3, 10, 24].forEach((q, i) => expect(wilcoxonCdf(q, 5, 10)).toBeCloseTo(expected[i]!, 15));
    expect(wilcoxonCdf(24, 10, 5)).toBe(wilcoxonCdf(24, 5, 10));
    expect([wilcoxonCdf(-1, 5, 10), wilcoxonCdf(50, 5, 10)]).toEqual([0, 1]);
    // qwilcox(c(0.025, 0.05, 0.5), 5, 10) → 9 12 25
    expect([0.025, 0.05, 0.5].map((p) => wilcoxonQuantile(p, 5, 10))).toEqual([9, 12, 25]);
  });
});

describe('alpha spending', () => {
  // sa <- function(a, t) 2 * (1 - pnorm(qnorm(1 - a/2) / sqrt(t)))
  it.each([
    [0.025, 0.25, 7.3668084359379549e-6],
    [0.025, 0.5, 1.5253227579890005e-3],
    [0.025, 0.75, 9.6493249535121173e-3],
    [0.05, 0.5, 5.5745966807845271e-3],
    [0.05, 0.2, 1.1726446842441618e-5],
  ])('spentAlpha(%d, %d) = %d', (alpha, t, expected) => {
    expect(spentAlpha(alpha, t) / expected).toBeCloseTo(1, 9);
  });

  it('spends nothing at 0 and everything at 1', () => {
    expect(spentAlpha(0.05, 0)).toBe(0);
    expect(spentAlpha(0.05, 1)).toBe(0.05);
  });

  it('splits alpha over the looks, increments summing to alpha', () => {
    // c(sa(.025,.25), sa(.025,.5) - sa(.025,.25), sa(.025,.75) - sa(.025,.5), .025 - sa(.025,.75))
    const expected = [
      7.3668084359379549e-6, 1.5179559495530626e-3, 8.1240021955231168e-3, 1.5350675046487884e-2,
    ];
    const looks = [1, 2, 3, 4].map((k) => lookAlpha(0.025, k, 4));
    looks.forEach((a, i) => expect(a / expected[i]!).toBeCloseTo(1, 9));
    expect(looks.reduce((s, a) => s + a, 0)).toBeCloseTo(0.025, 15);
    expect(lookAlpha(0.05, 1, 1)).toBe(0.05);
    for (const k of [1, 2, 3, 4, 5, 6, 7])
      expect(lookAlpha(0.05, k, 8)).toBeLessThan(lookAlpha(0.05, k + 1, 8));
  });

  it('refuses looks out of range', () => {
    expect(() => lookAlpha(0.05, 0, 4)).toThrow(ValidationError);
    expect(() => lookAlpha(0.05, 5, 4)).toThrow(/invalid look 5 of 4/);
    expect(() => spentAlpha(0, 0.5)).toThrow(/invalid alpha/);
    expect(() => spentAlpha(0.05, 2)).toThrow(/information fraction/);
  });
});

describe('power', () => {
  it("matches Noether's formula and R's power.prop.test", () => {
    // p <- pnorm(log(1.2)/0.6/sqrt(2)); (qnorm(0.975) + qnorm(0.8))^2 / (6*(p - 0.5)^2) → 180.78
    const change = { kind: 'continuous', relative: 0.2, logScale: 0.6 } as const;
    expect(requiredSamples(change, { alpha: 0.025, sides: 1, power: 0.8 })).toBe(181);
    expect(requiredSamples(change, { alpha: 0.05, sides: 2, power: 0.8 })).toBe(181);
    // power.prop.test(p1 = 0.001, p2 = 0.02, sig.level = 0.05, power = 0.95, alternative = "one.sided")$n → 620.23
    const errors = { kind: 'proportion', from: 0.001, to: 0.02 } as const;
    expect(requiredSamples(errors, { alpha: 0.05, sides: 1, power: 0.95 })).toBe(621);
    expect(powerAt(errors, 620.22603053876981, { alpha: 0.05, sides: 1 })).toBeCloseTo(0.95, 7); // R solves n with uniroot
    expect(
      requiredSamples(
        { kind: 'continuous', relative: 0, logScale: 0.6 },
        { alpha: 0.05, sides: 1, power: 0.8 },
      ),
    ).toBe(Infinity);
  });

  it('inverts: the detectable change at the required n is the change', () => {
    const target = { alpha: 0.0153, sides: 1, power: 0.8 } as const;
    const n = requiredSamples({ kind: 'continuous', relative: 0.1, logScale: 0.6 }, target);
    expect(detectableChange({ kind: 'continuous', logScale: 0.6 }, n, target)).toBeCloseTo(0.1, 2);
    const m = requiredSamples({ kind: 'proportion', from: 0.001, to: 0.006 }, target);
    expect(detectableChange({ kind: 'proportion', rate: 0.001 }, m, target)).toBeCloseTo(0.005, 4);
    expect(detectableChange({ kind: 'continuous', logScale: 0.6 }, 1, target)).toBe(Infinity);
  });

  it('reads the log spread of lognormal samples', () => {
    // quantile(log(c(50, 80, 100, 120, 200)), c(0.25, 0.75)) → 4.3820266346738812 4.7874917427820458
    expect(logSpread(tally([50, 80, 100, 120, 200]))).toBeCloseTo(
      (4.7874917427820458 - 4.3820266346738812) / 1.349,
      14,
    );
    const s = logSpread(sampleTally({ kind: 'lognormal', median: 100, sigma: 0.6 }, 20000, mulberry32(7)));
    expect(s).toBeGreaterThan(0.58);
    expect(s).toBeLessThan(0.62);
    expect(logSpread(tally([]))).toBeNaN();
    expect(logSpread(tally([0, 1, 2, 3]))).toBeCloseTo(1.5 / 1.349 / 1.5, 14);
  });

  // The approximations against the test itself: the share of 2,000 simulated tests that reject.
  it.each([
    {
      what: 'latency +20%, n=150',
      n: 150,
      change: { kind: 'continuous', relative: 0.2, logScale: 0.6 } as const,
    },
    { what: 'errors 1% → 3%, n=600', n: 600, change: { kind: 'proportion', from: 0.01, to: 0.03 } as const },
  ])('predicts the simulated power: $what', ({ n, change }) => {
    const rng = mulberry32(20240611);
    const alpha = 0.025;
    const models =
      change.kind === 'continuous'
        ? ([
            { kind: 'lognormal', median: 100, sigma: change.logScale },
            { kind: 'lognormal', median: 100 * (1 + change.relative), sigma: change.logScale },
          ] as const)
        : ([
            { kind: 'bernoulli', rate: change.from },
            { kind: 'bernoulli', rate: change.to },
          ] as const);
    let rejected = 0;
    const runs = 2000;
    for (let r = 0; r < runs; r++) {
      const baseline = sampleTally(models[0], n, rng);
      const canary = sampleTally(models[1], n, rng);
      if (mannWhitney(canary, baseline, 'greater').pValue <= alpha) rejected++;
    }
    const predicted = powerAt(change, n, { alpha, sides: 1 });
    expect(predicted).toBeGreaterThan(0.5); // a meaningful check, not a floor effect
    expect(Math.abs(rejected / runs - predicted)).toBeLessThan(0.04);
  });
});
