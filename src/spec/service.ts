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
    refuseRepeats(
      ctx,
      a.metrics.map((m) => m.name),
      (i) => ['metrics', i, 'name'],
      (name) => `metric "${name}" is declared twice; give each metric its own name`,
    );
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

/** An absolute path inside an instance, without `..`. */
const instancePath = z
  .string()
  .refine((p) => p.startsWith('/') && p !== '/' && !p.split('/').includes('..'), {
    message: 'must be an absolute path other than "/", without "..", such as "/data"',
  });

/**
 * A stateful service's persistent volume: a host directory per identity under
 * `.kiln/volumes/<service>/<identity>/<name>`, outside the image, kept across replacements and
 * mounted read-write at `path`, which the image must declare in its `volumes`.
 */
export const volumeSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and "-", such as "data"'),
    path: instancePath,
  })
  .strict();

/**
 * Configuration files a release carries: written once per release and mounted read-only at `path`
 * (a directory the image declares in its `volumes`). They are part of the release, so a change is
 * a new release, rolled out by replacement like any other.
 */
export const configFilesSchema = z
  .object({
    path: instancePath,
    /** File name (no "/") → content. */
    files: z
      .record(
        z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be a file name such as "redis.conf"'),
        z.string(),
      )
      .refine((f) => Object.keys(f).length > 0, { message: 'name at least one file' }),
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
    refuseRepeats(
      ctx,
      svc.volumes.map((v) => v.name),
      (i) => ['volumes', i, 'name'],
      (name) => `volume "${name}" is declared twice; give each volume its own name`,
    );
    refuseRepeats(
      ctx,
      svc.volumes.map((v) => v.path),
      (i) => ['volumes', i, 'path'],
      (path) => `${path} is mounted twice; give each volume (and config) its own path`,
      svc.config ? [svc.config.path] : [],
    );
  });

/**
 * Adds an issue at `at(i)` for every value of `values` that an earlier one (or one of `taken`)
 * already is: names and mount paths must each be unique.
 */
function refuseRepeats(
  ctx: z.RefinementCtx,
  values: readonly string[],
  at: (i: number) => (string | number)[],
  message: (value: string) => string,
  taken: readonly string[] = [],
): void {
  const seen = new Set(taken);
  values.forEach((value, i) => {
    if (seen.has(value)) ctx.addIssue({ code: 'custom', path: at(i), message: message(value) });
    seen.add(value);
  });
}

/** A service as written by the user. */
export type ServiceInput = z.input<typeof serviceSchema>;
/** A service after validation, with every default filled in and durations in milliseconds. */
export type ServiceSpec = z.output<typeof serviceSchema>;
export type HealthSpec = z.output<typeof healthSchema>;
export type StrategySpec = z.output<typeof strategySchema>;
export type AnalysisSpec = z.output<typeof analysisSchema>;
export type MetricSpec = z.output<typeof metricSchema>;
export type VolumeSpec = z.output<typeof volumeSchema>;
export type ConfigFilesSpec = z.output<typeof configFilesSchema>;
