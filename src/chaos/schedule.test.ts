import { describe, expect, it } from 'vitest';
import { CHAOS_MODES as SPEC_MODES, type ChaosScheduleSpec } from '../spec/index.js';
import { CHAOS_MODES as STATE_MODES } from '../state/index.js';
import {
  chooseVictim,
  durationStats,
  inWindow,
  localTime,
  nextTermination,
  outageCheck,
  summarise,
} from './schedule.js';

/** A deterministic uniform generator (mulberry32), for the tests that need many draws. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A "random" that always returns `u`. */
const always = (u: number) => () => u;

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri'] as ChaosScheduleSpec['days'];
const at = (iso: string) => Date.parse(iso);
const HOUR = 3_600_000;
const MINUTE = 60_000;

describe('localTime', () => {
  it.each([
    ['UTC', '2026-01-05T00:00:00Z', 'mon', 0],
    ['UTC', '2026-01-04T23:59:59Z', 'sun', 23],
    ['America/New_York', '2026-01-05T04:00:00Z', 'sun', 23],
    ['Asia/Kolkata', '2026-01-04T18:30:00Z', 'mon', 0],
    ['Asia/Kolkata', '2026-01-04T18:29:59Z', 'sun', 23],
  ])('%s at %s is %s %i h', (tz, iso, day, hour) => expect(localTime(tz, at(iso))).toEqual({ day, hour }));
});

