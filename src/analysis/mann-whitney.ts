/**
 * The Mann-Whitney U (Wilcoxon rank-sum) test on tallies, the classifier of Kayenta's
 * NetflixACAJudge. It asks only whether canary values tend to be larger than baseline values, so
 * it needs no normality and one slow request cannot swing it as it swings a mean.
 */
import { ValidationError } from '../errors/index.js';
import { normalCdf } from './normal.js';
import { tallySize, type Tally } from './tally.js';
import { wilcoxonCdf } from './wilcoxon-exact.js';

/** Which way the test looks. 'greater': x (canary) tends to be larger than y (baseline). */
export type Alternative = 'two-sided' | 'greater' | 'less';

/** The test's outcome, in R's terms. */
export interface MannWhitneyResult {
  /** U of x: the number of pairs (xᵢ, yⱼ) with xᵢ > yⱼ, ties counting ½. R's `W`. */
  readonly u: number;
  /** The sum of x's midranks in the pooled sample. */
  readonly rankSumX: number;
  /** (U − nm/2 − continuity correction) / σ, σ corrected for ties; 0 when everything is tied. */
  readonly z: number;
  readonly pValue: number;
  /** Size of x. */
  readonly n: number;
  /** Size of y. */
  readonly m: number;
  /** True when the p-value comes from the exact distribution, not the normal approximation. */
  readonly exact: boolean;
}

/** Size below which (on both sides, with no ties) the exact distribution is used, as R's default. */
export const EXACT_LIMIT = 50;

/** Ranks and tie statistics of two tallies pooled: one pass over their distinct values. */
export interface PooledRanks {
  readonly n: number;
  readonly m: number;
  readonly rankSumX: number;
  readonly u: number;
  /** Σ (t³ − t) over groups of tied values, t the group's size. */
  readonly tieSum: number;
  /** σ of U under the null hypothesis, tie-corrected. */
  readonly sigma: number;
}

/**
 * Midranks computed from counts: a group of t equal values that starts after `below` smaller ones
 * gets rank below + (t + 1)/2 each, so ties cost nothing extra and the pass is O(distinct values).
 */
export function pooledRanks(x: Tally, y: Tally): PooledRanks {
  const n = tallySize(x);
  const m = tallySize(y);
  let i = 0;
  let j = 0;
  let below = 0;
  let rankSumX = 0;
  let tieSum = 0;
  while (i < x.values.length || j < y.values.length) {
    const vx = i < x.values.length ? x.values[i]! : Infinity;
    const vy = j < y.values.length ? y.values[j]! : Infinity;
    const v = Math.min(vx, vy);
    const cx = vx === v ? x.counts[i++]! : 0;
    const cy = vy === v ? y.counts[j++]! : 0;
    const t = cx + cy;
    rankSumX += cx * (below + (t + 1) / 2);
    if (t > 1) tieSum += t * t * t - t;
    below += t;
  }
  const u = rankSumX - (n * (n + 1)) / 2;
  const total = n + m;
  const factor = total + 1 - tieSum / (total * (total - 1));
  // All values equal leaves only rounding noise of (N + 1) − (N + 1): call it 0.
  const variance = factor > 1e-9 * (total + 1) ? ((n * m) / 12) * factor : 0;
  return { n, m, rankSumX, u, tieSum, sigma: Math.sqrt(variance) };
}

/**
 * The two-sample Mann-Whitney test of x against y, equal to R's
 * `wilcox.test(x, y, alternative = ...)` with its defaults: the exact distribution when both
 * samples have fewer than 50 values and there are no ties, else the normal approximation with the
 * tie-corrected variance and a continuity correction of ½.
 *
 * One departure: when every value is the same (σ = 0, say two error-rate samples without a single
 * error) R's two-sided p-value is NaN; here it is 1, since the samples show no difference.
 *
 * @example
 * mannWhitney(tally([1.83, 0.5, 1.62]), tally([0.878, 0.647]), 'greater').pValue;
 */
export function mannWhitney(x: Tally, y: Tally, alternative: Alternative): MannWhitneyResult {
  const r = pooledRanks(x, y);
  const { n, m, u, sigma } = r;
  if (n === 0 || m === 0) {
    throw new ValidationError(undefined, [
      {
        path: n === 0 ? 'x' : 'y',
        message: 'the Mann-Whitney test needs at least one value on each side',
        fix: 'wait for samples on both sides',
      },
    ]);
  }
  const centre = u - (n * m) / 2;
  const correction =
    alternative === 'greater' ? 0.5 : alternative === 'less' ? -0.5 : Math.sign(centre) * 0.5;
  const z = sigma > 0 ? (centre - correction) / sigma : 0;
  const exact = n < EXACT_LIMIT && m < EXACT_LIMIT && r.tieSum === 0;
  let pValue: number;
  if (exact) {
    // P(U ≤ u) directly, P(U ≥ u) = P(U ≤ nm − u) by symmetry: both tails stay exact.
    const lower = (): number => wilcoxonCdf(u, n, m);
    const upper = (): number => wilcoxonCdf(n * m - u, n, m);
    if (alternative === 'greater') pValue = upper();
    else if (alternative === 'less') pValue = lower();
    else pValue = Math.min(1, 2 * (u > (n * m) / 2 ? upper() : lower()));
  } else if (sigma === 0) {
    pValue = 1;
  } else if (alternative === 'greater') pValue = normalCdf(-z);
  else if (alternative === 'less') pValue = normalCdf(z);
  else pValue = Math.min(1, 2 * normalCdf(-Math.abs(z)));
  return { u, rankSumX: r.rankSumX, z, pValue, n, m, exact };
}
