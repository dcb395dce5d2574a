import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseShowProc, parseShowStat, run } from './haproxy-runtime.js';
import {
  delta,
  fillSlots,
  metricsOf,
  prune,
  renderHaproxyConfig,
  renderMap,
  routeOf,
  slotsFor,
  ZERO_COUNTERS,
  type HaproxyState,
  type SlotCounters,
} from './haproxy-state.js';

const a = { id: 'a', host: '127.0.0.1', port: 8001, weight: 3 };
const b = { id: 'b', host: '::1', port: 8002, weight: 0 };
const counters = (requests: number, ok: number, errors = 0): SlotCounters => ({
  requests,
  classes: [0, ok, 0, 0, requests - ok - errors],
  errors,
  retries: 0,
  latencySumMs: ok * 2,
});

const state: HaproxyState = {
  version: 1,
  services: [
    {
      service: 'web',
      listenPort: 18080,
      active: 1,
      halves: [fillSlots([a], 2, () => ZERO_COUNTERS), fillSlots([a, b], 2, () => counters(10, 10))],
    },
  ],
  accumulated: { 'web/a': counters(5, 5), 'web/gone': counters(1, 1) },
};

describe('renderHaproxyConfig', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('writes both halves with the current addresses and weights, and HAProxy accepts it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-haproxy-cfg-'));
    const paths = {
      statsSocket: join(dir, 'a.sock'),
      mapFile: join(dir, 'active.map'),
      idleSocket: join(dir, 'i.sock'),
    };
    const cfg = renderHaproxyConfig(state, paths, 2);
    expect(cfg).toContain('  retries 2\n');
    expect(cfg).toContain(`  use_backend %[str(web),map(${paths.mapFile},be_web_1)]\n`);
    expect(cfg).toContain(
      'backend be_web_0\n  balance roundrobin\n  server s1 127.0.0.1:8001 weight 3\n  server s2 127.0.0.1:1 weight 0 disabled\n',
    );
    expect(cfg).toContain(
      'backend be_web_1\n  balance roundrobin\n  server s1 127.0.0.1:8001 weight 3\n  server s2 [::1]:8002 weight 0\n',
    );
    expect(renderMap(state)).toBe('web be_web_1\n');
    await writeFile(join(dir, 'haproxy.cfg'), cfg);
    await writeFile(paths.mapFile, renderMap(state));
    const check = await run('haproxy', ['-c', '-f', join(dir, 'haproxy.cfg')]);
    expect(check.stderr).not.toMatch(/ALERT/);
    expect(check.code).toBe(0);
  });
});

describe('HAProxy state', () => {
  it('serves the active half as the route', () => {
    expect(routeOf(state.services[0]!)).toEqual({ service: 'web', listenPort: 18080, backends: [a, b] });
  });

  it.each([
    { n: 0, current: undefined, slots: 8 },
    { n: 8, current: 8, slots: 8 },
    { n: 9, current: 8, slots: 16 },
    { n: 40, current: 16, slots: 64 },
  ])('gives $n backends $slots slots (from $current)', ({ n, current, slots }) => {
    expect(slotsFor(n, current)).toBe(slots);
  });

  it.each([
    { cur: counters(15, 14, 1), base: counters(10, 10), requests: 5, errors: 1 },
    { cur: counters(3, 3), base: counters(10, 10), requests: 3, errors: 0 },
  ])('counts since the baseline, or from zero after a restart', ({ cur, base, requests, errors }) => {
    expect(delta(cur, base)).toMatchObject({ requests, errors });
  });

  it('adds ended tenures to what each slot counted since it got its backend, in both halves', () => {
    const live = new Map([
      ['web/0/0', { counters: counters(4, 4), inFlight: 1 }],
      ['web/1/0', { counters: counters(13, 13), inFlight: 0 }],
      ['web/1/1', { counters: counters(12, 10, 2), inFlight: 0 }],
    ]);
    const m = metricsOf(state, (service, h, i) => live.get(`${service}/${h}/${i}`));
    expect(m.map((x) => [x.backendId, x.requests, x.responses['2xx'], x.errors, x.inFlight])).toEqual([
      ['a', 5 + 4 + 3, 5 + 4 + 3, 0, 1],
      ['b', 2, 0, 2, 0],
    ]);
    expect(m[0]!.latencyMs).toEqual({ buckets: [], sum: 10 + 8 + 6, count: 12 });
  });

  it('forgets counters of backends no slot holds', () => {
    expect(Object.keys(prune(state).accumulated)).toEqual(['web/a']);
  });
});

describe('runtime API answers', () => {
  it('reads show stat', () => {
    const csv = [
      '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,ttime',
      'be_web_0,s1,1,0,2,0,,40,0,0,,0,,1,2,5,3,UP,1,0,30,0,4,2,7',
      'be_web_0,BACKEND,0,0,2,0,,40,0,0,,0,,1,2,5,3,UP,1,0,30,0,4,2,7',
      '',
    ].join('\n');
    expect(parseShowStat(csv)).toEqual(
      new Map([
        [
          'be_web_0/s1',
          {
            inFlight: 3,
            counters: {
              requests: 40,
              classes: [0, 30, 0, 4, 2],
              errors: 1 + 2 + 3,
              retries: 3,
              latencySumMs: 7 * 36,
            },
          },
        ],
      ]),
    );
  });

  it('reads show proc', () => {
    const text = [
      '#<PID>          <type>          <reloads>       <uptime>        <version>',
      '9437            master          2 [failed: 1]   0d00h14m03s     2.6.12',
      '# workers',
      '20656           worker          0               0d00h00m02s     2.6.12',
      '20001           worker          1               0d00h01m02s     2.6.12',
      '# programs',
    ].join('\n');
    expect(parseShowProc(text)).toEqual({ master: 9437, reloads: 2, failedReloads: 1, worker: 20656 });
  });
});
