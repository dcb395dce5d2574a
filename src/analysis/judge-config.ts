/**
 * The canary judge's configuration and its checker. Checked in full before any look is judged, so
 * a typo in a group name or a tolerance of "10" meaning 10% is reported with its path and fix,
 * every problem at once, instead of silently changing what fails a release.
 */
import { ValidationError, type ValidationIssue } from '../errors/index.js';

/** Which change is bad: a rise, a fall, or either. */
export type Direction = 'increase' | 'decrease' | 'either';

/** One metric the judge compares between baseline and canary. */
export interface MetricConfig {
  readonly name: string;
  /**
   * 'continuous' (latency): effect = relative Hodges-Lehmann shift vs the baseline median;
   * 'proportion' (error rate, samples are 0/1): effect = canary rate − baseline rate.
   */
  readonly kind: 'continuous' | 'proportion';
  readonly direction: Direction;
  /**
   * Tolerance band: changes within it never fail. continuous: relative (0.1 = 10%); proportion:
   * absolute rate (0.005 = 0.5 percentage points).
   */
  readonly tolerance: number;
  /** A critical metric that fails forces the verdict to fail, whatever the score. */
  readonly critical: boolean;
  /** The group whose weight the metric shares (see {@link JudgeConfig.groups}). */
  readonly group: string;
}

/** How a canary analysis is judged, for all its looks. */
export interface JudgeConfig {
  readonly metrics: readonly MetricConfig[];
  /**
   * Group weights (any positive numbers; only their ratios matter). A group that metrics name but
   * that is not listed weighs 1, so a config without groups weighs every group alike; a listed group
   * no metric names is an error (it is most likely a misspelling).
   */
  readonly groups: Readonly<Record<string, number>>;
  /** Score thresholds, 0..100, marginal ≤ pass: e.g. 95 / 75. */
  readonly thresholds: { readonly pass: number; readonly marginal: number };
  /** False-failure rate for this whole analysis: all looks, all metrics (e.g. 0.05). */
  readonly alpha: number;
  /** Planned looks K: the analysis is judged at looks 1..K, K being the final one. */
  readonly looks: number;
  /** Samples per side before a metric is judged. */
  readonly minSamples: number;
}

/** The weight of a group: its listed weight, or 1. */
export function groupWeight(config: JudgeConfig, group: string): number {
  return Object.hasOwn(config.groups, group) ? config.groups[group]! : 1;
}

const KINDS = ['continuous', 'proportion'] as const;
const DIRECTIONS = ['increase', 'decrease', 'either'] as const;

/**
 * Checks an untrusted configuration (parsed YAML, an API body) and returns it typed, or throws a
 * `ValidationError` listing every problem with its path (`metrics[1].tolerance`) and a fix.
 *
 * @example
 * validateJudgeConfig({ metrics: [...], groups: { errors: 2 }, thresholds: { pass: 95, marginal: 75 }, alpha: 0.05, looks: 4, minSamples: 50 });
 */
