import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { UnavailableError } from '../errors/index.js';
import { metricSchema } from '../spec/index.js';
import type { BackendMetrics } from '../traffic/index.js';
import {
  collectSamples,
  errorTally,
  fillQuery,
  latencyTally,
  queryRange,
  sideCounts,
  snapshotOf,
  type PrometheusSide,
  type SideCounts,
} from './canary-samples.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

/** One backend's counters: `fine` undefined means a router without a latency histogram. */
function backend(
  id: string,
  c: { requests: number; fiveXx?: number; errors?: number; fine?: [number, number][] },
): BackendMetrics {
  return {
    service: 'web',
    backendId: id,
    requests: c.requests,
    responses: { '1xx': 0, '2xx': c.requests - (c.fiveXx ?? 0), '3xx': 0, '4xx': 0, '5xx': c.fiveXx ?? 0 },
    errors: c.errors ?? 0,
    retries: 0,
    inFlight: 0,
    latencyMs: { buckets: [], sum: 0, count: c.requests, ...(c.fine ? { fine: c.fine } : {}) },
  };
}

const side = (requests: number, failures: number, latency: [number, number][] = []): SideCounts => ({
  requests,
  failures,
  latency: new Map(latency),
  latencyKnown: true,
});

describe('sideCounts', () => {
  it('differences each backend against its window-start snapshot and sums the side', () => {
    // Given web-1 snapshotted when the window opened, and web-2 started since
    const start = {
      'web-1': snapshotOf(backend('web-1', { requests: 100, fiveXx: 2, errors: 1, fine: [[10, 100]] })),
    };
    const now = [
      backend('web-1', {
        requests: 160,
        fiveXx: 5,
        errors: 2,
        fine: [
          [10, 140],
          [12, 20],
        ],
      }),
      backend('web-2', {
        requests: 30,
        fiveXx: 1,
        errors: 1,
        fine: [
          [12, 25],
          [20, 5],
        ],
      }),
    ];
    // When the side is counted
    const counts = sideCounts(now, start);
    // Then web-1 counts from its snapshot and web-2 from zero, histograms included
    expect(counts.requests).toBe(60 + 30);
    expect(counts.failures).toBe(7 - 3 + 2);
    expect(counts.latencyKnown).toBe(true);
    expect([...counts.latency].sort((a, b) => a[0] - b[0])).toEqual([
      [10, 40],
      [12, 45],
      [20, 5],
    ]);
  });

  it.each([
    ['failures above requests are capped', { requests: 12, fiveXx: 4, errors: 9 }, { requests: 10 }, 2, 2],
    ['a counter reset counts as nothing, not negative', { requests: 3 }, { requests: 50, fiveXx: 9 }, 0, 0],
  ])('%s', (_, now, before, requests, failures) => {
    const counts = sideCounts([backend('b', now)], { b: snapshotOf(backend('b', before)) });
    expect([counts.requests, counts.failures]).toEqual([requests, failures]);
  });

  it('marks latency unknown when any backend has no fine histogram (HAProxy)', () => {
    const withFine = backend('a', { requests: 5, fine: [[10, 5]] });
    const without = backend('b', { requests: 5 });
    expect(snapshotOf(without).fine).toEqual([]);
    expect(sideCounts([withFine], {}).latencyKnown).toBe(true);
    expect(sideCounts([withFine, without], {}).latencyKnown).toBe(false);
    expect(sideCounts([], {})).toEqual({ requests: 0, failures: 0, latency: new Map(), latencyKnown: true });
  });
});

describe('errorTally and latencyTally', () => {
  it.each([
    ['some failed', side(100, 3), { values: [0, 1], counts: [97, 3] }],
    ['none failed', side(50, 0), { values: [0], counts: [50] }],
    ['all failed', side(4, 4), { values: [1], counts: [4] }],
    ['no requests', side(0, 0), { values: [], counts: [] }],
  ])('errors as 0/1 samples: %s', (_, counts, expected) => {
    expect(errorTally(counts)).toEqual(expected);
  });

  it('gives the positive latency buckets ascending, or nothing when latency is unknown', () => {
    const known = side(9, 0, [
      [20, 2],
      [10, 7],
      [15, 0],
      [30, -1],
    ]);
    expect(latencyTally(known)).toEqual({ values: [10, 20], counts: [7, 2] });
    expect(latencyTally({ ...known, latencyKnown: false })).toEqual({ values: [], counts: [] });
  });
});

