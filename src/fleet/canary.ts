/**
 * The canary analyst: the controller's part of a canary rollout that is not placement. Each pass it
 * looks at every canary rollout in progress and
 * - moves past a step without analysis once the step's instances are healthy and routed;
 * - opens the analysis window of an analysed step at that moment, keeping the router's counters;
 * - at each look (the step's `analyse` time divided into looks every `interval`) asks the judge,
 *   and records its verdict in the rollout's status, conditions and events;
 * - promotes to the next step when the judge passes the last look, rolls back when it fails, and
 *   keeps waiting while a side lacks samples (until the progress deadline runs out).
 */
import { judge, type JudgeConfig, type LookResult, type MetricConfig } from '../analysis/index.js';
import type { AnalysisSpec, MetricSpec } from '../spec/index.js';
import {
  ConditionReason,
  ConditionType,
  setCondition,
  type RolloutRecord,
  type StateStore,
} from '../state/index.js';
import type { BackendMetrics } from '../traffic/index.js';
import { collectSamples, sideCounts, snapshotOf } from './canary-samples.js';
import { canaryStatusOf, jsonSafe, type CanaryLook, type CanaryStatus } from './canary-status.js';
import { canaryPlacement } from './counts.js';
import { recordOutcome } from './outcome.js';
import type { DesiredService, ObservedInstance } from './types.js';

/** The default tolerance bands: 0.5 percentage points of errors, 10 % of anything else. */
export const DEFAULT_ERROR_TOLERANCE_PP = 0.5;
export const DEFAULT_RELATIVE_TOLERANCE_PCT = 10;

/** The judge's configuration for one analysed step of a canary with `analysis`. */
export function judgeConfigOf(analysis: AnalysisSpec, analyse: number, analysedSteps: number): JudgeConfig {
  return {
    metrics: analysis.metrics.map(metricConfigOf),
    groups: analysis.groups,
    thresholds: analysis.thresholds,
    // The false-failure rate is the rollout's: each analysed step gets its share.
    alpha: analysis.alpha / Math.max(1, analysedSteps),
    looks: looksOf(analysis, analyse),
    minSamples: analysis.minSamples,
  };
}

/** Looks in a step analysed for `analyse` ms: one every `interval`, at least one. */
export function looksOf(analysis: AnalysisSpec, analyse: number): number {
  return Math.max(1, Math.round(analyse / analysis.interval));
}

function metricConfigOf(m: MetricSpec): MetricConfig {
  const pct =
    m.tolerance === undefined
      ? m.source === 'errors'
        ? DEFAULT_ERROR_TOLERANCE_PP
        : DEFAULT_RELATIVE_TOLERANCE_PCT
      : typeof m.tolerance === 'number'
        ? m.tolerance
        : Number(m.tolerance.slice(0, -1));
  return {
    name: m.name,
    kind: m.source === 'errors' ? 'proportion' : 'continuous',
    direction: m.direction,
    tolerance: pct / 100,
    critical: m.critical ?? m.source === 'errors',
    group: m.group ?? m.name,
  };
}

/** What the analyst needs. */
export interface CanaryAnalystOptions {
  readonly store: StateStore;
  readonly metrics: () => Promise<BackendMetrics[]>;
  readonly clock: () => number;
  readonly log: (line: string) => void;
}

/**
 * Runs one pass over the canary rollouts of `desired`. Returns true when a rollout moved (a step
 * passed or the rollout ended), so the controller plans again at once.
 */