export function validateJudgeConfig(config: unknown): JudgeConfig {
  const issues: ValidationIssue[] = [];
  const add = (path: string, message: string, fix: string): void => void issues.push({ path, message, fix });
  if (!isRecord(config)) {
    throw new ValidationError(undefined, [
      { path: '', message: 'the judge configuration must be an object', fix: 'see docs/analysis.md' },
    ]);
  }
  const metrics = config.metrics;
  const names = new Set<string>();
  const used = new Set<string>();
  if (!Array.isArray(metrics) || metrics.length === 0) {
    add('metrics', 'expected a non-empty list of metrics', 'list at least one metric');
  } else {
    metrics.forEach((m: unknown, i) => checkMetric(m, `metrics[${i}]`, names, used, add));
  }
  const groups = config.groups ?? {};
  if (!isRecord(groups))
    add('groups', 'expected an object of group weights', 'write groups as { name: weight }');
  else {
    for (const [name, w] of Object.entries(groups)) {
      if (typeof w !== 'number' || !Number.isFinite(w) || w <= 0) {
        add(`groups.${name}`, `invalid weight ${String(w)}`, 'use a number above 0');
      }
      if (Array.isArray(metrics) && !used.has(name)) {
        add(`groups.${name}`, `no metric is in group '${name}'`, 'remove the group or fix its spelling');
      }
    }
  }
  const t = config.thresholds;
  if (!isRecord(t))
    add('thresholds', 'expected { pass, marginal }', 'write thresholds: { pass: 95, marginal: 75 }');
  else {
    const score = (v: unknown): v is number => typeof v === 'number' && v >= 0 && v <= 100;
    if (!score(t.pass)) add('thresholds.pass', `invalid pass score ${String(t.pass)}`, 'use 0 to 100');
    if (!score(t.marginal))
      add('thresholds.marginal', `invalid marginal score ${String(t.marginal)}`, 'use 0 to 100');
    if (score(t.pass) && score(t.marginal) && t.marginal > t.pass) {
      add('thresholds.marginal', `marginal ${t.marginal} is above pass ${t.pass}`, 'make marginal ≤ pass');
    }
  }
  const alpha = config.alpha;
  if (typeof alpha !== 'number' || !(alpha > 0 && alpha <= 0.5)) {
    add(
      'alpha',
      `invalid alpha ${String(alpha)}`,
      'use a false-failure rate above 0 and at most 0.5, such as 0.05',
    );
  }
  const looks = config.looks;
  if (typeof looks !== 'number' || !Number.isInteger(looks) || looks < 1 || looks > 1000) {
    add('looks', `invalid number of looks ${String(looks)}`, 'use a whole number from 1 to 1000');
  }
  const min = config.minSamples;
  if (typeof min !== 'number' || !Number.isInteger(min) || min < 1) {
    add('minSamples', `invalid minimum sample size ${String(min)}`, 'use a whole number ≥ 1, such as 50');
  }
  if (issues.length > 0) throw new ValidationError(undefined, issues);
  return { ...(config as unknown as JudgeConfig), groups: groups as Record<string, number> };
}

function checkMetric(
  m: unknown,
  path: string,
  names: Set<string>,
  used: Set<string>,
  add: (path: string, message: string, fix: string) => void,
): void {
  if (!isRecord(m))
    return add(
      path,
      'expected a metric object',
      'write { name, kind, direction, tolerance, critical, group }',
    );
  if (typeof m.name !== 'string' || m.name === '') add(`${path}.name`, 'expected a name', 'name the metric');
  else if (names.has(m.name))
    add(`${path}.name`, `metric '${m.name}' is listed twice`, 'give each metric its own name');
  else names.add(m.name);
  if (!KINDS.includes(m.kind as never)) {
    add(`${path}.kind`, `invalid kind ${JSON.stringify(m.kind)}`, `use one of ${KINDS.join(', ')}`);
  }
  if (!DIRECTIONS.includes(m.direction as never)) {
    add(
      `${path}.direction`,
      `invalid direction ${JSON.stringify(m.direction)}`,
      `use one of ${DIRECTIONS.join(', ')}`,
    );
  }
  const tol = m.tolerance;
  if (typeof tol !== 'number' || !Number.isFinite(tol) || tol < 0) {
    add(`${path}.tolerance`, `invalid tolerance ${String(tol)}`, 'use a number ≥ 0 (0.1 = 10%)');
  } else if (m.kind === 'proportion' && tol >= 1) {
    add(
      `${path}.tolerance`,
      `tolerance ${tol} is not a rate`,
      'write a rate below 1: 0.005 is half a percentage point',
    );
  } else if (m.kind === 'continuous' && tol >= 10) {
    add(
      `${path}.tolerance`,
      `tolerance ${tol} means ${tol * 100}%`,
      `write it as a fraction: ${tol / 100} is ${tol}%`,
    );
  }
  if (typeof m.critical !== 'boolean')
    add(`${path}.critical`, 'expected true or false', 'set critical: true or false');
  if (typeof m.group !== 'string' || m.group === '')
    add(`${path}.group`, 'expected a group name', 'name its group');
  else used.add(m.group);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
