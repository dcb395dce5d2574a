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
      steps: z
        .array(z.object({ weight: z.number().min(0).max(100), analyse: durationSchema.optional() }).strict())
        .min(1),
    })
    .strict(),
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
