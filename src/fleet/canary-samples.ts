/**
 * The canary judge's samples: the router's per-backend counters, differenced against the snapshot
 * taken when the analysis window opened and summed per side, and Prometheus range queries.
 * The router's counters are per request: the error metric is one 0/1 sample per request (5xx or a
 * failed connection), the latency metric one sample per request in 2 % buckets.
 */
import { tallyOf, type MetricSamples, type Tally } from '../analysis/index.js';
import { UnavailableError } from '../errors/index.js';
import type { MetricSpec } from '../spec/index.js';
import type { BackendMetrics } from '../traffic/index.js';
import type { CounterSnapshot } from './canary-status.js';

/** The counters of one backend worth keeping for a window's start. */
export function snapshotOf(m: BackendMetrics): CounterSnapshot {
  return { requests: m.requests, failures: failuresOf(m), fine: m.latencyMs.fine ?? [] };
}

function failuresOf(m: BackendMetrics): number {
  return m.responses['5xx'] + m.errors;
}

/** One side's window so far: requests, failures and the latency histogram, summed over its backends. */
export interface SideCounts {
  readonly requests: number;
  readonly failures: number;
  readonly latency: Map<number, number>;
  /** False when some backend's router gives no latency histogram (HAProxy). */
  readonly latencyKnown: boolean;
}

/** Sums `backends` minus their window-start snapshots (a backend new since then counts from zero). */
export function sideCounts(
  backends: readonly BackendMetrics[],
  start: Readonly<Record<string, CounterSnapshot>>,
): SideCounts {
  let requests = 0;
  let failures = 0;
  let latencyKnown = true;
  const latency = new Map<number, number>();
  for (const b of backends) {
    const s = start[b.backendId] ?? { requests: 0, failures: 0, fine: [] };
    requests += Math.max(0, b.requests - s.requests);
    failures += Math.max(0, failuresOf(b) - s.failures);
    if (!b.latencyMs.fine) latencyKnown = false;
    for (const [ms, n] of b.latencyMs.fine ?? []) latency.set(ms, (latency.get(ms) ?? 0) + n);
    for (const [ms, n] of s.fine) latency.set(ms, (latency.get(ms) ?? 0) - n);
  }
  return { requests, failures: Math.min(failures, requests), latency, latencyKnown };
}

/** The error metric's samples: a 1 for every failed request and a 0 for every other. */
export function errorTally(side: SideCounts): Tally {
  return tallyOf([
    [0, side.requests - side.failures],
    [1, side.failures],
  ]);
}

/** The latency metric's samples (empty when the router gives no histogram). */
export function latencyTally(side: SideCounts): Tally {
  return side.latencyKnown ? tallyOf([...side.latency].filter(([, n]) => n > 0)) : tallyOf([]);
}

/** What a Prometheus query is run for: one side of the comparison. */
export interface PrometheusSide {
  readonly release: string;
  readonly role: 'baseline' | 'canary';
  readonly instances: readonly string[];
}

/** How long one Prometheus query may take. */
export const PROMETHEUS_TIMEOUT_MS = 10_000;

/**
 * Fills in a query's `{{release}}`, `{{role}}` and `{{instances}}` (a regular expression matching
 * the side's instance ids, for `=~`).
 */
export function fillQuery(query: string, side: PrometheusSide): string {
  const instances = side.instances.map((id) => id.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&')).join('|');
  // Functions, so a `$` in a value is never read as a replacement pattern.
  return query
    .replaceAll('{{release}}', () => side.release)
    .replaceAll('{{role}}', () => side.role)
    .replaceAll('{{instances}}', () => instances || '^$');
}

/**
 * Runs `query` over `[startMs, endMs]` with Prometheus' HTTP API (`/api/v1/query_range`) and returns
 * every value of every series it gives, NaN and infinities left out: the side's samples.
 */
export async function queryRange(
  url: string,
  query: string,
  startMs: number,
  endMs: number,
  stepMs: number,
): Promise<number[]> {
  const u = new URL('api/v1/query_range', url.endsWith('/') ? url : `${url}/`);
  const body = new URLSearchParams({
    query,
    start: String(startMs / 1000),
    end: String(endMs / 1000),
    step: `${Math.max(1, Math.round(stepMs / 1000))}s`,
  });
  let res: Response;
  try {
    res = await fetch(u, { method: 'POST', body, signal: AbortSignal.timeout(PROMETHEUS_TIMEOUT_MS) });
  } catch (err) {
    const why =
      err instanceof Error && err.name === 'TimeoutError'
        ? `no answer within ${PROMETHEUS_TIMEOUT_MS / 1000} s`
        : String((err as Error).cause ?? err);
    throw new UnavailableError(
      `Prometheus at ${u.origin} could not be asked (${why}); check the metric's url`,
      { cause: err },
    );
  }
  const text = await res.text();
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new UnavailableError(
      `Prometheus at ${u.origin} answered ${res.status} with something that is not JSON`,
    );
  }
  const d = doc as {
    status?: string;
    error?: string;
    data?: { resultType?: string; result?: { values?: [number, string][] }[] };
  };
  if (d.status !== 'success') {
    throw new UnavailableError(
      `Prometheus refused the query ${JSON.stringify(query)}: ${d.error ?? `HTTP ${res.status}`}`,
    );
  }
  if (d.data?.resultType !== 'matrix' || !Array.isArray(d.data.result)) {
    throw new UnavailableError(
      `Prometheus gave a ${d.data?.resultType ?? 'missing'} result for ${JSON.stringify(query)}; a range query gives a matrix`,
    );
  }
  const values: number[] = [];
  for (const series of d.data.result) {
    for (const point of series.values ?? []) {
      const v = Number(point[1]);
      if (Number.isFinite(v)) values.push(v);
    }
  }
  return values;
}

/** The samples of every metric for one look. Prometheus failures become empty samples and a warning. */
export async function collectSamples(input: {
  readonly metrics: readonly MetricSpec[];
  readonly baseline: SideCounts;
  readonly canary: SideCounts;
  readonly sides: { readonly baseline: PrometheusSide; readonly canary: PrometheusSide };
  readonly windowStart: number;
  readonly now: number;
  readonly stepMs: number;
}): Promise<{ samples: MetricSamples[]; warnings: string[] }> {
  const warnings: string[] = [];
  const samples: MetricSamples[] = [];
  for (const m of input.metrics) {
    if (m.source === 'errors') {
      samples.push({ name: m.name, baseline: errorTally(input.baseline), canary: errorTally(input.canary) });
    } else if (m.source === 'latency') {
      if (!input.baseline.latencyKnown || !input.canary.latencyKnown)
        warnings.push(
          `${m.name}: this router gives no latency histogram; use the built-in router to judge latency`,
        );
      samples.push({
        name: m.name,
        baseline: latencyTally(input.baseline),
        canary: latencyTally(input.canary),
      });
    } else {
      const run = (side: PrometheusSide) =>
        queryRange(m.url!, fillQuery(m.query!, side), input.windowStart, input.now, input.stepMs);
      try {
        const [b, c] = await Promise.all([run(input.sides.baseline), run(input.sides.canary)]);
        samples.push({
          name: m.name,
          baseline: tallyOf(b.map((v) => [v, 1])),
          canary: tallyOf(c.map((v) => [v, 1])),
        });
      } catch (err) {
        warnings.push(`${m.name}: ${err instanceof Error ? err.message : String(err)}`);
        samples.push({ name: m.name, baseline: tallyOf([]), canary: tallyOf([]) });
      }
    }
  }
  return { samples, warnings };
}