describe('fillQuery', () => {
  const canary: PrometheusSide = { release: 'r7', role: 'canary', instances: ['web-1.a', 'web-2'] };

  it('fills release, role and an escaped instance regex, everywhere they occur', () => {
    const q = 'sum(x{release="{{release}}",role="{{role}}",instance=~"{{instances}}"}) / {{release}}';
    expect(fillQuery(q, canary)).toBe(
      String.raw`sum(x{release="r7",role="canary",instance=~"web-1\\.a|web-2"}) / r7`,
    );
  });

  it('makes a regex that, read as a PromQL string, matches exactly the side instances', () => {
    const literal = fillQuery('{{instances}}', { ...canary, instances: ['web-1.a', 'db(1)', 'x+y'] });
    // PromQL double-quoted strings take Go escapes, which JSON's agree with for backslashes
    const regex = new RegExp(`^(?:${JSON.parse(`"${literal}"`) as string})$`); // Prometheus anchors
    for (const id of ['web-1.a', 'db(1)', 'x+y']) expect(regex.test(id), id).toBe(true);
    for (const id of ['web-1xa', 'db1', 'xxy', 'web-1.a|db(1)', '']) expect(regex.test(id), id).toBe(false);
  });

  it('gives ^$ for a side without instances', () => {
    expect(fillQuery('up{instance=~"{{instances}}"}', { ...canary, instances: [] })).toBe(
      'up{instance=~"^$"}',
    );
  });
});

/** What the fake Prometheus received: one entry per request. */
interface Received {
  method: string;
  path: string;
  contentType: string | undefined;
  form: Record<string, string>;
}

type Answer = { status?: number; json: unknown } | { status: number; text: string };

