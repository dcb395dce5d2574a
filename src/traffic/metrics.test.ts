import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpBackends } from '../../test/support/http-backends.js';
import {
  BackendCounters,
  FINE_LATENCY,
  fineBucket,
  fineBucketMs,
  LATENCY_BUCKETS_MS,
  PROMETHEUS_CONTENT_TYPE,
  prometheusText,
} from './metrics.js';
import { startRouterServer, type RunningRouterServer } from './router-server.js';

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: -?\\d+)?$`);
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;

function parseValue(text: string, line: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const n = Number(text);
  if (text === '' || Number.isNaN(n)) throw new Error(`bad value in: ${line}`);
  return n;
}

/**
 * A strict reader of the Prometheus text format 0.0.4: every line is a HELP/TYPE comment or a
 * sample, a family's TYPE comes before its samples, samples of a family are together, no series
 * repeats, and a histogram's buckets rise to its `+Inf` bucket, which equals its `_count`.
 */
function parsePrometheus(text: string): Sample[] {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const series = new Set<string>();
  const done = new Set<string>();
  let current = '';
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(meta[3]!))
          throw new Error(line);
        if (types.has(meta[2]!)) throw new Error(`TYPE twice: ${line}`);
        types.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2] !== undefined && m[2] !== '') {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < m[2].length) {
        const l = LABEL.exec(m[2]);
        if (!l) throw new Error(`bad labels: ${line}`);
        labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      }
    }
    let family = m[1]!;
    for (const suffix of ['_bucket', '_sum', '_count']) {
      const base = family.slice(0, -suffix.length);
      if (family.endsWith(suffix) && types.get(base) === 'histogram') family = base;
    }
    if (!types.has(family)) throw new Error(`sample before its TYPE: ${line}`);
    if (family !== current) {
      if (done.has(family)) throw new Error(`family ${family} is split`);
      done.add(current);
      current = family;
    }
    const key = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`series repeated: ${line}`);
    series.add(key);
    samples.push({ name: m[1]!, labels, value: parseValue(m[3]!, line) });
  }
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const groups = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${family}_bucket`)) {
      const { le: _le, ...rest } = s.labels;
      const k = JSON.stringify(rest);
      groups.set(k, [...(groups.get(k) ?? []), s]);
    }
    for (const [k, buckets] of groups) {
      const counts = buckets.map((b) => b.value);
      if (counts.some((c, i) => i > 0 && c < counts[i - 1]!)) throw new Error(`${family} ${k}: buckets fall`);
      if (buckets.at(-1)?.labels.le !== '+Inf') throw new Error(`${family} ${k}: no +Inf bucket last`);
      const count = samples.find((s) => s.name === `${family}_count` && JSON.stringify(s.labels) === k);
      if (count?.value !== counts.at(-1)) throw new Error(`${family} ${k}: +Inf bucket ≠ _count`);
    }
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}

