/**
 * The canary judge: at each look, compare every metric's baseline and canary samples and decide
 * pass, fail or continue. Kayenta's NetflixACAJudge model (a Mann-Whitney classifier per metric,
 * weighted groups, a 0..100 score with pass and marginal thresholds, critical metrics that force a
 * failure), plus what it lacks: a tolerance band around "no change", a minimum sample size with
 * power warnings, and alpha spending, so judging every interval does not raise the false-failure
 * rate. Pure: the same config, samples and look always give the same result.
 */
import { ValidationError } from '../errors/index.js';
import { hodgesLehmann, type ShiftEstimate } from './hodges-lehmann.js';
import { groupWeight, validateJudgeConfig, type JudgeConfig, type MetricConfig } from './judge-config.js';
import {
  formatCount,
  formatP,
  formatPercent,
  formatPoints,
  metricSentence,
  noDataSentence,
} from './judge-text.js';
import { mannWhitney, type Alternative } from './mann-whitney.js';
import { logSpread, requiredSamples, type Change } from './power.js';
import { lookAlpha } from './spending.js';
import { EMPTY_TALLY, tallyMean, tallyQuantile, tallySize, type Tally } from './tally.js';

export { validateJudgeConfig, type Direction, type JudgeConfig, type MetricConfig } from './judge-config.js';

/** One metric's samples at a look: everything seen since the analysis started, per side. */
export interface MetricSamples {
  readonly name: string;
  readonly baseline: Tally;
  readonly canary: Tally;
}

/** 'high'/'low': failed, the canary being higher/lower; 'nodata': too few samples to judge. */
export type Classification = 'pass' | 'high' | 'low' | 'nodata';

/** Size, median and mean of one side's sample. */
export interface SideSummary {
  readonly n: number;
  readonly median: number;
  readonly mean: number;
}

/** The judge's finding for one metric at one look. */
export interface MetricVerdict {
  readonly name: string;
  readonly kind: MetricConfig['kind'];
  readonly direction: MetricConfig['direction'];
  readonly classification: Classification;
  readonly critical: boolean;
  readonly group: string;
  /** The Mann-Whitney p-value (NaN when not judged). */
  readonly pValue: number;
  /** The nominal level at this look: α / metrics, spent over the looks. */
  readonly alpha: number;
  /** Mann-Whitney U of the canary (R's W). */
  readonly u: number;
  readonly z: number;
  /** Hodges-Lehmann shift of canary against baseline, with its 95% interval. */
  readonly shift: ShiftEstimate;
  /** The relative shift (continuous) or the rate difference (proportion). */
  readonly effect: number;
  readonly tolerance: number;
  readonly baseline: SideSummary;
  readonly canary: SideSummary;
  /** One sentence for people. */
  readonly reason: string;
}

/** What to do with the canary after a look. */
export type Decision = 'pass' | 'fail' | 'continue';

/** The judge's answer at one look. */
export interface LookResult {
  readonly look: number;
  readonly looks: number;
  readonly final: boolean;
  /** 0..100, NaN when no metric could be judged. */
  readonly score: number;
  readonly decision: Decision;
  readonly reason: string;
  readonly metrics: readonly MetricVerdict[];
  readonly warnings: readonly string[];
}

/** The confidence of the reported Hodges-Lehmann intervals. */
export const SHIFT_CONFIDENCE = 0.95;
/** The power the warnings ask for. */
export const WARNING_POWER = 0.8;

/**
 * Judges look `look` (1..looks) of an analysis. Each metric is tested at
 * `lookAlpha(alpha / metrics, look, looks)`: Bonferroni across metrics and O'Brien-Fleming-type
 * spending across looks, so the chance that a canary no different from its baseline ever fails is
 * at most `alpha`. A metric fails only when its test is significant at that level *and* its effect
 * is outside the tolerance band in the bad direction. See docs/analysis.md for the decision rules.
 *
 * Samples for a metric the config does not name are ignored (with a warning); a configured metric
 * without samples is 'nodata'.
 */