describe('inWindow', () => {
  const cases: [string, ChaosScheduleSpec, string, boolean][] = [
    [
      'UTC, before nine',
      { hours: '9-17', days: WEEKDAYS, timezone: 'UTC' },
      '2026-01-05T08:59:59.999Z',
      false,
    ],
    ['UTC, at nine', { hours: '9-17', days: WEEKDAYS, timezone: 'UTC' }, '2026-01-05T09:00:00Z', true],
    ['UTC, last minute', { hours: '9-17', days: WEEKDAYS, timezone: 'UTC' }, '2026-01-05T16:59:59Z', true],
    [
      'UTC, at five (exclusive)',
      { hours: '9-17', days: WEEKDAYS, timezone: 'UTC' },
      '2026-01-05T17:00:00Z',
      false,
    ],
    ['UTC, Saturday noon', { hours: '9-17', days: WEEKDAYS, timezone: 'UTC' }, '2026-01-10T12:00:00Z', false],
    [
      'UTC, Saturday when named',
      { hours: '9-17', days: ['sat'], timezone: 'UTC' },
      '2026-01-10T12:00:00Z',
      true,
    ],
    // New York: EST (UTC−5) before 8 March 2026, EDT (UTC−4) after.
    [
      'New York, 09:00 EST',
      { hours: '9-17', days: WEEKDAYS, timezone: 'America/New_York' },
      '2026-03-06T14:00:00Z',
      true,
    ],
    [
      'New York, 08:59 EST',
      { hours: '9-17', days: WEEKDAYS, timezone: 'America/New_York' },
      '2026-03-06T13:59:00Z',
      false,
    ],
    [
      'New York, 09:00 EDT',
      { hours: '9-17', days: WEEKDAYS, timezone: 'America/New_York' },
      '2026-03-09T13:00:00Z',
      true,
    ],
    [
      'New York, 08:59 EDT',
      { hours: '9-17', days: WEEKDAYS, timezone: 'America/New_York' },
      '2026-03-09T12:59:00Z',
      false,
    ],
    [
      'New York, 16:59 EDT',
      { hours: '9-17', days: WEEKDAYS, timezone: 'America/New_York' },
      '2026-03-09T20:59:00Z',
      true,
    ],
    [
      'New York, 17:00 EDT',
      { hours: '9-17', days: WEEKDAYS, timezone: 'America/New_York' },
      '2026-03-09T21:00:00Z',
      false,
    ],
    [
      'New York, Sunday 23:00 locally, Monday in UTC',
      { hours: '0-24', days: ['mon'], timezone: 'America/New_York' },
      '2026-01-05T04:00:00Z',
      false,
    ],
    // Kolkata is UTC+5:30: the window opens at 03:30 UTC.
    [
      'Kolkata, 08:59 IST',
      { hours: '9-17', days: WEEKDAYS, timezone: 'Asia/Kolkata' },
      '2026-01-05T03:29:59Z',
      false,
    ],
    [
      'Kolkata, 09:00 IST',
      { hours: '9-17', days: WEEKDAYS, timezone: 'Asia/Kolkata' },
      '2026-01-05T03:30:00Z',
      true,
    ],
    [
      'Kolkata, 16:59 IST',
      { hours: '9-17', days: WEEKDAYS, timezone: 'Asia/Kolkata' },
      '2026-01-05T11:29:59Z',
      true,
    ],
    [
      'Kolkata, 17:00 IST',
      { hours: '9-17', days: WEEKDAYS, timezone: 'Asia/Kolkata' },
      '2026-01-05T11:30:00Z',
      false,
    ],
    [
      'Kolkata, Monday 00:00 IST is Sunday in UTC',
      { hours: '0-24', days: ['mon'], timezone: 'Asia/Kolkata' },
      '2026-01-04T18:30:00Z',
      true,
    ],
    [
      'Kolkata, Sunday 23:59 IST',
      { hours: '0-24', days: ['mon'], timezone: 'Asia/Kolkata' },
      '2026-01-04T18:29:59Z',
      false,
    ],
    // Wrapping past midnight: each hour belongs to the day it falls on.
    ['22-6, Friday 22:00', { hours: '22-6', days: ['fri'], timezone: 'UTC' }, '2026-01-09T22:00:00Z', true],
    ['22-6, Friday 05:59', { hours: '22-6', days: ['fri'], timezone: 'UTC' }, '2026-01-09T05:59:00Z', true],
    ['22-6, Friday 06:00', { hours: '22-6', days: ['fri'], timezone: 'UTC' }, '2026-01-09T06:00:00Z', false],
    ['22-6, Friday 21:59', { hours: '22-6', days: ['fri'], timezone: 'UTC' }, '2026-01-09T21:59:00Z', false],
    [
      '22-6, Saturday 02:00',
      { hours: '22-6', days: ['fri'], timezone: 'UTC' },
      '2026-01-10T02:00:00Z',
      false,
    ],
    ['0-24, any time', { hours: '0-24', days: ['sun'], timezone: 'UTC' }, '2026-01-04T23:59:59Z', true],
    ['not a range', { hours: 'x', days: WEEKDAYS, timezone: 'UTC' }, '2026-01-05T12:00:00Z', false],
  ];
  it.each(cases)('%s', (_, schedule, iso, inside) => expect(inWindow(schedule, at(iso))).toBe(inside));

  /** Minutes of the local day around `startIso` (UTC) that the schedule lets through. */
  const minutesIn = (schedule: ChaosScheduleSpec, startIso: string, hours: number): number => {
    let n = 0;
    for (let t = at(startIso); t < at(startIso) + hours * HOUR; t += MINUTE) if (inWindow(schedule, t)) n++;
    return n;
  };

  it('never opens in the hour that the spring DST change skips (New York, 8 March 2026)', () => {
    const schedule: ChaosScheduleSpec = { hours: '2-3', days: ['sun'], timezone: 'America/New_York' };
    expect(minutesIn(schedule, '2026-03-08T00:00:00Z', 24)).toBe(0);
    // The day is 23 hours long: 9-17 is still 8 hours of it.
    expect(minutesIn({ ...schedule, hours: '9-17' }, '2026-03-08T00:00:00Z', 24)).toBe(8 * 60);
  });

  it('opens twice in the hour that the autumn DST change repeats (New York, 1 November 2026)', () => {
    const schedule: ChaosScheduleSpec = { hours: '1-2', days: ['sun'], timezone: 'America/New_York' };
    expect(minutesIn(schedule, '2026-11-01T00:00:00Z', 24)).toBe(120);
    expect(inWindow(schedule, at('2026-11-01T05:30:00Z'))).toBe(true); // 01:30 EDT
    expect(inWindow(schedule, at('2026-11-01T06:30:00Z'))).toBe(true); // 01:30 EST
  });
});