export async function analyseCanaries(
  o: CanaryAnalystOptions,
  desired: readonly DesiredService[],
  observed: readonly ObservedInstance[],
): Promise<boolean> {
  let moved = false;
  let metrics: BackendMetrics[] | undefined;
  const load = async () => (metrics ??= await o.metrics());
  for (const svc of desired) {
    const r = svc.rollout;
    if (!r || !r.canary || !r.from || r.phase !== 'progressing' || svc.strategy.type !== 'canary') continue;
    const record = o.store.rollouts.find(r.id);
    if (!record) continue;
    const mine = observed.filter((i) => i.service === svc.name);
    try {
      if (await analyseOne(o, svc, record, mine, load)) moved = true;
    } catch (err) {
      // One service's analysis failing (its router or Prometheus unreachable) must not stop the others'.
      o.log(
        `${svc.name}: canary analysis of rollout ${record.id} failed this pass: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  return moved;
}

async function analyseOne(
  o: CanaryAnalystOptions,
  svc: DesiredService,
  record: RolloutRecord,
  observed: readonly ObservedInstance[],
  load: () => Promise<BackendMetrics[]>,
): Promise<boolean> {
  if (svc.strategy.type !== 'canary') return false;
  const { steps, analysis } = svc.strategy;
  const status = canaryStatusOf(record);
  const step = steps[status.step];
  if (!step || step.weight >= 100) return false;
  const from = record.fromRelease === undefined ? '' : `r${record.fromRelease}`;
  const to = `r${record.toRelease}`;
  const place = canaryPlacement(svc.replicas, step.weight, step.analyse !== undefined);
  const healthy = (pred: (i: ObservedInstance) => boolean) =>
    observed.filter((i) => i.phase === 'healthy' && pred(i));
  const canaries = healthy((i) => i.release === to);
  const baselines = healthy((i) => i.release === from && i.role === 'baseline');
  const ready = canaries.length >= place.canaries && baselines.length >= place.baselines;
  const now = o.clock();
  if (step.analyse === undefined) {
    if (!ready) return false;
    advance(o, record, status, `step ${status.step + 1} (${step.weight}%) is healthy and routed`);
    return true;
  }
  if (!status.window) {
    if (!ready) return false;
    const all = (await load()).filter((m) => m.service === svc.name);
    const counters = Object.fromEntries(all.map((m) => [m.backendId, snapshotOf(m)]));
    save(
      o,
      record,
      { ...status, window: { startedAt: new Date(now).toISOString(), counters } },
      {
        status: 'Unknown',
        reason: ConditionReason.AnalysisRunning,
        message: `analysing ${to} against a fresh baseline of ${from} at ${step.weight}% each for ${Math.round(step.analyse / 1000)}s`,
      },
    );
    return false;
  }
  const looks = looksOf(analysis, step.analyse);
  // Only this window's looks count: a resumed step is analysed afresh.
  const window = status.window;
  const taken = status.looks.filter((l) => l.step === status.step && l.at >= window.startedAt).length;
  const look = Math.min(taken + 1, looks);
  const windowStart = Date.parse(window.startedAt);
  if (now < windowStart + (look * step.analyse) / looks) return false;
  // While the final look waits for data it is tried again once an interval, not every pass.
  if (
    window.waitingSince !== undefined &&
    now < Date.parse(window.checkedAt ?? window.waitingSince) + analysis.interval
  )
    return false;
  const limit = windowStart + step.analyse + svc.progressDeadlineMs;

  const all = (await load()).filter((m) => m.service === svc.name);
  const role = (id: string) => o.store.instances.find(id);
  const side = (pred: (rel: number, role?: string) => boolean) =>
    all.filter((m) => {
      const rec = role(m.backendId);
      return rec !== undefined && pred(rec.release, rec.role);
    });
  const baseline = sideCounts(
    side((rel, r) => rel === record.fromRelease && r === 'baseline'),
    status.window.counters,
  );
  const canary = sideCounts(
    side((rel) => rel === record.toRelease),
    status.window.counters,
  );
  const final = look === looks;
  const short = Math.min(baseline.requests, canary.requests);
  if (final && short < analysis.minSamples) {
    // The last look is taken once, with enough samples: until then the rollout waits.
    return wait(o, record, svc.name, status, now, limit, {
      waiting: `waiting for traffic: ${short} of the ${analysis.minSamples} requests each side needs`,
      failure: `not enough traffic to judge ${to}`,
    });
  }
  const config = judgeConfigOf(analysis, step.analyse, steps.filter((s) => s.analyse !== undefined).length);
  const { samples, warnings } = await collectSamples({
    metrics: analysis.metrics,
    baseline,
    canary,
    sides: {
      baseline: { release: from, role: 'baseline', instances: baselines.map((i) => i.id) },
      canary: { release: to, role: 'canary', instances: canaries.map((i) => i.id) },
    },
    windowStart,
    now,
    stepMs: analysis.interval / 10,
  });
  const result: LookResult = judge(config, samples, look);
  if (final && result.decision === 'continue') {
    // A metric still without data at the last look (a Prometheus query failing, or too few
    // points): not a look, a wait, bounded by the progress deadline like a wait for traffic.
    const missing = result.metrics.filter((m) => m.classification === 'nodata').map((m) => m.name);
    return wait(o, record, svc.name, status, now, limit, {
      waiting: `waiting for data on ${missing.join(', ') || 'the metrics'}: ${result.reason}`,
      failure: `no data on ${missing.join(', ') || 'the metrics'} to judge ${to}`,
    });
  }
  const entry: CanaryLook = jsonSafe({
    ...result,
    warnings: [...result.warnings, ...warnings],
    step: status.step,
    weight: step.weight,
    at: new Date(now).toISOString(),
    samples: { baseline: baseline.requests, canary: canary.requests },
  });
  const next: CanaryStatus = { ...status, looks: [...status.looks, entry] };
  const score = Number.isNaN(result.score) ? 'no score' : `score ${Math.round(result.score)}`;
  const message = `look ${look}/${looks} at ${step.weight}%: ${score}; ${result.reason}`;
  o.store.events.append({
    kind: 'rollout.analysis',
    service: svc.name,
    subject: record.id,
    reason: result.decision,
    message,
    data: { look, looks, step: status.step, score: entry.score, decision: result.decision },
  });
  o.log(`${svc.name}: ${message}`);
  if (result.decision === 'fail') {
    const saved = save(o, record, next, { status: 'False', reason: ConditionReason.AnalysisFailed, message });
    fail(o, saved, svc.name, `canary analysis failed at ${step.weight}%: ${result.reason}`);
    return true;
  }
  if (result.decision === 'pass') {
    const saved = save(o, record, next, { status: 'True', reason: ConditionReason.AnalysisPassed, message });
    advance(o, saved, next, `analysis passed at ${step.weight}% (${score})`);
    return true;
  }
  save(o, record, next, { status: 'Unknown', reason: ConditionReason.AnalysisRunning, message });
  return false;
}

/**
 * The final look cannot be taken yet: record the wait (and when it was last checked), or, past
 * `limit`, fail the rollout, with the Analysed condition saying why.
 */
function wait(
  o: CanaryAnalystOptions,
  record: RolloutRecord,
  service: string,
  status: CanaryStatus,
  now: number,
  limit: number,
  text: { readonly waiting: string; readonly failure: string },
): boolean {
  const at = new Date(now).toISOString();
  const window = { ...status.window!, waitingSince: status.window!.waitingSince ?? at, checkedAt: at };
  if (now > limit) {
    const message = `${text.waiting}, and the progress deadline passed; ${text.failure}`;
    const saved = save(
      o,
      record,
      { ...status, window },
      {
        status: 'False',
        reason: ConditionReason.AnalysisFailed,
        message,
      },
    );
    fail(o, saved, service, message);
    return true;
  }
  save(
    o,
    record,
    { ...status, window },
    { status: 'Unknown', reason: ConditionReason.AnalysisRunning, message: text.waiting },
  );
  return false;
}

/** Writes `status` and the Analysed condition; returns the updated record. */
function save(
  o: CanaryAnalystOptions,
  record: RolloutRecord,
  status: CanaryStatus,
  analysed: { status: 'True' | 'False' | 'Unknown'; reason: string; message: string },
): RolloutRecord {
  const conditions = setCondition(
    record.status.conditions,
    { type: ConditionType.Analysed, ...analysed },
    new Date(o.clock()),
  );
  return o.store.rollouts.update(record.id, record.version, {
    status: { ...record.status, canary: status as unknown as Record<string, unknown>, conditions },
  });
}

/** Moves to the next step: its instances are placed on the next pass, its window opens once they serve. */
export function advance(
  o: CanaryAnalystOptions,
  record: RolloutRecord,
  status: CanaryStatus,
  why: string,
): RolloutRecord {
  const now = new Date(o.clock());
  const next: CanaryStatus = { step: status.step + 1, stepStartedAt: now.toISOString(), looks: status.looks };
  const conditions = setCondition(
    record.status.conditions,
    { type: ConditionType.Progressing, status: 'True', reason: ConditionReason.StepCompleted, message: why },
    now,
  );
  const saved = o.store.rollouts.update(record.id, record.version, {
    status: { ...record.status, canary: next as unknown as Record<string, unknown>, conditions },
  });
  o.store.events.append({
    kind: 'rollout.step',
    service: record.service,
    subject: record.id,
    reason: 'step-completed',
    message: `${why}; on to step ${next.step + 1}`,
  });
  o.log(`${record.service}: rollout ${record.id}: ${why}`);
  return saved;
}

function fail(o: CanaryAnalystOptions, record: RolloutRecord, service: string, reason: string): void {
  const message = recordOutcome(
    o.store,
    {
      type: 'rollout',
      service,
      id: record.id,
      phase: 'failed',
      reason,
      cause: ConditionReason.AnalysisFailed,
    },
    o.clock(),
  );
  if (message) o.log(`${service}: rollout ${record.id} ${message}`);
}
