/**
 * Tallies: a sample kept as its distinct values, ascending, with how often each occurs. Raw samples
 * (one latency per request) and histograms (bucket value → count) both become tallies, and every
 * statistic in this folder works on them, so a 100k-request error-rate sample is two numbers and
 * ranks with ties cost O(distinct values), not O(n log n) per look.
 */
import { ValidationError } from '../errors/index.js';

/** A sample as distinct values ascending with their counts; raw samples and histograms both become tallies. */
export interface Tally {
  readonly values: readonly number[];
  readonly counts: readonly number[];
}

/** The tally with nothing in it. */
export const EMPTY_TALLY: Tally = Object.freeze({ values: Object.freeze([]), counts: Object.freeze([]) });

/**
 * The tally of raw samples: sorted, equal values merged. Values must be finite numbers: NaN has no
 * rank and an infinite latency would make every difference infinite, so both are refused.
 *
 * @example
 * tally([3, 1, 3]); // { values: [1, 3], counts: [1, 2] }
 */
export function tally(samples: readonly number[]): Tally {
  const sorted = Float64Array.from(samples);
  for (let i = 0; i < sorted.length; i++) if (!Number.isFinite(sorted[i]!)) throw notFinite(i, sorted[i]!);
  sorted.sort();
  const values: number[] = [];
  const counts: number[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const v = sorted[i]!;
    if (values.length > 0 && values[values.length - 1] === v) counts[counts.length - 1]!++;
    else {
      values.push(v === 0 ? 0 : v); // -0 and 0 are one value
      counts.push(1);
    }
  }
  return { values, counts };
}

/**
 * The tally of histogram buckets `[value, count]`, in any order: duplicates are merged and empty
 * buckets dropped. Counts must be whole numbers ≥ 0, because the rank statistics count ties.
 *
 * @example
 * tallyOf([[0, 997], [1, 3]]); // 997 successes and 3 errors as 0/1 samples
 */
export function tallyOf(pairs: Iterable<readonly [value: number, count: number]>): Tally {
  const list: (readonly [number, number])[] = [];
  let index = 0;
  for (const [value, count] of pairs) {
    if (!Number.isFinite(value)) throw notFinite(index, value);
    if (!Number.isInteger(count) || count < 0) {
      throw new ValidationError(undefined, [
        {
          path: `[${index}]`,
          message: `invalid count ${count} for value ${value}`,
          fix: 'use a whole number ≥ 0',
        },
      ]);
    }
    if (count > 0) list.push([value === 0 ? 0 : value, count]);
    index++;
  }
  list.sort((a, b) => a[0] - b[0]);
  const values: number[] = [];
  const counts: number[] = [];
  for (const [value, count] of list) {
    if (values.length > 0 && values[values.length - 1] === value) counts[counts.length - 1]! += count;
    else {
      values.push(value);
      counts.push(count);
    }
  }
  return { values, counts };
}

/** How many samples the tally holds (the sum of its counts). */
export function tallySize(t: Tally): number {
  let n = 0;
  for (const c of t.counts) n += c;
  return n;
}

/** The arithmetic mean; NaN when the tally is empty. For 0/1 samples it is the rate. */
export function tallyMean(t: Tally): number {
  let n = 0;
  let sum = 0;
  for (let i = 0; i < t.values.length; i++) {
    n += t.counts[i]!;
    sum += t.values[i]! * t.counts[i]!;
  }
  return n === 0 ? NaN : sum / n;
}

/**
 * The `q`-quantile (0..1) with Hyndman and Fan's type 7, R's and NumPy's default: the order
 * statistic at position (n − 1)·q, interpolated linearly between neighbours. `q = 0.5` is the
 * usual median (the mean of the two middle values when n is even). NaN when the tally is empty.
 *
 * @example
 * tallyQuantile(tally([1, 2, 3, 4]), 0.5); // 2.5
 */
export function tallyQuantile(t: Tally, q: number): number {
  if (!(q >= 0 && q <= 1)) {
    throw new ValidationError(undefined, [
      { path: 'q', message: `invalid quantile ${q}`, fix: 'use 0 to 1' },
    ]);
  }
  const n = tallySize(t);
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const a = orderStatistic(t, lo);
  if (h === lo) return a;
  const b = orderStatistic(t, lo + 1);
  return a + (h - lo) * (b - a);
}

/** The order statistic at 0-based position `k` (k < size). */
export function orderStatistic(t: Tally, k: number): number {
  let below = 0;
  for (let i = 0; i < t.values.length; i++) {
    below += t.counts[i]!;
    if (k < below) return t.values[i]!;
  }
  return NaN;
}

/**
 * One tally holding every sample of the given ones: how a look's cumulative sample grows from the
 * intervals' samples without keeping the raw values. Linear in the tallies' distinct values.
 */
export function mergeTallies(...ts: Tally[]): Tally {
  return ts.reduce(mergeTwo, EMPTY_TALLY);
}

function mergeTwo(a: Tally, b: Tally): Tally {
  if (a.values.length === 0) return b;
  if (b.values.length === 0) return a;
  const values: number[] = [];
  const counts: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.values.length || j < b.values.length) {
    const va = i < a.values.length ? a.values[i]! : Infinity;
    const vb = j < b.values.length ? b.values[j]! : Infinity;
    if (va === vb) {
      values.push(va);
      counts.push(a.counts[i++]! + b.counts[j++]!);
    } else if (va < vb) {
      values.push(va);
      counts.push(a.counts[i++]!);
    } else {
      values.push(vb);
      counts.push(b.counts[j++]!);
    }
  }
  return { values, counts };
}

/** The same tally with every value passed through a strictly increasing function (such as log). */
export function mapTally(t: Tally, f: (v: number) => number): Tally {
  return { values: t.values.map(f), counts: t.counts };
}

function notFinite(index: number, value: number): ValidationError {
  return new ValidationError(undefined, [
    { path: `[${index}]`, message: `sample ${value} is not a finite number`, fix: 'drop it before tallying' },
  ]);
}
