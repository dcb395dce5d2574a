/**
 * The Hodges-Lehmann estimate of the shift between two samples and its distribution-free
 * confidence interval: the effect size that goes with the Mann-Whitney test. "Latency rose 23 ms
 * (95% CI 18–29 ms)" says what a p-value cannot: how big the change is.
 */
import { ValidationError } from '../errors/index.js';
import { EXACT_LIMIT, pooledRanks } from './mann-whitney.js';
import { normalQuantile } from './normal.js';
import type { Tally } from './tally.js';
import { wilcoxonQuantile } from './wilcoxon-exact.js';

/** A shift of x relative to y with its confidence interval. */
export interface ShiftEstimate {
  /** The median of all pairwise differences xᵢ − yⱼ. */
  readonly estimate: number;
  readonly lower: number;
  readonly upper: number;
  /** The interval's nominal coverage, such as 0.95. */
  readonly confidence: number;
}

/**
 * The Hodges-Lehmann shift of x (canary) against y (baseline), the median of the n·m pairwise
 * differences xᵢ − yⱼ, and the Moses/Bauer interval [D₍ₖ₎, D₍ₙₘ₊₁₋ₖ₎] between two order
 * statistics of those differences.
 *
 * - Untied, both samples under 50 values: k from the exact distribution of U, equal to R's
 *   `wilcox.test(x, y, conf.int = TRUE)` (estimate and interval).
 * - Otherwise: k = ⌊nm/2 + ½ − z₁₋α/₂·σ⌋ with σ the tie-corrected standard deviation of U. For
 *   untied samples this is where R's continuity-corrected normal approximation changes sign, so
 *   the interval equals R's up to `uniroot`'s tolerance. R's asymptotic *estimate* is a root of the
 *   uncorrected statistic (any point between the two middle differences); kiln reports the median of
 *   the differences instead, R's `median(outer(x, y, "-"))`, in every case. With ties, R
 *   recomputes the tie correction for every trial shift; kiln keeps the sample's own.
 *
 * The n·m differences are never materialised: the k-th one is found by bisection on its value,
 * each step counting the differences ≤ d with two pointers over the distinct values
 * (O(distinct values) per step), so 100k values a side take milliseconds.
 */
export function hodgesLehmann(x: Tally, y: Tally, confidence = 0.95): ShiftEstimate {
  if (!(confidence > 0 && confidence < 1)) {
    throw new ValidationError(undefined, [
      {
        path: 'confidence',
        message: `invalid confidence ${confidence}`,
        fix: 'use a number between 0 and 1, such as 0.95',
      },
    ]);
  }
  const ranks = pooledRanks(x, y);
  const { n, m } = ranks;
  if (n === 0 || m === 0) return { estimate: NaN, lower: NaN, upper: NaN, confidence };
  const pairs = n * m;
  const d = differences(x, y);
  const half = Math.floor((pairs + 1) / 2);
  const middle = d.kth(half);
  const estimate = pairs % 2 === 1 ? middle : (middle + d.next(half, middle)) / 2;
  const alpha = 1 - confidence;
  let k: number;
  if (n < EXACT_LIMIT && m < EXACT_LIMIT && ranks.tieSum === 0) {
    k = Math.max(1, wilcoxonQuantile(alpha / 2, n, m));
  } else {
    k = Math.floor(pairs / 2 + 0.5 - normalQuantile(1 - alpha / 2) * ranks.sigma);
  }
  const lower = k < 1 ? d.min : d.kth(k);
  const upper = k < 1 ? d.max : d.kth(pairs + 1 - k);
  return { estimate, lower, upper, confidence };
}

/** The sorted pairwise differences of two tallies, read one order statistic at a time. */
interface Differences {
  readonly min: number;
  readonly max: number;
  /** The k-th smallest difference, 1-based. */
  kth(k: number): number;
  /** The (k+1)-th smallest difference, given the k-th. */
  next(k: number, kthValue: number): number;
}

function differences(x: Tally, y: Tally): Differences {
  const xv = x.values;
  const yv = y.values;
  const prefixY = new Float64Array(yv.length + 1);
  for (let j = 0; j < yv.length; j++) prefixY[j + 1] = prefixY[j]! + y.counts[j]!;
  const total = prefixY[yv.length]!;
  let pairs = 0;
  for (const c of x.counts) pairs += c * total;
  const min = xv[0]! - yv[yv.length - 1]!;
  const max = xv[xv.length - 1]! - yv[0]!;

  /**
   * How many differences are ≤ d, the largest of them and the smallest one above d. For each
   * distinct x value (ascending) the differences ≤ d are those with yⱼ at or past a pointer that
   * only moves forward, so one pass suffices. Differences are compared as computed (xᵢ − yⱼ ≤ d),
   * never rearranged, so counting and selecting agree to the last bit.
   */
  function countAtMost(d: number): { count: number; below: number; above: number } {
    let j = 0;
    let count = 0;
    let below = -Infinity;
    let above = Infinity;
    for (let i = 0; i < xv.length; i++) {
      const a = xv[i]!;
      while (j < yv.length && a - yv[j]! > d) j++;
      count += x.counts[i]! * (total - prefixY[j]!);
      if (j < yv.length && a - yv[j]! > below) below = a - yv[j]!;
      if (j > 0 && a - yv[j - 1]! < above) above = a - yv[j - 1]!;
    }
    return { count, below, above };
  }

  /**
   * Keeps lo ≤ D₍ₖ₎ ≤ hi with lo and hi themselves differences, and the counts of differences
   * below lo and up to hi. Each step counts the differences ≤ a trial value and moves one end to
   * the nearest difference on its side, so the loop ends on an exact difference, never on a rounding
   * artefact. The trial value interpolates where the k-th difference should be from those counts
   * (a handful of steps for smooth data); a step that does not halve the differences left is
   * followed by a plain bisection, so the worst case stays within twice bisection's.
   */
  function kth(k: number): number {
    let lo = min;
    let hi = max;
    let countBelowLo = 0;
    let countToHi = pairs;
    let bisect = false;
    while (lo < hi) {
      const left = countToHi - countBelowLo;
      let mid = bisect ? lo + (hi - lo) / 2 : lo + (hi - lo) * ((k - countBelowLo - 0.5) / left);
      if (!(mid >= lo && mid < hi)) mid = lo + (hi - lo) / 2;
      if (!(mid < hi)) mid = lo;
      const { count, below, above } = countAtMost(mid);
      if (count >= k) {
        hi = below;
        countToHi = count;
      } else {
        lo = above;
        countBelowLo = count;
      }
      bisect = !bisect && countToHi - countBelowLo > left / 2;
    }
    return lo;
  }

  /** The (k+1)-th difference given the k-th: the same value when it repeats, else the next one up. */
  function next(k: number, kthValue: number): number {
    const { count, above } = countAtMost(kthValue);
    return count >= k + 1 ? kthValue : above;
  }

  return { min, max, kth, next };
}
