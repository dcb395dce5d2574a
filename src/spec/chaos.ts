/**
 * A service's chaos monkey settings: the schema, and the parsing of its schedule shared with the
 * scheduler (`src/chaos/schedule.ts`), so the two never read the text differently.
 */
import { z } from 'zod';
import { durationSchema } from './units.js';

/** What a chaos termination does to its victim, in the order of how much of the instance it leaves. */
export const CHAOS_MODES = ['kill', 'stop', 'corrupt', 'partition'] as const;

/** Days of the week as the chaos schedule names them, Monday first. */
export const CHAOS_DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

const HOURS_RE = /^(\d{1,2})-(\d{1,2})$/;

/**
 * Parses a chaos schedule's `hours` (`"9-17"`: from 09:00 up to, not including, 17:00 local time)
 * into whole hours; undefined when it is not such a range. Both ends are 0–24 and differ; `from`
 * greater than `to` wraps past midnight (`"22-6"`), and `"0-24"` is the whole day. Shared by the
 * schema and the scheduler so the two can never read the text differently.
 */
export function parseHours(text: string): { readonly from: number; readonly to: number } | undefined {
  const m = HOURS_RE.exec(text.trim());
  if (!m) return undefined;
  const from = Number(m[1]);
  const to = Number(m[2]);
  return from <= 24 && to <= 24 && from !== to && !(from === 24 && to === 0) ? { from, to } : undefined;
}

/** True when `name` is a time zone this Node knows (an IANA name such as "Europe/Berlin", or "UTC"). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return name.length > 0;
  } catch {
    return false;
  }
}

/**
 * When a chaos monkey may act, as Netflix's Chaos Monkey runs only in working hours: failures it
 * causes then are met by people at their desks, not by whoever is on call at night.
 */
export const chaosScheduleSchema = z
  .object({
    /** Local hours, `"from-to"` with `to` exclusive, such as "9-17"; "0-24" for all day. @default "9-17" */
    hours: z
      .string()
      .refine((h) => parseHours(h) !== undefined, {
        message:
          'must be a range of whole hours "from-to" between 0 and 24, such as "9-17" (to is exclusive; "0-24" is all day)',
      })
      .default('9-17'),
    /** The local days it may act on. @default Monday to Friday */
    days: z
      .array(z.enum(CHAOS_DAYS))
      .min(1, 'name at least one day, such as ["mon", "tue", "wed", "thu", "fri"]')
      .refine((d) => new Set(d).size === d.length, { message: 'names a day twice; name each day once' })
      .default(['mon', 'tue', 'wed', 'thu', 'fri']),
    /** The IANA time zone `hours` and `days` are read in. @default "UTC" */
    timezone: z
      .string()
      .refine(isTimeZone, {
        error: (issue) =>
          `${JSON.stringify(issue.input)} is not a time zone this system knows; use an IANA name such as "UTC", "Europe/Berlin" or "America/New_York"`,
      })
      .default('UTC'),
  })
  .strict();

/**
 * A service's chaos monkey, off unless `enabled`. Like Netflix's Chaos Monkey it starts leashed
 * (it only reports what it would terminate), acts only in working hours, never leaves fewer than
 * `minHealthy` healthy instances, and holds off while a rollout runs or clients already see errors.
 */
export const chaosSchema = z
  .object({
    /** Opts the service in. @default false */
    enabled: z.boolean().default(false),
    /** Dry run: record what it would terminate, terminate nothing. @default true */
    leashed: z.boolean().default(true),
    /** Mean time between terminations; the gaps are exponential, so kills are unpredictable. @default "1h" */
    meanTimeBetween: durationSchema
      .refine((ms) => ms > 0, { message: 'must be longer than 0, such as "1h"' })
      .prefault('1h'),
    /** Never two terminations closer than this. @default "10m" */
    minTimeBetween: durationSchema.prefault('10m'),
    schedule: chaosScheduleSchema.prefault({}),
    /** Never terminate if fewer than this many healthy instances would remain. @default 1 */
    minHealthy: z.number().int().min(0).default(1),
    /** Whether one victim is chosen per service or per region of a service. @default "service" */
    grouping: z.enum(['service', 'region']).default('service'),
    /** What a termination does. @default "kill" */
    mode: z.enum(CHAOS_MODES).default('kill'),
    /** Kills are held while the service's failed-request ratio is above this (0–1). @default 0.01 */
    errorThreshold: z.number().min(0).max(1).default(0.01),
  })
  .strict();

/** A service's chaos config with every default filled in and durations in milliseconds. */
export type ChaosSpec = z.output<typeof chaosSchema>;
/** When a chaos monkey may act: local hours, days and the time zone they are read in. */
export type ChaosScheduleSpec = z.output<typeof chaosScheduleSchema>;