describe('nextTermination', () => {
  const chaos = { meanTimeBetween: HOUR, minTimeBetween: 10 * MINUTE };
  const now = at('2026-01-05T10:00:00Z');
  const half = Math.round(HOUR * Math.LN2);
  it.each([
    ['no last kill, u = 0: now', undefined, 0, now],
    ['no last kill, u = 0.5: now + mean · ln 2', undefined, 0.5, now + half],
    ['just killed, u = 0: the minimum gap', now, 0, now + 10 * MINUTE],
    ['just killed, u = 0.5: the exponential gap', now, 0.5, now + half],
    ['killed a minute ago, u = 0: the minimum counts from the kill', now - MINUTE, 0, now + 9 * MINUTE],
    ['killed a day ago, u = 0: now, not in the past', now - 24 * HOUR, 0, now],
    ['killed a day ago, u = 0.5: drawn from now', now - 24 * HOUR, 0.5, now + half],
    ['a random below 0 counts as 0', undefined, -0.5, now],
  ])('%s', (_, last, u, expected) => expect(nextTermination(chaos, last, now, always(u))).toBe(expected));

  it('stays finite when the random returns 1', () => {
    const next = nextTermination(chaos, undefined, now, always(1));
    expect(Number.isFinite(next)).toBe(true);
    expect(next).toBeGreaterThan(now + 30 * HOUR);
  });

  it('averages meanTimeBetween over many draws when there is no minimum', () => {
    const random = seeded(42);
    const draws = 20_000;
    let total = 0;
    for (let i = 0; i < draws; i++) {
      total += nextTermination({ meanTimeBetween: HOUR, minTimeBetween: 0 }, now, now, random) - now;
    }
    expect(total / draws / HOUR).toBeCloseTo(1, 1);
  });
});

describe('chooseVictim', () => {
  const up = (...ids: string[]) => ids.map((id) => ({ id, healthy: true }));
  it.each([
    ['no instances', [], 1, 0, undefined, 'no healthy instance to terminate'],
    ['none healthy', [{ id: 'a', healthy: false }], 0, 0, undefined, 'no healthy instance to terminate'],
    ['one healthy, keep 1', up('a'), 1, 0, undefined, 'only 1 healthy instance; keeping at least 1'],
    ['two healthy, keep 2', up('a', 'b'), 2, 0, undefined, 'only 2 healthy instances; keeping at least 2'],
    [
      'one healthy, keep 0',
      up('a'),
      0,
      0,
      'a',
      'chose a at random of 1 healthy instance; 0 remain, at least 0 required',
    ],
    [
      'three healthy, keep 2, u = 0',
      up('a', 'b', 'c'),
      2,
      0,
      'a',
      'chose a at random of 3 healthy instances; 2 remain, at least 2 required',
    ],
    ['three healthy, u = 0.99', up('a', 'b', 'c'), 1, 0.99, 'c', undefined],
    ['a random of 1 is clamped', up('a', 'b', 'c'), 1, 1, 'c', undefined],
    ['ordered by id, not by input', up('c', 'b', 'a'), 1, 0, 'a', undefined],
    [
      'only healthy ones count',
      [
        { id: 'a', healthy: false },
        { id: 'b', healthy: true },
        { id: 'c', healthy: true },
      ],
      1,
      0,
      'b',
      undefined,
    ],
    [
      'an unhealthy one does not count toward the minimum',
      [
        { id: 'a', healthy: false },
        { id: 'b', healthy: true },
      ],
      1,
      0,
      undefined,
      'only 1 healthy instance; keeping at least 1',
    ],
  ])('%s', (_, instances, minHealthy, u, victim, reason) => {
    const choice = chooseVictim(instances, minHealthy, always(u));
    expect(choice.victim).toBe(victim);
    if (reason !== undefined) expect(choice.reason).toBe(reason);
    else expect(choice.reason).toMatch(/^chose /);
  });

  it('chooses every healthy instance about equally often', () => {
    const random = seeded(7);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 30_000; i++) {
      const { victim } = chooseVictim(up('a', 'b', 'c'), 1, random);
      counts[victim!] = (counts[victim!] ?? 0) + 1;
    }
    for (const id of ['a', 'b', 'c']) expect(Math.abs(counts[id]! - 10_000)).toBeLessThan(500);
  });
});