export function judge(config: JudgeConfig, samples: readonly MetricSamples[], look: number): LookResult {
  const cfg = validateJudgeConfig(config);
  if (!Number.isInteger(look) || look < 1 || look > cfg.looks) {
    throw new ValidationError(undefined, [
      {
        path: 'look',
        message: `invalid look ${look} of ${cfg.looks}`,
        fix: `use a whole number from 1 to ${cfg.looks}`,
      },
    ]);
  }
  const warnings: string[] = [];
  const byName = new Map<string, MetricSamples>();
  for (const s of samples) {
    if (byName.has(s.name)) {
      throw new ValidationError(undefined, [
        {
          path: `samples.${s.name}`,
          message: `samples for '${s.name}' given twice`,
          fix: 'merge them into one tally per side',
        },
      ]);
    }
    byName.set(s.name, s);
    if (!cfg.metrics.some((m) => m.name === s.name))
      warnings.push(`samples for unknown metric '${s.name}' ignored`);
  }
  const perMetric = cfg.alpha / cfg.metrics.length;
  const alpha = lookAlpha(perMetric, look, cfg.looks);
  const finalAlpha = lookAlpha(perMetric, cfg.looks, cfg.looks);
  const metrics = cfg.metrics.map((m) => judgeMetric(m, byName.get(m.name), alpha, cfg.minSamples));
  for (const [i, m] of cfg.metrics.entries()) {
    const w = powerWarning(
      m,
      metrics[i]!,
      byName.get(m.name)?.baseline ?? EMPTY_TALLY,
      finalAlpha,
      look,
      cfg.looks,
    );
    if (w !== undefined) warnings.push(w);
  }
  const score = scoreOf(cfg, metrics);
  const { decision, reason } = decide(cfg, metrics, score, look);
  return { look, looks: cfg.looks, final: look === cfg.looks, score, decision, reason, metrics, warnings };
}

const ALTERNATIVES: Record<MetricConfig['direction'], Alternative> = {
  increase: 'greater',
  decrease: 'less',
  either: 'two-sided',
};

function judgeMetric(
  metric: MetricConfig,
  samples: MetricSamples | undefined,
  alpha: number,
  minSamples: number,
): MetricVerdict {
  const baselineTally = samples?.baseline ?? EMPTY_TALLY;
  const canaryTally = samples?.canary ?? EMPTY_TALLY;
  if (metric.kind === 'proportion') {
    checkRates(metric.name, 'baseline', baselineTally);
    checkRates(metric.name, 'canary', canaryTally);
  }
  const baseline = summary(baselineTally);
  const canary = summary(canaryTally);
  const common = {
    name: metric.name,
    kind: metric.kind,
    direction: metric.direction,
    critical: metric.critical,
    group: metric.group,
    alpha,
    tolerance: metric.tolerance,
    baseline,
    canary,
  };
  if (baseline.n < minSamples || canary.n < minSamples) {
    return {
      ...common,
      classification: 'nodata',
      pValue: NaN,
      u: NaN,
      z: NaN,
      shift: { estimate: NaN, lower: NaN, upper: NaN, confidence: SHIFT_CONFIDENCE },
      effect: NaN,
      reason: noDataSentence(metric.name, baseline.n, canary.n, minSamples),
    };
  }
  const test = mannWhitney(canaryTally, baselineTally, ALTERNATIVES[metric.direction]);
  const shift = hodgesLehmann(canaryTally, baselineTally, SHIFT_CONFIDENCE);
  const effect =
    metric.kind === 'continuous' ? relative(shift.estimate, baseline.median) : canary.mean - baseline.mean;
  const significant = test.pValue <= alpha;
  const outside =
    metric.direction === 'increase'
      ? effect > metric.tolerance
      : metric.direction === 'decrease'
        ? effect < -metric.tolerance
        : Math.abs(effect) > metric.tolerance;
  const failed = significant && outside;
  const reason = metricSentence({
    metric,
    failed,
    significant,
    outside,
    pValue: test.pValue,
    alpha,
    effect,
    shift,
    baselineRate: baseline.mean,
    canaryRate: canary.mean,
    baselineMedian: baseline.median,
  });
  return {
    ...common,
    classification: failed ? (effect > 0 ? 'high' : 'low') : 'pass',
    pValue: test.pValue,
    u: test.u,
    z: test.z,
    shift,
    effect,
    reason,
  };
}

function summary(t: Tally): SideSummary {
  return { n: tallySize(t), median: tallyQuantile(t, 0.5), mean: tallyMean(t) };
}

/** A shift relative to the baseline median; ±Infinity for a non-zero shift from a median of 0. */
function relative(shift: number, median: number): number {
  if (median === 0) return shift === 0 ? 0 : Math.sign(shift) * Infinity;
  return shift / Math.abs(median);
}

function checkRates(name: string, side: string, t: Tally): void {
  if (t.values.length > 0 && (t.values[0]! < 0 || t.values[t.values.length - 1]! > 1)) {
    throw new ValidationError(undefined, [
      {
        path: `samples.${name}.${side}`,
        message: `a proportion metric's samples must be 0 or 1, got values from ${t.values[0]} to ${t.values[t.values.length - 1]}`,
        fix: 'record 1 for each failed request and 0 for each other one',
      },
    ]);
  }
}

/**
 * Σ over groups with judged metrics of weight × (passed / judged), over the sum of those groups'
 * weights, × 100. Groups whose metrics are all 'nodata' are left out rather than counted as
 * passing, so missing data never raises the score; NaN when nothing was judged.
 */
