/**
 * Wording for resolution failures: why a dependency has no candidate, and which package names
 * are close to a mistyped one.
 */
import type { Relation } from './control.js';
import { compareNames, type PackageIndex } from './package-index.js';

/**
 * Why no alternative of `group` has a candidate: `no candidate in bookworm, bookworm-security`,
 * followed by what the archive has under those names when only the versions are wrong.
 */
export function describeMissing(index: PackageIndex, group: readonly Relation[]): string {
  const have: string[] = [];
  for (const alt of group) {
    for (const r of index.get(alt.name)) have.push(`${r.name} ${r.version}`);
    for (const r of index.providers(alt.name)) {
      const p = r.provides.find((x) => x.name === alt.name);
      have.push(`${r.name} ${r.version} provides ${alt.name}${p?.version ? ` ${p.version}` : ''}`);
    }
    if (alt.archQualifier && !['any', 'native', index.arch].includes(alt.archQualifier)) {
      have.push(`(architecture ${alt.archQualifier} is not ${index.arch})`);
    }
  }
  const base = `no candidate in ${index.suites.join(', ')}`;
  return have.length > 0 ? `${base} (the archive has ${[...new Set(have)].join(', ')})` : base;
}

/** Up to three package names close to `name` (edit distance, or a longer name it starts). */
export function suggestNames(index: PackageIndex, name: string, limit = 3): string[] {
  const max = Math.max(1, Math.floor(name.length / 3));
  const scored: { n: string; d: number }[] = [];
  let last = '';
  for (const r of index.all()) {
    if (r.name === last) continue;
    last = r.name;
    const d = r.name.startsWith(name) ? 1 : editDistance(name, r.name, max);
    if (d <= max) scored.push({ n: r.name, d });
  }
  return scored
    .sort((a, b) => a.d - b.d || a.n.length - b.n.length || compareNames(a.n, b.n))
    .slice(0, limit)
    .map((s) => s.n);
}

/** Levenshtein distance, giving up (returning `max + 1`) once it must exceed `max`. */
function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const v = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      row.push(v);
      best = Math.min(best, v);
    }
    if (best > max) return max + 1;
    prev = row;
  }
  return prev[b.length] ?? max + 1;
}
