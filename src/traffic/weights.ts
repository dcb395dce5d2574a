/**
 * Pure calculators for traffic weights: the smooth weighted round-robin choice nginx uses, and
 * canary splits. No clocks, no randomness: the same inputs give the same sequence.
 */
import { ValidationError } from '../errors/index.js';
import { MAX_BACKEND_WEIGHT } from './router.js';

/**
 * Smooth weighted round-robin, as nginx's `ngx_http_upstream_get_peer`: each pick adds every
 * candidate's weight to its running score, takes the highest score (first on ties) and subtracts
 * the candidates' total from it. Weights 5,1,1 give `a a b a c a a`, not `a a a a a b c`. Weight-0
 * backends are never picked. Picking allocates nothing.
 *
 * @example
 * const picker = new SmoothWeightedPicker([5, 1, 1]);
 * picker.pick(); // 0
 */
export class SmoothWeightedPicker {
  private readonly weights: Int32Array;
  private readonly current: Int32Array;

  constructor(weights: readonly number[]) {
    this.weights = Int32Array.from(weights);
    this.current = new Int32Array(weights.length);
  }

  /** How many candidates there are (weight 0 included). */
  get size(): number {
    return this.weights.length;
  }

  /**
   * The index of the next candidate, skipping those `skip` returns true for (already tried, known
   * down), or -1 when none is left with a weight above 0.
   */
  pick(skip?: (index: number) => boolean): number {
    const { weights, current } = this;
    let best = -1;
    let total = 0;
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i]!;
      if (w === 0 || (skip !== undefined && skip(i))) continue;
      current[i]! += w;
      total += w;
      if (best === -1 || current[i]! > current[best]!) best = i;
    }
    if (best !== -1) current[best]! -= total;
    return best;
  }
}

/** The first `n` picks of a fresh {@link SmoothWeightedPicker} over `weights`, as indexes. */
export function smoothWeightedOrder(weights: readonly number[], n: number): number[] {
  const picker = new SmoothWeightedPicker(weights);
  return Array.from({ length: n }, () => picker.pick());
}

/** A canary split of a total weight. */
export interface WeightSplit {
  readonly canary: number;
  readonly stable: number;
}

/**
 * Splits `total` weight between canary and stable for a canary at `percent` (0..100), rounding to
 * whole weights. Between 0 and 100 exclusive each side keeps at least 1, so a 0.1 % canary still
 * sees traffic and a 99.9 % one still leaves stable serving (as Argo Rollouts' basic canary).
 *
 * @example
 * splitWeights(256, 10); // { canary: 26, stable: 230 }
 */
export function splitWeights(total: number, percent: number): WeightSplit {
  const issues = [];
  if (!Number.isInteger(total) || total < 0) {
    issues.push({ path: 'total', message: `invalid total weight ${total}`, fix: 'use a whole number ≥ 0' });
  }
  if (!Number.isFinite(percent) || percent < 0 || percent > 100) {
    issues.push({ path: 'percent', message: `invalid canary percent ${percent}`, fix: 'use 0 to 100' });
  }
  if (issues.length > 0) throw new ValidationError(undefined, issues);
  if (percent === 0 || total === 0) return { canary: 0, stable: total };
  if (percent === 100) return { canary: total, stable: 0 };
  const canary =
    total < 2
      ? Math.round((total * percent) / 100)
      : clamp(Math.round((total * percent) / 100), 1, total - 1);
  return { canary, stable: total - canary };
}

/**
 * Spreads a group's weight over `count` backends as evenly as whole numbers allow, the larger
 * shares first; each share is capped at `MAX_BACKEND_WEIGHT`.
 *
 * @example
 * spreadWeight(230, 3); // [77, 77, 76]
 */
export function spreadWeight(total: number, count: number): number[] {
  if (!Number.isInteger(total) || total < 0 || !Number.isInteger(count) || count < 0) {
    throw new ValidationError(undefined, [
      {
        path: '',
        message: `cannot spread weight ${total} over ${count} backends`,
        fix: 'use whole numbers ≥ 0',
      },
    ]);
  }
  if (count === 0) return [];
  const base = Math.floor(total / count);
  const extra = total % count;
  return Array.from({ length: count }, (_, i) => Math.min(MAX_BACKEND_WEIGHT, base + (i < extra ? 1 : 0)));
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, n));
}