function scoreOf(config: JudgeConfig, verdicts: readonly MetricVerdict[]): number {
  const groups = new Map<string, { judged: number; passed: number }>();
  for (const v of verdicts) {
    if (v.classification === 'nodata') continue;
    const g = groups.get(v.group) ?? { judged: 0, passed: 0 };
    g.judged++;
    if (v.classification === 'pass') g.passed++;
    groups.set(v.group, g);
  }
  let weighted = 0;
  let weights = 0;
  for (const [name, g] of groups) {
    const w = groupWeight(config, name);
    weighted += (w * g.passed) / g.judged;
    weights += w;
  }
  return weights === 0 ? NaN : (100 * weighted) / weights;
}

function decide(
  config: JudgeConfig,
  verdicts: readonly MetricVerdict[],
  score: number,
  look: number,
): { decision: Decision; reason: string } {
  const failed = verdicts.filter((v) => v.classification === 'high' || v.classification === 'low');
  const failedNames = failed.length === 0 ? 'none failed' : `failed: ${failed.map(label).join(', ')}`;
  const critical = failed.filter((v) => v.critical);
  const noData = verdicts.filter((v) => v.classification === 'nodata');
  const { pass, marginal } = config.thresholds;
  const at = `look ${look} of ${config.looks}`;
  const shown = Number.isNaN(score) ? 'n/a' : String(Math.round(score * 10) / 10);
  if (critical.length > 0) {
    return {
      decision: 'fail',
      reason: `fail at ${at}: critical metric${critical.length > 1 ? 's' : ''} ${critical.map(label).join(', ')} failed (${critical.map((v) => v.reason).join('; ')})`,
    };
  }
  if (score < marginal) {
    // Also at the final look, even with metrics still without data: a score this low fails any look.
    return {
      decision: 'fail',
      reason: `fail at ${at}: score ${shown} < marginal ${marginal} (${failedNames})`,
    };
  }
  if (look < config.looks) {
    const judged = Number.isNaN(score) ? 'nothing judged yet' : `score ${shown} ≥ marginal ${marginal}`;
    const waiting = noData.length > 0 ? `; no data yet: ${noData.map((v) => v.name).join(', ')}` : '';
    return { decision: 'continue', reason: `continue after ${at}: ${judged} (${failedNames}${waiting})` };
  }
  if (noData.length > 0) {
    return {
      decision: 'continue',
      reason:
        `continue at the final look (${at}): ${noData.map((v) => `${v.name} has ${formatCount(Math.min(v.baseline.n, v.canary.n))} of ${formatCount(config.minSamples)} samples per side`).join(', ')}; ` +
        'waiting for more traffic before deciding',
    };
  }
  if (score >= pass)
    return { decision: 'pass', reason: `pass at the final look: score ${shown} ≥ ${pass} (${failedNames})` };
  return {
    decision: 'fail',
    reason: `fail at the final look: score ${shown} < pass ${pass} (${failedNames})`,
  };
}

function label(v: MetricVerdict): string {
  return `${v.name} (${v.classification})`;
}

/**
 * Warns when, at the current samples per side, a change the size of the tolerance could not be
 * detected with 80% power even at the final look's level: the canary could pass without the
 * judge having been able to see the change it is meant to catch.
 */
function powerWarning(
  metric: MetricConfig,
  verdict: MetricVerdict,
  baseline: Tally,
  finalAlpha: number,
  look: number,
  looks: number,
): string | undefined {
  const n = Math.min(verdict.baseline.n, verdict.canary.n);
  if (n === 0 || metric.tolerance === 0) return undefined;
  let change: Change;
  if (metric.kind === 'continuous') {
    const logScale = logSpread(baseline);
    if (!(logScale > 0)) return undefined;
    change = { kind: 'continuous', relative: metric.tolerance, logScale };
  } else {
    const from = verdict.baseline.mean;
    const to = metric.direction === 'decrease' ? from - metric.tolerance : from + metric.tolerance;
    if (to < 0 || to > 1) return undefined;
    change = { kind: 'proportion', from, to };
  }
  const sides = metric.direction === 'either' ? 2 : 1;
  const needed = requiredSamples(change, { alpha: finalAlpha, sides, power: WARNING_POWER });
  if (!(n < needed)) return undefined;
  const size =
    metric.kind === 'continuous' ? formatPercent(metric.tolerance) : formatPoints(metric.tolerance);
  const what = `a ${metric.direction === 'decrease' ? 'fall' : 'rise'} of ${size}`;
  const projection =
    look < looks
      ? `; at this rate the final look will have about ${formatCount((n * looks) / look, true)}`
      : '';
  return (
    `${metric.name}: at ${formatCount(n)} samples per side, ${what} (the tolerance) would be missed more than ` +
    `${Math.round((1 - WARNING_POWER) * 100)}% of the time: about ${formatCount(needed, true)} per side are needed ` +
    `for ${WARNING_POWER * 100}% power at the final look's α=${formatP(finalAlpha)}${projection}`
  );
}
