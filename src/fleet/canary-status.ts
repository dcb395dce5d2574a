/**
 * What a canary rollout records in its status document (`status.canary`): the step it is on, the
 * analysis window of that step with the router's counters when it opened, and every look the judge
 * took. A restarted controller reads it back and carries on where the last one stopped.
 */
import type { LookResult } from '../analysis/index.js';
import type { RolloutRecord } from '../state/index.js';

/** A backend's counters when an analysis window opened: the window's samples are the difference. */
export interface CounterSnapshot {
  readonly requests: number;
  /** 5xx responses plus connection failures. */
  readonly failures: number;
  /** The fine latency histogram, `[upper bound ms, count]`. */
  readonly fine: readonly (readonly [number, number])[];
}

/** One look of the judge, as kept in the rollout's history. */
export interface CanaryLook extends LookResult {
  /** The step it was taken in (index into the strategy's steps) and the step's weight. */
  readonly step: number;
  readonly weight: number;
  /** ISO 8601 time of the look. */
  readonly at: string;
  /** Requests each side served in the window so far. */
  readonly samples: { readonly baseline: number; readonly canary: number };
}

/** The canary's progress, as stored. */
export interface CanaryStatus {
  readonly step: number;
  /** ISO 8601: when the step began (its instances started). */
  readonly stepStartedAt: string;
  /** The analysis window of the current step, once its instances were all healthy and routed. */
  readonly window?: {
    readonly startedAt: string;
    readonly counters: Readonly<Record<string, CounterSnapshot>>;
    /** Since when the final look waits for enough data, and when that was last checked. */
    readonly waitingSince?: string;
    readonly checkedAt?: string;
  };
  /** Every look of every step so far, oldest first. */
  readonly looks: readonly CanaryLook[];
}

/**
 * `value` with every number JSON cannot hold (NaN, ±Infinity: what the judge gives for what it
 * could not compute) replaced by null, so a look can be stored as JSON. Readers treat a null
 * number as "not computed".
 */
export function jsonSafe<T>(value: T): T {
  return JSON.parse(
    JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)),
  ) as T;
}

/** The canary status of a rollout; a rollout that has not recorded one is at step 0 since it began. */
export function canaryStatusOf(rollout: RolloutRecord): CanaryStatus {
  const stored = rollout.status.canary as CanaryStatus | undefined;
  return stored ?? { step: 0, stepStartedAt: rollout.createdAt, looks: [] };
}

/** The planner's part of it: the step and when it began (ms). */
export function canaryProgress(rollout: RolloutRecord): { step: number; stepStartedAt: number } {
  const s = canaryStatusOf(rollout);
  return { step: s.step, stepStartedAt: Date.parse(s.stepStartedAt) };
}
