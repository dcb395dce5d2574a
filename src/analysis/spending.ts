/**
 * Alpha spending for repeated looks. A canary is checked at every analysis interval; testing each
 * look at the full level α would fail a good canary far more often than α (five looks at 5% each
 * fail an A/A comparison about 14% of the time). Spending gives each look a share of α instead.
 */
import { ValidationError } from '../errors/index.js';
import { normalCdf, normalQuantile } from './normal.js';

/**
 * The α spent by information fraction t (0 ≤ t ≤ 1) under Lan and DeMets' O'Brien-Fleming-type
 * spending function, α(t) = 2 − 2Φ(z₁₋α/₂ / √t). It spends almost nothing early (α(¼) ≈ 7e-6 for
 * α = 0.025) and most of α at the end: early looks stop only a canary that is clearly broken, and
 * the last look keeps nearly the power of a single test at α.
 *
 * @example
 * spentAlpha(0.05, 1); // 0.05
 */
export function spentAlpha(alpha: number, t: number): number {
  checkAlpha(alpha);
  if (!(t >= 0 && t <= 1)) {
    throw new ValidationError(undefined, [
      { path: 't', message: `invalid information fraction ${t}`, fix: 'use a number from 0 to 1' },
    ]);
  }
  if (t === 0) return 0;
  if (t === 1) return alpha;
  return 2 * normalCdf(-normalQuantile(1 - alpha / 2) / Math.sqrt(t));
}

/**
 * The α to use at look k (1-based) of K equally spaced looks: α(k/K) − α((k−1)/K), the increment
 * of {@link spentAlpha}. The increments sum to α, and the chance that any look fails falsely is at
 * most the sum of each look's chance (the union bound), so testing every look at its increment keeps
 * the false-failure rate over all looks at or below α, whatever the correlation between looks.
 * (Group-sequential boundaries that use the correlation are slightly less strict; the union bound
 * needs no assumption about how samples accumulate between looks.)
 *
 * @example
 * lookAlpha(0.05, 4, 4); // ≈ 0.0303, the last of four looks
 */
export function lookAlpha(alpha: number, look: number, looks: number): number {
  if (!Number.isInteger(looks) || looks < 1 || !Number.isInteger(look) || look < 1 || look > looks) {
    throw new ValidationError(undefined, [
      {
        path: 'look',
        message: `invalid look ${look} of ${looks}`,
        fix: 'use whole numbers with 1 ≤ look ≤ looks',
      },
    ]);
  }
  return spentAlpha(alpha, look / looks) - spentAlpha(alpha, (look - 1) / looks);
}

function checkAlpha(alpha: number): void {
  if (!(alpha > 0 && alpha < 1)) {
    throw new ValidationError(undefined, [
      { path: 'alpha', message: `invalid alpha ${alpha}`, fix: 'use a level between 0 and 1, such as 0.05' },
    ]);
  }
}
