/**
 * Approximate power and sample size for the judge's tests, so it can say when a look has too few
 * samples to see the change it is meant to catch ("at 12 samples per side a 10% rise in latency
 * would be missed; about 3,100 are needed") instead of passing a canary it could not have failed.
 * Normal approximations: good to within a few percent of n from a few dozen samples up (the
 * simulations in power.test.ts and simulation.test.ts check them against the real test).
 */
import { ValidationError } from '../errors/index.js';
import { normalCdf, normalQuantile } from './normal.js';
import { mapTally, tallyQuantile, type Tally } from './tally.js';

/** The test a power figure is for: its level, one- or two-sided, and the power wanted. */
export interface PowerTarget {
  readonly alpha: number;
  readonly sides: 1 | 2;
  /** Probability of detecting the change, such as 0.8. */
  readonly power: number;
}

/**
 * A change to detect.
 * - continuous: a relative change (0.1 = 10% higher) of a metric whose log values have the spread
 *   `logScale` (a standard deviation; see {@link logSpread}).
 * - proportion: a rate going from `from` to `to`.
 */
export type Change =
  | { readonly kind: 'continuous'; readonly relative: number; readonly logScale: number }
  | { readonly kind: 'proportion'; readonly from: number; readonly to: number };

/** What is known of the baseline before a change: its log spread, or its rate. */
export type Baseline =
  | { readonly kind: 'continuous'; readonly logScale: number }
  | { readonly kind: 'proportion'; readonly rate: number };

/**
 * The spread of a positive metric on the log scale, robustly: the interquartile range of the log
 * values over 1.349 (the IQR of a standard normal), so for lognormal latency it is the σ of the
 * log. Log, because latency changes multiply (a slower dependency adds 20%, not 20 ms, to every
 * request) and the Mann-Whitney test does not care about the scale it is read on. When a value is
 * 0 or below, it is the IQR of the raw values over 1.349 and over the median (a relative spread,
 * the same for small spreads); NaN for an empty tally or a median ≤ 0.
 *
 * @example
 * logSpread(tally(latencies)); // ≈ 0.6 for lognormal latency with σ = 0.6
 */
export function logSpread(t: Tally): number {
  if (t.values.length === 0) return NaN;
  if (t.values[0]! > 0) {
    const logs = mapTally(t, Math.log);
    return (tallyQuantile(logs, 0.75) - tallyQuantile(logs, 0.25)) / 1.349;
  }
  const median = tallyQuantile(t, 0.5);
  if (!(median > 0)) return NaN;
  return (tallyQuantile(t, 0.75) - tallyQuantile(t, 0.25)) / 1.349 / median;
}

/**
 * The Mann-Whitney test's effect, P(canary > baseline), for a shift of δ standard deviations
 * between two normal distributions (on the log scale): Φ(δ/√2).
 */
export function superiority(delta: number): number {
  return normalCdf(delta / Math.SQRT2);
}

/**
 * Samples per side for the test to detect `change` with the target's power.
 * - continuous: Noether's formula for the Mann-Whitney test, n = (z₁₋α + z₁₋β)² / (6 (p − ½)²),
 *   with p = P(canary > baseline) for a normal shift of log(1 + relative)/logScale on the log scale.
 * - proportion: the Mann-Whitney test on 0/1 samples is the pooled two-proportion z-test, so its
 *   sample size, n = (z₁₋α √(2p̄q̄) + z₁₋β √(p₁q₁ + p₂q₂))² / (p₂ − p₁)² with p̄ the mean rate, as
 *   R's `power.prop.test` (which it equals, rounded up).
 *
 * Infinity when the change is 0, NaN when the spread is unknown (NaN).
 *
 * @example
 * requiredSamples({ kind: 'proportion', from: 0.001, to: 0.02 }, { alpha: 0.05, sides: 1, power: 0.95 }); // 621
 */
