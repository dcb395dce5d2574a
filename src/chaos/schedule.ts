/**
 * The chaos monkey's decisions, as pure functions in the manner of Netflix's Chaos Monkey: when it
 * may act (working hours in the service's time zone), when it acts next (exponential gaps with a
 * floor), whom it terminates (a random healthy instance, never below the minimum), when it holds
 * off (a rollout, or clients already seeing errors), and what the kills proved (time to detect and
 * to recover, and availability). Nothing here reads the clock or does I/O: times and randomness
 * are arguments, so every decision is tested with tables.
 */
import { parseHours, type ChaosScheduleSpec, type ChaosSpec } from '../spec/index.js';

/** One `Intl.DateTimeFormat` per time zone: building one costs far more than using it. */
const FORMATS = new Map<string, Intl.DateTimeFormat>();

function formatFor(timeZone: string): Intl.DateTimeFormat {
  let f = FORMATS.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: 'numeric', hourCycle: 'h23' });
    FORMATS.set(timeZone, f);
  }
  return f;
}

/**
 * The local weekday (`mon`…`sun`) and hour (0–23) of the instant `atMs` in `timeZone`. It asks
 * the time-zone database for the wall clock at that instant, so DST and half-hour offsets are
 * right by construction: a skipped hour never occurs and a repeated one occurs twice.
 */
export function localTime(timeZone: string, atMs: number): { readonly day: string; readonly hour: number } {
  const parts = formatFor(timeZone).formatToParts(new Date(atMs));
  const day = parts
    .find((p) => p.type === 'weekday')!
    .value.slice(0, 3)
    .toLowerCase();
  const hour = Number(parts.find((p) => p.type === 'hour')!.value) % 24;
  return { day, hour };
}

/**
 * Whether the schedule lets the monkey act at `atMs`: the local hour is in `hours` (from
 * inclusive, to exclusive) and the local day is one of `days`, both read in the schedule's time
 * zone. A range that wraps past midnight (`"22-6"`) counts each hour on the day it falls on, so
 * Saturday 02:00 is outside a Monday-to-Friday `"22-6"` even though Friday 22:00 was inside.
 *
 * @example
 * inWindow({ hours: '9-17', days: ['mon'], timezone: 'UTC' }, Date.parse('2026-01-05T09:00:00Z')); // true
 */
export function inWindow(schedule: ChaosScheduleSpec, atMs: number): boolean {
  const hours = parseHours(schedule.hours);
  if (!hours) return false;
  const { day, hour } = localTime(schedule.timezone, atMs);
  if (!(schedule.days as readonly string[]).includes(day)) return false;
  return hours.from < hours.to
    ? hour >= hours.from && hour < hours.to
    : hour >= hours.from || hour < hours.to;
}

/** The largest `u` used, so that −ln(1 − u) stays finite even when `random` returns 1. */
const MAX_U = 1 - Number.EPSILON;

/**
 * When the next termination may happen: `nowMs` plus an exponential gap with mean
 * `meanTimeBetween` (−mean · ln(1 − u) for a uniform `u`), but never before
 * `lastMs + minTimeBetween`. The gap is drawn from `nowMs`, not from `lastMs`: exponential gaps
 * forget the past, so given that nothing happened since `lastMs`, the wait from now has the same
 * distribution, and a monkey restarted long after its last kill does not strike the moment it starts.
 * Called with `lastMs = nowMs` right after a kill, it is the plain inter-arrival time.
 *
 * @example
 * nextTermination(chaos, undefined, now, Math.random); // about an hour from now, on average
 */
export function nextTermination(
  chaos: Pick<ChaosSpec, 'meanTimeBetween' | 'minTimeBetween'>,
  lastMs: number | undefined,
  nowMs: number,
  random: () => number,
): number {
  const u = Math.min(Math.max(random(), 0), MAX_U);
  const gap = -chaos.meanTimeBetween * Math.log(1 - u);
  const earliest = lastMs === undefined ? nowMs : Math.max(nowMs, lastMs + chaos.minTimeBetween);
  return Math.max(earliest, Math.round(nowMs + gap));
}

/** An instance the monkey may choose from. */
export interface ChaosCandidate {
  readonly id: string;
  readonly healthy: boolean;
}

