import { z } from 'zod';
import { chaosSchema } from './chaos.js';
import { trustSchema } from './trust.js';
import { bytesSchema, durationSchema } from './units.js';

/** How often a health check runs unless `health.interval` says otherwise. */
export const DEFAULT_HEALTH_INTERVAL = '1s';
/** How long one health check may take. */
export const DEFAULT_HEALTH_TIMEOUT = '500ms';
/** Consecutive failures that make an instance unhealthy. */
export const DEFAULT_HEALTH_THRESHOLD = 3;
/** A rollout whose new instances are not all healthy within this long fails and is rolled back. */
export const DEFAULT_PROGRESS_DEADLINE = '2m';
/** How long blue is kept after a blue/green switch, for an instant rollback. */
export const DEFAULT_ROLLBACK_WINDOW = '10m';

const NAME_RE = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A count or a percentage of replicas, as Kubernetes writes maxSurge and maxUnavailable. */
const countOrPercent = z.union([
  z.number().int().min(0),
  z.string().regex(/^\d{1,3}%$/, 'must be a whole number or a percentage such as "25%"'),
]);

export const healthSchema = z
  .object({
    /** An HTTP path that must answer 2xx or 3xx. */
    http: z.string().startsWith('/').optional(),
    /** A TCP connect to the instance's port. */
    tcp: z.boolean().optional(),
    /** A command run inside the instance that must exit 0. */
    exec: z.array(z.string()).min(1).optional(),
    interval: durationSchema.prefault(DEFAULT_HEALTH_INTERVAL),
    timeout: durationSchema.prefault(DEFAULT_HEALTH_TIMEOUT),
    threshold: z.number().int().min(1).default(DEFAULT_HEALTH_THRESHOLD),
  })
  .strict()
  .refine((h) => [h.http, h.tcp, h.exec].filter((x) => x !== undefined && x !== false).length === 1, {
    message: 'give exactly one of http, tcp or exec',
  });

/** The most looks one analysed step may take. */
export const MAX_LOOKS = 1000;

/** One canary step: a traffic weight (percent) and, optionally, how long the judge analyses it. */
const canaryStepSchema = z
  .object({ weight: z.number().min(0).max(100), analyse: durationSchema.optional() })
  .strict();

/** A metric the canary judge compares between baseline and canary. */
export const metricSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and "-", such as "latency"'),
    /**
     * Where the samples come from: `errors` (the router's per-request 5xx and connection failures),
     * `latency` (the router's per-request latency), or `prometheus` (a PromQL query).
     */
    source: z.enum(['errors', 'latency', 'prometheus']),
    /**
     * PromQL for `prometheus`; per side, `{{release}}`, `{{role}}` (baseline or canary) and
     * `{{instances}}` (a regular expression of instance ids, escaped for a double-quoted string,
     * for `=~`) are filled in. Instances also get `KILN_ROLE` in their environment.
     */
    query: z.string().min(1).optional(),
    /** Prometheus' base URL for `prometheus`, such as "http://127.0.0.1:9090". */
    url: z.url().optional(),
    /** Which change is bad. @default "increase" */
    direction: z.enum(['increase', 'decrease', 'either']).default('increase'),
    /**
     * Changes within the band never fail: for `errors`, in percentage points (0.5 = 0.5 pp); for the
     * others, relative ("10%").
     */
    tolerance: z
      .union([z.number().min(0), z.string().regex(/^\d+(\.\d+)?%$/, 'must be a percentage such as "10%"')])
      .optional(),
    /** A critical metric that fails fails the whole analysis. @default true for errors */
    critical: z.boolean().optional(),
    /** The group it is scored in. @default its name */
    group: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.source === 'prometheus' && (m.query === undefined || m.url === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'a prometheus metric needs "url" and "query"',
        path: ['query'],
      });
    }
    if (m.source !== 'prometheus' && (m.query !== undefined || m.url !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: `"query" and "url" apply only to source prometheus`,
        path: ['query'],
      });
    }
  });

/** The default metrics: the router's error rate (critical, 0.5 pp band) and latency (10 % band). */
export const DEFAULT_METRICS = [
  { name: 'errors', source: 'errors', direction: 'increase', critical: true },
  { name: 'latency', source: 'latency', direction: 'increase' },
] as const;

