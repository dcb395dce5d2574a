/**
 * The judge's sentences for people: one per metric, one per look and the power warnings. Kept
 * apart from the arithmetic so the wording can change without touching a decision.
 */
import type { MetricConfig } from './judge-config.js';
import type { ShiftEstimate } from './hodges-lehmann.js';

/** A p-value or level in two significant digits: 0.0021, 3.2e-7. */
export function formatP(p: number): string {
  if (Number.isNaN(p)) return 'n/a';
  if (p === 0) return '0';
  if (p >= 0.001) return String(Number(p.toPrecision(2)));
  return p.toExponential(1);
}

/** A fraction as a percentage: 0.234 → "23%", 0.042 → "4.2%". */
export function formatPercent(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? '+∞%' : x < 0 ? '−∞%' : 'n/a';
  const pct = x * 100;
  const digits = Math.abs(pct) >= 10 || pct === 0 ? 0 : Math.abs(pct) >= 1 ? 1 : 2;
  return `${Number(pct.toFixed(digits))}%`;
}

/** A rate as a percentage with two decimals: 0.001 → "0.10%". */
export function formatRate(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : 'n/a';
}

/** A rate difference in percentage points: 0.019 → "1.9 points". */
export function formatPoints(x: number): string {
  const pts = Number((x * 100).toPrecision(2));
  return `${pts} point${Math.abs(pts) === 1 ? '' : 's'}`;
}

/** A count with thousands separators, rounded to two significant digits above 1,000: "3,100". */
export function formatCount(n: number, round = false): string {
  if (!Number.isFinite(n)) return String(n);
  const v = round && n >= 1000 ? Number(n.toPrecision(2)) : Math.round(n);
  return v.toLocaleString('en-US');
}

/** The band a metric's tolerance describes, as "10%" or "0.5-point". */
export function formatBand(metric: MetricConfig): string {
  return metric.kind === 'continuous'
    ? `${formatPercent(metric.tolerance)} band`
    : `${Number((metric.tolerance * 100).toPrecision(3))}-point band`;
}

/** What the judge knows of one judged metric when it writes its sentence. */
export interface JudgedFacts {
  readonly metric: MetricConfig;
  readonly failed: boolean;
  readonly significant: boolean;
  readonly outside: boolean;
  readonly pValue: number;
  readonly alpha: number;
  readonly effect: number;
  readonly shift: ShiftEstimate;
  readonly baselineRate: number;
  readonly canaryRate: number;
  readonly baselineMedian: number;
}

/**
 * One sentence for a judged metric, such as "latency rose 23% (95% CI 18% to 29%), p=0.0001 ≤
 * 0.0021: outside the 10% band".
 */
export function metricSentence(f: JudgedFacts): string {
  const { metric } = f;
  const verb = f.effect > 0 ? 'rose' : f.effect < 0 ? 'fell' : 'did not change';
  let change: string;
  if (metric.kind === 'continuous') {
    const base = Math.abs(f.baselineMedian);
    const ci =
      base > 0
        ? ` (${Math.round(f.shift.confidence * 100)}% CI ${formatPercent(f.shift.lower / base)} to ${formatPercent(f.shift.upper / base)})`
        : '';
    change =
      f.effect === 0
        ? `${metric.name} did not change${ci}`
        : `${metric.name} ${verb} ${formatPercent(Math.abs(f.effect))}${ci}`;
  } else {
    change =
      `${metric.name} ${f.effect === 0 ? 'stayed' : verb} ${f.effect === 0 ? 'at' : 'from'} ${formatRate(f.baselineRate)}` +
      (f.effect === 0
        ? ''
        : ` to ${formatRate(f.canaryRate)} (${f.effect > 0 ? '+' : ''}${formatPoints(f.effect)})`);
  }
  const test = `p=${formatP(f.pValue)} ${f.significant ? '≤' : '>'} ${formatP(f.alpha)}`;
  const band = formatBand(metric);
  if (f.failed) return `${change}, ${test}: outside the ${band}`;
  if (!f.significant) return `${change}, ${test}: not significant at this look`;
  if (!f.outside) return `${change}, ${test}, but within the ${band}`;
  return `${change}, ${test}, in the harmless direction`;
}

/** The sentence for a metric with too few samples. */
export function noDataSentence(name: string, baseline: number, canary: number, minSamples: number): string {
  return (
    `${name}: not judged, ${formatCount(Math.min(baseline, canary))} of ${formatCount(minSamples)} samples per side ` +
    `(baseline ${formatCount(baseline)}, canary ${formatCount(canary)})`
  );
}