/** The monkey's choice: a victim, or none, with a sentence saying why either way. */
export interface VictimChoice {
  readonly victim?: string;
  readonly reason: string;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Chooses one healthy instance uniformly at random, only when at least `minHealthy` healthy
 * instances would remain. Candidates are ordered by id first, so the same `random` picks the same
 * victim whatever order the caller listed them in.
 *
 * @example
 * chooseVictim([{ id: 'a', healthy: true }], 1, Math.random); // { reason: 'only 1 healthy instance; keeping at least 1' }
 */
export function chooseVictim(
  instances: readonly ChaosCandidate[],
  minHealthy: number,
  random: () => number,
): VictimChoice {
  const healthy = instances
    .filter((i) => i.healthy)
    .map((i) => i.id)
    .sort();
  if (healthy.length === 0) return { reason: 'no healthy instance to terminate' };
  if (healthy.length - 1 < minHealthy) {
    return {
      reason: `only ${plural(healthy.length, 'healthy instance')}; keeping at least ${minHealthy}`,
    };
  }
  const index = Math.min(healthy.length - 1, Math.max(0, Math.floor(random() * healthy.length)));
  const victim = healthy[index]!;
  return {
    victim,
    reason: `chose ${victim} at random of ${plural(healthy.length, 'healthy instance')}; ${healthy.length - 1} remain, at least ${minHealthy} required`,
  };
}

/** What the outage checker looks at. */
export interface OutageInput {
  readonly rolloutActive: boolean;
  /** Requests and failed requests of the service over the recent window. */
  readonly requests: number;
  readonly failed: number;
  /** The failed-request ratio (0–1) above which kills are held. */
  readonly errorThreshold: number;
}

/** The outage checker's verdict: `ok` false holds the kill; `reason` says why, with the numbers. */
export interface OutageVerdict {
  readonly ok: boolean;
  readonly reason: string;
}

/** A ratio as a percentage with at most two decimals: 0.0125 → "1.25%". */
function percent(ratio: number): string {
  return `${Number((ratio * 100).toFixed(2))}%`;
}

/**
 * Chaos Monkey's outage checker: a failure injected while a rollout runs, or while clients already
 * see errors, proves nothing and hurts users. Holds while a rollout is in progress, or while the
 * failed-request ratio is above `errorThreshold` (when there were requests at all); the reason
 * names every cause and its numbers.
 *
 * @example
 * outageCheck({ rolloutActive: false, requests: 1000, failed: 50, errorThreshold: 0.01 });
 * // { ok: false, reason: 'failed-request ratio 5% (50 of 1000) is above the threshold 1%' }
 */
export function outageCheck(input: OutageInput): OutageVerdict {
  const holds: string[] = [];
  if (input.rolloutActive) holds.push('a rollout is in progress');
  const ratio = input.requests > 0 ? input.failed / input.requests : undefined;
  const numbers =
    ratio === undefined
      ? ''
      : `failed-request ratio ${percent(ratio)} (${input.failed} of ${input.requests})`;
  if (ratio !== undefined && ratio > input.errorThreshold) {
    holds.push(`${numbers} is above the threshold ${percent(input.errorThreshold)}`);
  }
  if (holds.length > 0) return { ok: false, reason: holds.join('; ') };
  return {
    ok: true,
    reason:
      ratio === undefined
        ? 'no rollout in progress and no requests to judge'
        : `no rollout in progress; ${numbers} is within the threshold ${percent(input.errorThreshold)}`,
  };
}

/** One termination, as `summarise` reads it: times in milliseconds since the epoch. */
export interface TerminationTiming {
  readonly mode: string;
  readonly startedAt: number;
  /** When the controller noticed the instance was gone. */
  readonly detectedAt?: number;
  /** When a healthy replacement served. */
  readonly recoveredAt?: number;
  /** Requests clients saw fail between the kill and the recovery. */
  readonly failedRequests?: number;
}

/** A median and 99th percentile in milliseconds; null when there is nothing to measure. */
export interface DurationStats {
  readonly median: number | null;
  readonly p99: number | null;
}

/** What a set of terminations proved. */
export interface ChaosSummary {
  readonly kills: number;
  /** Terminations a healthy replacement recovered from. */
  readonly recovered: number;
  /** Time to recover (recoveredAt − startedAt), over the recovered terminations. */
  readonly mttrMs: DurationStats;
  /** Time to detect (detectedAt − startedAt), over the detected terminations. */
  readonly detectMs: DurationStats;
  /** 1 − failed / requests over the window; null when there were no requests. */
  readonly availability: number | null;
  /** Failed requests attributed to the terminations (the sum of theirs). */
  readonly failedRequests: number;
}

/**
 * The median (the mean of the two middle values for an even count) and the 99th percentile by
 * the nearest-rank method: the value at rank ⌈0.99 · n⌉ of the sorted values, always one that was
 * measured, never interpolated. With fewer than 100 values that is the largest.
 */
export function durationStats(values: readonly number[]): DurationStats {
  if (values.length === 0) return { median: null, p99: null };
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, p99: sorted[Math.ceil(0.99 * n) - 1]! };
}

/**
 * Summarises terminations: how many, how many recovered, the time to detect and to recover
 * (median and p99; a time before its start, from clock skew, counts as 0), the failed requests
 * they caused, and the availability clients saw over `window` (all requests, not only during
 * recoveries).
 *
 * @example
 * summarise([{ mode: 'kill', startedAt: 0, detectedAt: 20, recoveredAt: 900 }], { requests: 1000, failed: 3 });
 * // { kills: 1, recovered: 1, mttrMs: { median: 900, p99: 900 }, detectMs: { median: 20, p99: 20 }, availability: 0.997, failedRequests: 0 }
 */
export function summarise(
  terminations: readonly TerminationTiming[],
  window: { readonly requests: number; readonly failed: number },
): ChaosSummary {
  const since = (t: TerminationTiming, at: number | undefined): number[] =>
    at === undefined ? [] : [Math.max(0, at - t.startedAt)];
  const recoveries = terminations.flatMap((t) => since(t, t.recoveredAt));
  return {
    kills: terminations.length,
    recovered: recoveries.length,
    mttrMs: durationStats(recoveries),
    detectMs: durationStats(terminations.flatMap((t) => since(t, t.detectedAt))),
    availability: window.requests > 0 ? 1 - window.failed / window.requests : null,
    failedRequests: terminations.reduce((sum, t) => sum + (t.failedRequests ?? 0), 0),
  };
}