export function requiredSamples(change: Change, target: PowerTarget): number {
  const za = criticalZ(target);
  const zb = powerZ(target);
  let n: number;
  if (change.kind === 'continuous') {
    const e = continuousEffect(change);
    n = ((za + zb) / e) ** 2;
  } else {
    const { diff, null: sd0, alternative: sd1 } = proportionParts(change);
    n = ((za * sd0 + zb * sd1) / diff) ** 2;
  }
  return Number.isNaN(n) ? NaN : n === Infinity ? Infinity : Math.max(2, Math.ceil(n));
}

/** The power of the test at n samples per side for `change`. */
export function powerAt(change: Change, n: number, target: Omit<PowerTarget, 'power'>): number {
  const za = criticalZ(target);
  if (change.kind === 'continuous') return normalCdf(Math.sqrt(n) * continuousEffect(change) - za);
  const { diff, null: sd0, alternative: sd1 } = proportionParts(change);
  return normalCdf((Math.sqrt(n) * diff - za * sd0) / sd1);
}

/**
 * The smallest change the test detects with the target's power at n samples per side: a relative
 * rise (continuous) or an absolute rise of the rate (proportion). Infinity when no rise is enough.
 *
 * @example
 * detectableChange({ kind: 'continuous', logScale: 0.6 }, 500, { alpha: 0.0153, sides: 1, power: 0.8 }); // ≈ 0.12
 */
export function detectableChange(baseline: Baseline, n: number, target: PowerTarget): number {
  if (!(n > 0)) return Infinity;
  if (baseline.kind === 'continuous') {
    const p = 0.5 + (criticalZ(target) + powerZ(target)) / Math.sqrt(6 * n);
    if (p >= 1) return Infinity;
    return Math.exp(Math.SQRT2 * normalQuantile(p) * baseline.logScale) - 1;
  }
  // Power grows with the rise; bisect on it.
  const from = clamp01(baseline.rate);
  const enough = (to: number): boolean =>
    powerAt({ kind: 'proportion', from, to }, n, target) >= target.power;
  if (!enough(1)) return Infinity;
  let lo = from;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (enough(mid)) hi = mid;
    else lo = mid;
  }
  return hi - from;
}

/** The standardized effect per √(sample per side) of a continuous change: √6·|p − ½|. */
function continuousEffect(change: Extract<Change, { kind: 'continuous' }>): number {
  if (change.relative === 0) return 0;
  // logScale 0 makes δ infinite (any change moves every value); NaN stays NaN (spread unknown).
  const delta = Math.abs(Math.log1p(change.relative)) / change.logScale;
  return Math.sqrt(6) * Math.abs(superiority(delta) - 0.5);
}

/** |p₂ − p₁|, and the standard deviations of √n·(p̂₂ − p̂₁) under the null (pooled) and the change. */
function proportionParts(change: Extract<Change, { kind: 'proportion' }>): {
  diff: number;
  null: number;
  alternative: number;
} {
  const p1 = clamp01(change.from);
  const p2 = clamp01(change.to);
  const mean = (p1 + p2) / 2;
  return {
    diff: Math.abs(p2 - p1),
    null: Math.sqrt(2 * mean * (1 - mean)),
    alternative: Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2)),
  };
}

function criticalZ(target: Omit<PowerTarget, 'power'>): number {
  if (!(target.alpha > 0 && target.alpha < 1)) {
    throw new ValidationError(undefined, [
      { path: 'alpha', message: `invalid alpha ${target.alpha}`, fix: 'use a level between 0 and 1' },
    ]);
  }
  return normalQuantile(1 - target.alpha / target.sides);
}

function powerZ(target: PowerTarget): number {
  if (!(target.power > 0 && target.power < 1)) {
    throw new ValidationError(undefined, [
      { path: 'power', message: `invalid power ${target.power}`, fix: 'use a probability such as 0.8' },
    ]);
  }
  return normalQuantile(target.power);
}

function clamp01(p: number): number {
  return Math.min(1, Math.max(0, p));
}