/** How the canary judge decides: the model of Kayenta's NetflixACAJudge, with kiln's additions. */
export const analysisSchema = z
  .object({
    /** How often the judge looks during an analysed step. @default "30s" */
    interval: durationSchema
      .refine((ms) => ms >= 100, { message: 'must be at least "100ms": a look needs traffic to judge' })
      .prefault('30s'),
    /**
     * The rate of false failures (a good release rolled back) over the whole rollout, every look and
     * metric included. @default 0.05
     */
    alpha: z.number().gt(0).lt(0.5).default(0.05),
    /** Samples each side needs before a metric is judged. @default 500 */
    minSamples: z.number().int().min(1).default(500),
    /** Scores (0–100) at or above `pass` promote; below `marginal` fail at once. @default 95 / 75 */
    thresholds: z
      .object({
        pass: z.number().min(0).max(100).default(95),
        marginal: z.number().min(0).max(100).default(75),
      })
      .strict()
      .prefault({}),
    metrics: z
      .array(metricSchema)
      .min(1)
      .prefault(() => DEFAULT_METRICS.map((m) => ({ ...m }))),
    /** Weights of metric groups in the score. Groups not named weigh 1. */
    groups: z.record(z.string(), z.number().positive()).default({}),
  })
  .strict()
  .superRefine((a, ctx) => {
    const seen = new Set<string>();
    a.metrics.forEach((m, i) => {
      if (seen.has(m.name))
        ctx.addIssue({
          code: 'custom',
          path: ['metrics', i, 'name'],
          message: `metric "${m.name}" is declared twice; give each metric its own name`,
        });
      seen.add(m.name);
    });
  });

export const strategySchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('rolling'),
      /** Extra instances allowed above `replicas` during a rollout. @default "25%" */
      maxSurge: countOrPercent.default('25%'),
      /** Instances allowed below `replicas` during a rollout. @default 0 */
      maxUnavailable: countOrPercent.default(0),
    })
    .strict(),
  z
    .object({
      type: z.literal('bluegreen'),
      rollbackWindow: durationSchema.prefault(DEFAULT_ROLLBACK_WINDOW),
    })
    .strict(),
  z
    .object({
      type: z.literal('canary'),
      /**
       * The traffic steps, in order. A step with `analyse` runs a fresh baseline (old image) beside
       * the canary, each with `weight` % of the traffic, and lets the judge compare them for that long.
       * A step without it only shifts traffic. The rollout ends by promoting the canary to 100 %.
       */
      steps: z.array(canaryStepSchema).min(1),
      analysis: analysisSchema.prefault({}),
    })
    .strict()
    .superRefine((s, ctx) => {
      s.steps.forEach((step, i) => {
        if (step.analyse !== undefined && step.analyse / s.analysis.interval > MAX_LOOKS) {
          ctx.addIssue({
            code: 'custom',
            path: ['steps', i, 'analyse'],
            message: `analysing for ${step.analyse} ms with a look every ${s.analysis.interval} ms is more than ${MAX_LOOKS} looks; make the analysis.interval longer or the step shorter`,
          });
        }
        if (step.analyse !== undefined && step.weight > 50) {
          ctx.addIssue({
            code: 'custom',
            path: ['steps', i, 'weight'],
            message: `an analysed step gives the baseline the same share as the canary, so its weight must be at most 50 (it is ${step.weight}); use a weight of 50 or less, or drop "analyse" from this step`,
          });
        }
        if (i > 0 && step.weight < s.steps[i - 1]!.weight) {
          ctx.addIssue({
            code: 'custom',
            path: ['steps', i, 'weight'],
            message: `weights must not go down (step ${i} has ${step.weight} after ${s.steps[i - 1]!.weight}); order the steps by weight`,
          });
        }
      });
      const groups = new Set(s.analysis.metrics.map((m) => m.group ?? m.name));
      for (const g of Object.keys(s.analysis.groups)) {
        if (!groups.has(g)) {
          ctx.addIssue({
            code: 'custom',
            path: ['analysis', 'groups', g],
            message: `no metric is in group "${g}"; name it in a metric's "group", or remove it`,
          });
        }
      }
      if (s.analysis.thresholds.marginal > s.analysis.thresholds.pass) {
        ctx.addIssue({
          code: 'custom',
          path: ['analysis', 'thresholds', 'marginal'],
          message: 'the marginal threshold must not exceed the pass threshold',
        });
      }
    }),
]);

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

