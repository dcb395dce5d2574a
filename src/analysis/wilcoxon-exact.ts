/**
 * The exact null distribution of the Mann-Whitney U statistic for small untied samples, as R's
 * `pwilcox` and `qwilcox`. With fewer than 50 values a side and no ties, R's `wilcox.test` uses it
 * instead of the normal approximation; kiln does the same so its p-values and intervals equal R's.
 */

/**
 * The frequencies of U = 0..m·n for sample sizes m and n, by the recurrence
 * f(m, n; u) = f(m − 1, n; u − n) + f(m, n − 1; u) (the largest of the m + n values is either an
 * x, beating all n y's, or a y). Additions only, so no cancellation; about m²n²/4 steps.
 */
function frequencies(m: number, n: number): Float64Array {
  // prev[j] = f(i − 1, j; ·), cur[j] = f(i, j; ·)
  let prev: Float64Array[] = Array.from({ length: n + 1 }, () => Float64Array.of(1));
  for (let i = 1; i <= m; i++) {
    const cur: Float64Array[] = [Float64Array.of(1)];
    for (let j = 1; j <= n; j++) {
      const f = new Float64Array(i * j + 1);
      const left = cur[j - 1]!; // f(i, j − 1)
      const up = prev[j]!; // f(i − 1, j)
      for (let u = 0; u < left.length; u++) f[u] = left[u]!;
      for (let u = 0; u < up.length; u++) f[u + j]! += up[u]!;
      cur.push(f);
    }
    prev = cur;
  }
  return prev[n]!;
}

/** Cumulative probabilities P(U ≤ u), u = 0..m·n. */
type Cdf = Float64Array;

const CACHE_LIMIT = 64;
const cache = new Map<string, Cdf>();

function cdfFor(m: number, n: number): Cdf {
  const key = m <= n ? `${m},${n}` : `${n},${m}`; // U's distribution is symmetric in (m, n)
  const hit = cache.get(key);
  if (hit) return hit;
  const f = frequencies(Math.min(m, n), Math.max(m, n));
  let total = 0;
  for (const c of f) total += c;
  const cdf = new Float64Array(f.length);
  let run = 0;
  for (let u = 0; u < f.length; u++) {
    run += f[u]!;
    cdf[u] = run / total;
  }
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  cache.set(key, cdf);
  return cdf;
}

/**
 * P(U ≤ q) for untied samples of sizes m and n, as R's `pwilcox(q, m, n)`. Upper tails should use
 * the symmetry P(U ≥ u) = P(U ≤ m·n − u), which keeps small tail probabilities exact.
 */
export function wilcoxonCdf(q: number, m: number, n: number): number {
  const k = Math.floor(q + 1e-7);
  if (k < 0) return 0;
  if (k >= m * n) return 1;
  return cdfFor(m, n)[k]!;
}

/**
 * The smallest q with P(U ≤ q) ≥ p, as R's `qwilcox(p, m, n)` for p ≤ 0.5 (with R's allowance of
 * 10 machine epsilons, so a level that is exactly attainable is attained).
 */
export function wilcoxonQuantile(p: number, m: number, n: number): number {
  const cdf = cdfFor(m, n);
  const target = p - 10 * Number.EPSILON;
  for (let q = 0; q < cdf.length; q++) if (cdf[q]! >= target) return q;
  return m * n;
}
