/**
 * Per-backend counters for the built-in router, and the Prometheus text exposition (format 0.0.4)
 * of any router's metrics.
 */
import type { BackendMetrics, StatusClassCounts } from './router.js';

/** Upper bounds (ms) of the latency histogram's buckets; `+Inf` is implied. */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000,
];

/**
 * The fine latency histogram: buckets grow by 2 % from 10 µs, so a bucket's upper bound is within
 * 2 % of every latency in it, fine enough for the canary judge's rank test to see a 10 % change.
 * 906 buckets reach past 10 minutes.
 */
export const FINE_LATENCY = { minMs: 0.01, growth: 1.02, buckets: 906 } as const;

const LOG_GROWTH = Math.log(FINE_LATENCY.growth);

/** The index of the fine bucket holding `ms`. */
export function fineBucket(ms: number): number {
  if (!(ms > FINE_LATENCY.minMs)) return 0;
  const i = Math.ceil(Math.log(ms / FINE_LATENCY.minMs) / LOG_GROWTH - 1e-9);
  return Math.min(i, FINE_LATENCY.buckets - 1);
}

/** The upper bound (ms, six significant digits) of fine bucket `i`: the value the judge ranks. */
export function fineBucketMs(i: number): number {
  return Number((FINE_LATENCY.minMs * FINE_LATENCY.growth ** i).toPrecision(6));
}

/** The `Content-Type` of {@link prometheusText}'s output. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * Mutable counters for one backend, updated on the request path without allocating; read with
 * {@link BackendCounters.snapshot}.
 */
export class BackendCounters {
  requests = 0;
  errors = 0;
  retries = 0;
  inFlight = 0;
  private readonly classes = new Float64Array(5);
  private readonly buckets = new Float64Array(LATENCY_BUCKETS_MS.length);
  private readonly fine = new Float64Array(FINE_LATENCY.buckets);
  private sum = 0;
  private count = 0;

  /** Counts a response by its status class. */
  response(status: number): void {
    const c = Math.floor(status / 100) - 1;
    if (c >= 0 && c < 5) this.classes[c]!++;
  }

  /** Adds one request's latency to the histogram. */
  observe(ms: number): void {
    this.sum += ms;
    this.count++;
    this.fine[fineBucket(ms)]!++;
    for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) {
      if (ms <= LATENCY_BUCKETS_MS[i]!) {
        this.buckets[i]!++;
        return;
      }
    }
  }

  /** The counters as `BackendMetrics`, buckets made cumulative. */
  snapshot(service: string, backendId: string): BackendMetrics {
    let running = 0;
    const buckets = LATENCY_BUCKETS_MS.map((le, i) => {
      running += this.buckets[i]!;
      return { le, count: running };
    });
    const c = this.classes;
    const fine: [number, number][] = [];
    for (let i = 0; i < this.fine.length; i++)
      if (this.fine[i]! > 0) fine.push([fineBucketMs(i), this.fine[i]!]);
    return {
      service,
      backendId,
      requests: this.requests,
      responses: { '1xx': c[0]!, '2xx': c[1]!, '3xx': c[2]!, '4xx': c[3]!, '5xx': c[4]! },
      errors: this.errors,
      retries: this.retries,
      inFlight: this.inFlight,
      latencyMs: { buckets, sum: this.sum, count: this.count, fine },
    };
  }
}

const CLASSES: readonly (keyof StatusClassCounts)[] = ['1xx', '2xx', '3xx', '4xx', '5xx'];

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(n: number): string {
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return Number.isNaN(n) ? 'NaN' : String(n);
}

/**
 * Renders metrics in the Prometheus text exposition format 0.0.4: `kiln_router_requests_total`
 * (responses by `code_class`), `kiln_router_backend_requests_total`, `kiln_router_errors_total`,
 * `kiln_router_retries_total`, `kiln_router_in_flight_requests` and the
 * `kiln_router_request_duration_seconds` histogram, each labelled by `service` and `backend`.
 */
export function prometheusText(metrics: readonly BackendMetrics[]): string {
  const out: string[] = [];
  const family = (
    name: string,
    type: string,
    help: string,
    lines: (m: BackendMetrics, l: string) => string[],
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const m of metrics)
      out.push(...lines(m, `service="${label(m.service)}",backend="${label(m.backendId)}"`));
  };
  family('kiln_router_requests_total', 'counter', 'Responses from backends by status class.', (m, l) =>
    CLASSES.map((c) => `kiln_router_requests_total{${l},code_class="${c}"} ${num(m.responses[c])}`),
  );
  family(
    'kiln_router_backend_requests_total',
    'counter',
    'Requests sent to backends, retries included.',
    (m, l) => [`kiln_router_backend_requests_total{${l}} ${num(m.requests)}`],
  );
  family('kiln_router_errors_total', 'counter', 'Connection and proxy failures on backends.', (m, l) => [
    `kiln_router_errors_total{${l}} ${num(m.errors)}`,
  ]);
  family('kiln_router_retries_total', 'counter', 'Failed attempts retried on another backend.', (m, l) => [
    `kiln_router_retries_total{${l}} ${num(m.retries)}`,
  ]);
  family('kiln_router_in_flight_requests', 'gauge', 'Requests on backends now.', (m, l) => [
    `kiln_router_in_flight_requests{${l}} ${num(m.inFlight)}`,
  ]);
  const h = 'kiln_router_request_duration_seconds';
  family(h, 'histogram', 'Time from sending a request to a backend until its response ended.', (m, l) => [
    ...m.latencyMs.buckets.map((b) => `${h}_bucket{${l},le="${num(b.le / 1000)}"} ${num(b.count)}`),
    `${h}_bucket{${l},le="+Inf"} ${num(m.latencyMs.count)}`,
    `${h}_sum{${l}} ${num(m.latencyMs.sum / 1000)}`,
    `${h}_count{${l}} ${num(m.latencyMs.count)}`,
  ]);
  return `${out.join('\n')}\n`;
}