describe('BackendCounters', () => {
  it.each([
    { latencies: [0.5, 1, 3, 20_000], cumulative: [2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], count: 4 },
    { latencies: [], cumulative: LATENCY_BUCKETS_MS.map(() => 0), count: 0 },
  ])('buckets $latencies cumulatively', ({ latencies, cumulative, count }) => {
    const c = new BackendCounters();
    for (const ms of latencies) c.observe(ms);
    const snap = c.snapshot('web', 'a');
    expect(snap.latencyMs.buckets.map((b) => b.count)).toEqual(cumulative);
    expect(snap.latencyMs.count).toBe(count);
    expect(snap.latencyMs.sum).toBe(latencies.reduce((a, b) => a + b, 0));
  });

  it('keeps every latency within 2 % below its fine bucket bound, from 10 µs to 10 minutes', () => {
    for (let ms = 0.0101; ms < 600_000; ms *= 1.0137) {
      const bound = fineBucketMs(fineBucket(ms));
      expect(bound, `${ms} ms`).toBeGreaterThanOrEqual(ms * 0.9999);
      expect(bound, `${ms} ms`).toBeLessThanOrEqual(ms * FINE_LATENCY.growth * 1.0001);
    }
    expect(fineBucket(0)).toBe(0);
    expect(fineBucket(1e9)).toBe(FINE_LATENCY.buckets - 1);
  });

  it('reports the fine histogram sparsely, as [bound, count] pairs', () => {
    const c = new BackendCounters();
    for (const ms of [1, 1, 1.001, 2, 50]) c.observe(ms);
    const fine = c.snapshot('web', 'a').latencyMs.fine!;
    expect(fine.reduce((n, [, k]) => n + k, 0)).toBe(5);
    expect(fine.map(([b]) => b)).toEqual([...fine.map(([b]) => b)].sort((a, b) => a - b));
    expect(fine).toHaveLength(3);
    expect(fine[0]![1]).toBe(3);
  });

  it('counts responses by status class and ignores nonsense codes', () => {
    const c = new BackendCounters();
    for (const s of [101, 200, 204, 301, 404, 500, 503, 0, 999]) c.response(s);
    expect(c.snapshot('web', 'a').responses).toEqual({ '1xx': 1, '2xx': 2, '3xx': 1, '4xx': 1, '5xx': 2 });
  });
});

describe('prometheusText', () => {
  it('renders valid exposition text, escaping label values', () => {
    const c = new BackendCounters();
    c.requests = 3;
    c.response(200);
    c.response(500);
    c.observe(7);
    const text = prometheusText([c.snapshot('we"b\\', 'a\nb')]);
    const samples = parsePrometheus(text);
    const labels = { service: 'we"b\\', backend: 'a\nb' };
    expect(value(samples, 'kiln_router_requests_total', { ...labels, code_class: '5xx' })).toBe(1);
    expect(value(samples, 'kiln_router_backend_requests_total', labels)).toBe(3);
    expect(value(samples, 'kiln_router_request_duration_seconds_bucket', { ...labels, le: '0.005' })).toBe(0);
    expect(value(samples, 'kiln_router_request_duration_seconds_bucket', { ...labels, le: '0.01' })).toBe(1);
    expect(value(samples, 'kiln_router_request_duration_seconds_sum', labels)).toBe(0.007);
  });

  it('renders only HELP and TYPE lines for no backends', () => {
    expect(parsePrometheus(prometheusText([]))).toEqual([]);
  });

  it.each([
    ['a sample before its TYPE', 'x 1\n'],
    ['a bad value', '# TYPE x counter\nx one\n'],
    ['an unterminated label', '# TYPE x counter\nx{a="b} 1\n'],
    [
      'falling buckets',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    ],
  ])('the checker rejects %s', (_what, text) => {
    expect(() => parsePrometheus(text)).toThrow();
  });
});

describe('router server /metrics', () => {
  const http = new HttpBackends();
  let server: RunningRouterServer | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await server?.close();
    server = undefined;
    await http.closeAll();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('serves Prometheus text that a strict reader accepts, with the traffic counted', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-router-'));
    const token = 'a-token-of-enough-length';
    server = await startRouterServer({ adminPort: 0, token, stateFile: join(dir, 'state.json') });
    const [a, b] = await http.start('a', 'b');
    const { listenPort } = await server.router.setRoute({
      service: 'web',
      listenPort: 0,
      backends: [a!.backend(1), b!.backend(1)],
    });
    for (let i = 0; i < 6; i++) await http.request(listenPort, '/?status=404');
    const res = await fetch(`http://127.0.0.1:${server.adminPort}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE);
    const samples = parsePrometheus(await res.text());
    for (const backend of ['a', 'b']) {
      const labels = { service: 'web', backend };
      expect(value(samples, 'kiln_router_requests_total', { ...labels, code_class: '4xx' })).toBe(3);
      expect(value(samples, 'kiln_router_request_duration_seconds_count', labels)).toBe(3);
    }
  });
});