export const serviceSchema = z
  .object({
    name: z
      .string()
      .regex(NAME_RE, 'must be lowercase letters, digits and "-", starting with a letter, such as "api"'),
    /** An image of this stack, by name, or an image digest (`sha256:…`). */
    image: z.string().min(1),
    replicas: z.number().int().min(0).max(10_000).default(1),
    /** The loopback port the router serves the service on. Each instance gets its own port in $PORT. */
    port: z.number().int().min(1).max(65535),
    health: healthSchema.prefault({ tcp: true }),
    resources: z
      .object({ memory: bytesSchema.optional(), cpus: z.number().positive().max(1024).optional() })
      .strict()
      .prefault({}),
    env: z.record(z.string(), z.string()).default({}),
    strategy: strategySchema.prefault({ type: 'rolling' }),
    /** A rollout not finished within this long fails and is rolled back. @default "2m" */
    progressDeadline: durationSchema.prefault(DEFAULT_PROGRESS_DEADLINE),
    /** Release order for base-image waves: lower tiers (lower priority) go first. @default 1 */
    tier: z.number().int().min(0).max(100).default(1),
    /** The chaos monkey for this service; off by default. */
    chaos: chaosSchema.prefault({}),
    /**
     * `stateless` instances are interchangeable behind the router. `stateful` ones have stable
     * identities `<name>-0` … `<name>-<replicas-1>`, identity k listening on `port + k` (no router),
     * each with its own `volumes`; an update replaces one at a time, highest ordinal first.
     * @default "stateless"
     */
    kind: z.enum(['stateless', 'stateful']).default('stateless'),
    /** Persistent volumes, one set per identity; stateful services only. */
    volumes: z.array(volumeSchema).default([]),
    /**
     * Stateful services: a check that must pass once after a replaced instance is healthy before
     * the update moves on (for example: its replication has caught up). Same forms as `health`.
     */
    ready: healthSchema.optional(),
    /** Configuration files mounted read-only into every instance of the release. */
    config: configFilesSchema.optional(),
    /**
     * The keys an image must be signed by to be deployed as this service.
     * @default the project's own signing key, `.kiln/keys/signing.pub`
     */
    trust: trustSchema.optional(),
    /** What happens to an instance that is no longer exactly its release. */
    drift: z
      .object({
        /** `replace` the tainted instance (the default), or only `alert` (taint, event, status). */
        action: z.enum(['replace', 'alert']).default('replace'),
        /** How long after a `kiln exec` session ends its instance is replaced. @default "1m" */
        execGrace: durationSchema.prefault('1m'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((svc, ctx) => {
    if (svc.kind !== 'stateful') {
      for (const field of ['volumes', 'ready'] as const) {
        if (field === 'volumes' ? svc.volumes.length === 0 : svc.ready === undefined) continue;
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `"${field}" applies only to stateful services; add kind: "stateful", or remove "${field}"`,
        });
      }
      return;
    }
    if (svc.strategy.type !== 'rolling') {
      ctx.addIssue({
        code: 'custom',
        path: ['strategy', 'type'],
        message: `a stateful service is updated one instance at a time, highest ordinal first, never by ${svc.strategy.type}; remove "strategy"`,
      });
    }
    if (svc.port + Math.max(0, svc.replicas - 1) > 65535) {
      ctx.addIssue({
        code: 'custom',
        path: ['port'],
        message: `identity k listens on port + k, so ${svc.replicas} replicas from port ${svc.port} go past 65535; choose a lower port`,
      });
    }
    const seen = new Map<string, number>();
    const paths = new Set<string>();
    svc.volumes.forEach((v, i) => {
      if (seen.has(v.name))
        ctx.addIssue({
          code: 'custom',
          path: ['volumes', i, 'name'],
          message: `volume "${v.name}" is declared twice; give each volume its own name`,
        });
      if (paths.has(v.path) || v.path === svc.config?.path)
        ctx.addIssue({
          code: 'custom',
          path: ['volumes', i, 'path'],
          message: `${v.path} is mounted twice; give each volume (and config) its own path`,
        });
      seen.set(v.name, i);
      paths.add(v.path);
    });
  });

/** A service as written by the user. */
export type ServiceInput = z.input<typeof serviceSchema>;
/** A service after validation, with every default filled in and durations in milliseconds. */
export type ServiceSpec = z.output<typeof serviceSchema>;
export type HealthSpec = z.output<typeof healthSchema>;
export type StrategySpec = z.output<typeof strategySchema>;
export type AnalysisSpec = z.output<typeof analysisSchema>;
export type MetricSpec = z.output<typeof metricSchema>;
/** A service's chaos config with every default filled in and durations in milliseconds. */
export type ChaosSpec = z.output<typeof chaosSchema>;
/** When a chaos monkey may act: local hours, days and the time zone they are read in. */
export type ChaosScheduleSpec = z.output<typeof chaosScheduleSchema>;
