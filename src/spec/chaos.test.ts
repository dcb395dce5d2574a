import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { validateStack } from './load.js';
import { chaosSchema, isTimeZone, parseHours } from './chaos.js';
import { serviceSchema } from './service.js';

const service = { name: 'api', image: 'web', port: 8080 };

/** The issues `validateStack` reports for one service with `chaos`. */
function issuesOf(chaos: unknown): { path: string; message: string; fix?: string }[] {
  try {
    validateStack(
      { images: [{ name: 'web', from: 'scratch' }], services: [{ ...service, chaos }] },
      'kiln.yaml',
    );
  } catch (err) {
    if (err instanceof ValidationError) return [...err.issues];
    throw err;
  }
  throw new Error('expected a ValidationError');
}

describe('chaos spec', () => {
  it('is off, leashed and limited to working hours (UTC, Monday to Friday) by default', () => {
    expect(serviceSchema.parse(service).chaos).toEqual({
      enabled: false,
      leashed: true,
      meanTimeBetween: 3_600_000,
      minTimeBetween: 600_000,
      schedule: { hours: '9-17', days: ['mon', 'tue', 'wed', 'thu', 'fri'], timezone: 'UTC' },
      minHealthy: 1,
      grouping: 'service',
      mode: 'kill',
      errorThreshold: 0.01,
    });
  });

  it('keeps what is given and fills in the rest', () => {
    const chaos = chaosSchema.parse({
      enabled: true,
      leashed: false,
      meanTimeBetween: '30m',
      minTimeBetween: '90s',
      schedule: { hours: '0-24', days: ['sat', 'sun'], timezone: 'Asia/Kolkata' },
      minHealthy: 2,
      grouping: 'region',
      mode: 'stop',
      errorThreshold: 0,
    });
    expect(chaos).toEqual({
      enabled: true,
      leashed: false,
      meanTimeBetween: 1_800_000,
      minTimeBetween: 90_000,
      schedule: { hours: '0-24', days: ['sat', 'sun'], timezone: 'Asia/Kolkata' },
      minHealthy: 2,
      grouping: 'region',
      mode: 'stop',
      errorThreshold: 0,
    });
    expect(chaosSchema.parse({ schedule: { hours: '22-6' } }).schedule).toEqual({
      hours: '22-6',
      days: ['mon', 'tue', 'wed', 'thu', 'fri'],
      timezone: 'UTC',
    });
  });

  it('names chaos.schedule.timezone when the time zone is unknown', () => {
    const issues = issuesOf({ schedule: { timezone: 'Mars/Olympus_Mons' } });
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe('services[0].chaos.schedule.timezone');
    expect(issues[0]!.message).toMatch(/"Mars\/Olympus_Mons" is not a time zone.*such as "UTC"/);
  });

  it.each(['25-3', 'x', '9', '9-9', '17-', '-1-5', '9-25', '24-0', ' - ', '9:00-17:00'])(
    'refuses hours %j, saying what a range looks like',
    (hours) => {
      const issues = issuesOf({ schedule: { hours } });
      expect(issues.map((i) => i.path)).toEqual(['services[0].chaos.schedule.hours']);
      expect(issues[0]!.message).toMatch(/range of whole hours "from-to".*"9-17"/);
    },
  );

  it.each([
    [[], /at least one day/],
    [['mon', 'mon'], /names a day twice/],
    [['monday'], /Invalid option|expected one of/i],
    ['mon', /expected array/i],
  ])('refuses days %j', (days, message) => {
    const issues = issuesOf({ schedule: { days } });
    expect(issues.map((i) => i.path)[0]).toMatch(/^services\[0\]\.chaos\.schedule\.days/);
    expect(issues[0]!.message).toMatch(message);
  });

  it.each([
    [{ meanTimeBetween: '0s' }, 'chaos.meanTimeBetween', /longer than 0/],
    [{ meanTimeBetween: 60 }, 'chaos.meanTimeBetween', /expected string|duration/i],
    [{ minTimeBetween: '10' }, 'chaos.minTimeBetween', /duration with a unit/],
    [{ minHealthy: -1 }, 'chaos.minHealthy', /0/],
    [{ minHealthy: 1.5 }, 'chaos.minHealthy', /int/i],
    [{ errorThreshold: 1.5 }, 'chaos.errorThreshold', /1/],
    [{ mode: 'nuke' }, 'chaos.mode', /./],
    [{ grouping: 'zone' }, 'chaos.grouping', /./],
    [{ enabled: 'yes' }, 'chaos.enabled', /boolean/],
    [{ leash: true }, 'chaos', /unknown field "leash"/],
  ])('refuses %j at %s', (chaos, path, message) => {
    const issues = issuesOf(chaos);
    expect(issues.map((i) => i.path)).toEqual([`services[0].${path}`]);
    expect(issues[0]!.message).toMatch(message);
  });
});

describe('parseHours', () => {
  it.each([
    ['9-17', { from: 9, to: 17 }],
    ['0-24', { from: 0, to: 24 }],
    ['22-6', { from: 22, to: 6 }],
    [' 09-17 ', { from: 9, to: 17 }],
    ['25-3', undefined],
    ['9-9', undefined],
    ['24-0', undefined],
    ['x', undefined],
    ['', undefined],
  ])('%j → %j', (text, hours) => expect(parseHours(text)).toEqual(hours));
});

describe('isTimeZone', () => {
  it.each([
    ['UTC', true],
    ['America/New_York', true],
    ['Asia/Kolkata', true],
    ['Mars/Olympus_Mons', false],
    ['', false],
  ])('%j → %s', (name, ok) => expect(isTimeZone(name)).toBe(ok));
});