/** A loopback stand-in for Prometheus' `/api/v1/query_range`, answering with `answer(form)`. */
async function prometheus(answer: (form: Record<string, string>) => Answer) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(body));
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      received.push({ method: req.method ?? '', path, contentType: req.headers['content-type'], form });
      const a: Answer = path.endsWith('/api/v1/query_range')
        ? answer(form)
        : { status: 404, text: '404 page not found\n' };
      res.statusCode = a.status ?? 200;
      res.setHeader('content-type', 'json' in a ? 'application/json' : 'text/plain');
      res.end('json' in a ? JSON.stringify(a.json) : a.text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  undo.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

const matrix = (...series: [number, string][][]) => ({
  status: 'success',
  data: {
    resultType: 'matrix',
    result: series.map((values, i) => ({ metric: { instance: `web-${i + 1}` }, values })),
  },
});

const T0 = Date.UTC(2026, 0, 1); // ms

describe('queryRange', () => {
  it('POSTs the form Prometheus expects and returns every finite value of every series', async () => {
    const prom = await prometheus(() => ({
      json: matrix(
        [
          [T0 / 1000, '1'],
          [T0 / 1000 + 15, 'NaN'],
          [T0 / 1000 + 30, '2.5'],
        ],
        [
          [T0 / 1000, '+Inf'],
          [T0 / 1000 + 15, '-Inf'],
          [T0 / 1000 + 30, '3e-3'],
        ],
      ),
    }));
    const values = await queryRange(`${prom.url}/prom/`, 'rate(x[1m])', T0, T0 + 60_500, 15_000);
    expect(values).toEqual([1, 2.5, 0.003]);
    expect(prom.received).toEqual([
      {
        method: 'POST',
        path: '/prom/api/v1/query_range',
        contentType: expect.stringMatching(/^application\/x-www-form-urlencoded/),
        form: { query: 'rate(x[1m])', start: String(T0 / 1000), end: `${T0 / 1000 + 60.5}`, step: '15s' },
      },
    ]);
  });

  it.each([
    [1_400, '1s'],
    [200, '1s'],
    [90_000, '90s'],
  ])('sends a step of %i ms as %s', async (stepMs, step) => {
    const prom = await prometheus(() => ({ json: matrix() }));
    expect(await queryRange(prom.url, 'up', T0, T0 + 1000, stepMs)).toEqual([]);
    expect(prom.received[0]?.form.step).toBe(step);
  });

  it.each<[string, Answer, RegExp]>([
    [
      'a refused query',
      { status: 400, json: { status: 'error', errorType: 'bad_data', error: 'parse error at char 5' } },
      /^Prometheus refused the query "sum\(\(": parse error at char 5$/,
    ],
    ['an error without a message', { status: 503, json: { status: 'error' } }, /: HTTP 503$/],
    [
      'an answer that is not JSON',
      { status: 502, text: '<html>Bad Gateway</html>' },
      /^Prometheus at http:\/\/127\.0\.0\.1:\d+ answered 502 with something that is not JSON$/,
    ],
    [
      'an instant vector',
      { json: { status: 'success', data: { resultType: 'vector', result: [] } } },
      /gave a vector result for "sum\(\("; a range query gives a matrix$/,
    ],
    [
      'no data',
      { json: { status: 'success' } },
      /gave a missing result for "sum\(\("; a range query gives a matrix$/,
    ],
  ])('throws UnavailableError for %s', async (_, answer, message) => {
    const prom = await prometheus(() => answer);
    const err = await queryRange(prom.url, 'sum((', T0, T0 + 1000, 1000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(message);
  });
});

describe('collectSamples', () => {
  const sides = {
    baseline: { release: 'r1', role: 'baseline', instances: ['web-1'] },
    canary: { release: 'r2', role: 'canary', instances: ['web-9'] },
  } as const;
  const query = 'x{release="{{release}}",instance=~"{{instances}}"}';

  it('reads the router sides for errors and latency and both sides from Prometheus', async () => {
    // Given a Prometheus that knows r1 and r2
    const prom = await prometheus((form) => ({
      json: form.query!.includes('r1')
        ? matrix([
            [1, '5'],
            [2, '5'],
          ])
        : matrix([[1, '7']], [[1, 'NaN']]),
    }));
    const metrics = [
      metricSchema.parse({ name: 'errors', source: 'errors' }),
      metricSchema.parse({ name: 'latency', source: 'latency' }),
      metricSchema.parse({ name: 'queue', source: 'prometheus', url: prom.url, query }),
    ];
    // When a look collects its samples
    const got = await collectSamples({
      metrics,
      baseline: side(10, 1, [[10, 10]]),
      canary: side(4, 0, [[12, 4]]),
      sides,
      windowStart: T0,
      now: T0 + 30_000,
      stepMs: 5_000,
    });
    // Then each metric has both sides' samples, in the order declared
    expect(got).toEqual({
      warnings: [],
      samples: [
        {
          name: 'errors',
          baseline: { values: [0, 1], counts: [9, 1] },
          canary: { values: [0], counts: [4] },
        },
        { name: 'latency', baseline: { values: [10], counts: [10] }, canary: { values: [12], counts: [4] } },
        { name: 'queue', baseline: { values: [5], counts: [2] }, canary: { values: [7], counts: [1] } },
      ],
    });
    expect(prom.received.map((r) => r.form).sort((a, b) => a.query!.localeCompare(b.query!))).toEqual([
      {
        query: 'x{release="r1",instance=~"web-1"}',
        start: `${T0 / 1000}`,
        end: `${T0 / 1000 + 30}`,
        step: '5s',
      },
      {
        query: 'x{release="r2",instance=~"web-9"}',
        start: `${T0 / 1000}`,
        end: `${T0 / 1000 + 30}`,
        step: '5s',
      },
    ]);
  });

  it('turns a failing Prometheus into an empty sample and a warning, and warns of unknown latency', async () => {
    // Given a Prometheus that answers for the baseline but times out for the canary
    const prom = await prometheus((form) =>
      form.query!.includes('r2')
        ? { status: 422, json: { status: 'error', errorType: 'execution', error: 'query timed out' } }
        : { json: matrix([[1, '5']]) },
    );
    // When a look collects its samples
    const got = await collectSamples({
      metrics: [
        metricSchema.parse({ name: 'queue', source: 'prometheus', url: prom.url, query }),
        metricSchema.parse({ name: 'latency', source: 'latency' }),
      ],
      baseline: side(10, 0, [[10, 10]]),
      canary: { ...side(4, 0), latencyKnown: false },
      sides,
      windowStart: T0,
      now: T0 + 1000,
      stepMs: 1000,
    });
    // Then neither side of the Prometheus metric is judged, and the warnings say why
    const empty = { values: [], counts: [] };
    expect(got.samples).toEqual([
      { name: 'queue', baseline: empty, canary: empty },
      { name: 'latency', baseline: { values: [10], counts: [10] }, canary: empty },
    ]);
    expect(got.warnings).toEqual([
      `queue: Prometheus refused the query ${JSON.stringify('x{release="r2",instance=~"web-9"}')}: query timed out`,
      'latency: this router gives no latency histogram; use the built-in router to judge latency',
    ]);
  });
});