describe('outageCheck', () => {
  it.each([
    [false, 0, 0, 0.01, true, 'no rollout in progress and no requests to judge'],
    [
      false,
      1000,
      1,
      0.01,
      true,
      'no rollout in progress; failed-request ratio 0.1% (1 of 1000) is within the threshold 1%',
    ],
    [
      false,
      1000,
      10,
      0.01,
      true,
      'no rollout in progress; failed-request ratio 1% (10 of 1000) is within the threshold 1%',
    ],
    [false, 1000, 50, 0.01, false, 'failed-request ratio 5% (50 of 1000) is above the threshold 1%'],
    [false, 3, 1, 0.2, false, 'failed-request ratio 33.33% (1 of 3) is above the threshold 20%'],
    [false, 1000, 1, 0, false, 'failed-request ratio 0.1% (1 of 1000) is above the threshold 0%'],
    [false, 0, 5, 0.01, true, 'no rollout in progress and no requests to judge'],
    [true, 0, 0, 0.01, false, 'a rollout is in progress'],
    [true, 1000, 1, 0.01, false, 'a rollout is in progress'],
    [
      true,
      100,
      50,
      0.01,
      false,
      'a rollout is in progress; failed-request ratio 50% (50 of 100) is above the threshold 1%',
    ],
  ])(
    'rollout %s, %i requests, %i failed, threshold %s → ok %s',
    (rolloutActive, requests, failed, errorThreshold, ok, reason) => {
      expect(outageCheck({ rolloutActive, requests, failed, errorThreshold })).toEqual({ ok, reason });
    },
  );
});

describe('durationStats', () => {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  it.each([
    ['nothing', [], null, null],
    ['one value', [700], 700, 700],
    ['odd count', [900, 1500, 1200], 1200, 1500],
    ['even count: mean of the middle two', [40, 20], 30, 40],
    ['1…100: rank 99', range(100), 50.5, 99],
    ['1…101: rank 100', range(101), 51, 100],
    ['1…200: rank 198', range(200), 100.5, 198],
  ])('%s', (_, values, median, p99) => expect(durationStats(values)).toEqual({ median, p99 }));
});

describe('summarise', () => {
  it('says nothing was measured when nothing happened', () => {
    expect(summarise([], { requests: 0, failed: 0 })).toEqual({
      kills: 0,
      recovered: 0,
      mttrMs: { median: null, p99: null },
      detectMs: { median: null, p99: null },
      availability: null,
      failedRequests: 0,
    });
  });

  it('measures detection and recovery from each start, over the ones that have them', () => {
    const summary = summarise(
      [
        { mode: 'kill', startedAt: 1000, detectedAt: 1020, recoveredAt: 1900, failedRequests: 2 },
        { mode: 'kill', startedAt: 5000, detectedAt: 5040, recoveredAt: 6500, failedRequests: 1 },
        { mode: 'stop', startedAt: 9000, recoveredAt: 10_200 },
        { mode: 'kill', startedAt: 12_000 },
      ],
      { requests: 1000, failed: 3 },
    );
    expect(summary).toEqual({
      kills: 4,
      recovered: 3,
      mttrMs: { median: 1200, p99: 1500 },
      detectMs: { median: 30, p99: 40 },
      availability: expect.closeTo(0.997, 10),
      failedRequests: 3,
    });
  });

  it('counts a time before its start (clock skew) as 0', () => {
    const s = summarise([{ mode: 'kill', startedAt: 1000, detectedAt: 990, recoveredAt: 995 }], {
      requests: 10,
      failed: 0,
    });
    expect(s.mttrMs).toEqual({ median: 0, p99: 0 });
    expect(s.detectMs).toEqual({ median: 0, p99: 0 });
    expect(s.availability).toBe(1);
  });
});

describe('modes', () => {
  it('are the same in the spec and the store', () => expect([...STATE_MODES]).toEqual([...SPEC_MODES]));
});
