import { z } from 'zod';
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
    /** PromQL for `prometheus`; `{{release}}` and `{{instances}}` (a regex of instance ids) are filled in per side. */
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
    interval: durationSchema.prefault('30s'),
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
  })
  .strict();

/** A service as written by the user. */
export type ServiceInput = z.input<typeof serviceSchema>;
/** A service after validation, with every default filled in and durations in milliseconds. */
export type ServiceSpec = z.output<typeof serviceSchema>;
export type HealthSpec = z.output<typeof healthSchema>;
export type StrategySpec = z.output<typeof strategySchema>;
export type AnalysisSpec = z.output<typeof analysisSchema>;
export type MetricSpec = z.output<typeof metricSchema>;
