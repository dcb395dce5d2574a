/**
 * Validation of what a client sends: JSON bodies and query strings, by zod schemas. Every problem
 * becomes a {@link ValidationError} issue naming the field and how to fix it, so a 400 says exactly
 * what to change.
 */
import { z } from 'zod';
import { ValidationError, type ValidationIssue } from '../errors/index.js';
import { parseDuration } from '../spec/index.js';
import { MAX_READ_LIMIT, TOKEN_SCOPES } from '../state/index.js';
import type {
  ChaosRunRequest,
  DeployRequest,
  ExecEndRequest,
  ExecRequest,
  RingRequest,
  RollbackRequest,
  RolloutCommandJson,
  RolloutCommandRequest,
  TokenRequest,
  VerifyRequest,
} from './types.js';

/** What each field of a body or query should be, keyed by field name. */
type Fixes = Readonly<Record<string, string>>;

/** One schema and the fix to suggest for each of its fields. */
export interface Checked<T> {
  readonly schema: z.ZodType<T>;
  readonly fixes: Fixes;
}

const NAME_MAX = 512;
const REASON_MAX = 1000;

/** `POST /v1/services/:name/deploy`. */
export const DEPLOY_REQUEST: Checked<DeployRequest> = {
  schema: z.strictObject({
    image: z.string().min(1).max(NAME_MAX).optional(),
    strategy: z.enum(['rolling', 'bluegreen', 'canary']).optional(),
    reason: z.string().max(REASON_MAX).optional(),
  }),
  fixes: {
    image:
      "give an image name in the server's store, a digest (sha256:…), or registry/repository@sha256:… to pull, as a string",
    strategy: 'use "rolling", "bluegreen" or "canary", or leave it out to use the service\'s own',
    reason: `give the reason as a string of at most ${REASON_MAX} characters`,
  },
};

/** `POST /v1/services/:name/rollback`. */
export const ROLLBACK_REQUEST: Checked<RollbackRequest> = {
  schema: z.strictObject({
    to: z
      .string()
      .regex(/^r[1-9][0-9]{0,8}$/, 'must be a release name')
      .optional(),
  }),
  fixes: { to: 'name a release such as "r3", or leave it out to go back to the one before the current' },
};

/** `POST /v1/services/:name/rollout/:command`. */
export const ROLLOUT_COMMAND_REQUEST: Checked<RolloutCommandRequest> = {
  schema: z.strictObject({ full: z.boolean().optional() }),
  fixes: { full: 'give true to promote through every remaining step, or leave it out' },
};

/** `POST /v1/rings`. */
export const RING_REQUEST: Checked<RingRequest> = {
  schema: z.strictObject({
    base: z.string().min(1).max(NAME_MAX),
    baseDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be a sha256 digest'),
    targets: z
      .array(
        z.strictObject({
          service: z.string().min(1).max(NAME_MAX),
          image: z.string().min(1).max(NAME_MAX),
          digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be a sha256 digest'),
        }),
      )
      .min(1)
      .max(10_000),
  }),
  fixes: {
    base: 'name the base image, as the config does',
    baseDigest: 'give the base image\'s digest, "sha256:" and 64 hex digits',
    targets: 'list each service to release, with the image rebaked on the base and its digest',
  },
};

/** `POST /v1/tokens`; the state store checks the name's characters and the uniqueness. */
export const TOKEN_REQUEST: Checked<TokenRequest> = {
  schema: z.strictObject({
    name: z.string().min(1).max(64),
    scopes: z.array(z.enum(TOKEN_SCOPES)).min(1).max(TOKEN_SCOPES.length),
  }),
  fixes: {
    name: 'name the token with up to 64 letters, digits, ".", "_", "@", ":" or "-", such as "ci"',
    scopes: 'list one or more of "read", "deploy", "admin", such as ["deploy"]',
  },
};

/** `?limit=` of a listing: a whole number of at most `digits` digits, from 1. */
function limitQuery(what: string, digits: number, example: number): Checked<{ limit?: number }> {
  const max = 10 ** digits - 1;
  return {
    schema: z.strictObject({
      limit: z
        .string()
        .regex(new RegExp(`^[1-9][0-9]{0,${digits - 1}}$`), `must be a whole number from 1 to ${max}`)
        .transform(Number)
        .optional(),
    }),
    fixes: { limit: `give how many ${what} to list, such as ?limit=${example}` },
  };
}

/** `POST /v1/chaos/runs`. */
export const CHAOS_RUN_REQUEST: Checked<ChaosRunRequest> = {
  schema: z.strictObject({
    service: z.string().min(1).max(NAME_MAX).optional(),
    kills: z.number().int().min(1).max(10_000).optional(),
    interval: z
      .string()
      .refine((s) => parseDuration(s) !== undefined, 'must be a duration such as "2s"')
      .optional(),
    mode: z.enum(['kill', 'stop', 'corrupt', 'partition']).optional(),
    dryRun: z.boolean().optional(),
  }),
  fixes: {
    service: 'name a deployed service, or leave it out for every service that opted in',
    kills: 'give how many instances to terminate, 1 to 10000',
    interval: 'give the time between kills with a unit, such as "2s" or "500ms"',
    mode: 'use "kill", "stop", "corrupt" or "partition"',
    dryRun: 'give true to only record what would be terminated',
  },
};

/** `?limit=` of `GET /v1/chaos/runs`. */
export const CHAOS_RUNS_QUERY = limitQuery('chaos runs', 3, 5);

/** `?run=` of `GET /v1/chaos/report`. */
export const CHAOS_REPORT_QUERY: Checked<{ run?: string }> = {
  schema: z.strictObject({ run: z.string().min(1).max(NAME_MAX).optional() }),
  fixes: { run: 'name a chaos run id (kiln chaos report lists the latest)' },
};

/** `?limit=` of `GET /v1/rings`. */
export const RINGS_QUERY = limitQuery('rings', 3, 5);

/** `?limit=` of `GET /v1/audit`. */
export const AUDIT_QUERY = limitQuery('audit records', 4, 50);

/** The `:command` of `POST /v1/services/:name/rollout/:command`. */
export const ROLLOUT_COMMANDS: readonly RolloutCommandJson[] = ['promote', 'abort', 'pause', 'resume'];

const count = (what: string) =>
  z
    .string()
    .regex(/^[0-9]{1,9}$/, `${what} must be a whole number ≥ 0`)
    .transform(Number);
const service = z.string().min(1).max(NAME_MAX);
const SERVICE_FIX = 'name one declared service, as ?service=web';

/** Routes that take no query parameters refuse any, so a misspelt one is not silently ignored. */
export const NO_QUERY: Checked<Record<string, never>> = { schema: z.strictObject({}), fixes: {} };

/** Routes that take no body fields refuse any (an empty body or `{}` is fine). */
export const NO_BODY = NO_QUERY;

/** `?service=` of `GET /v1/status` and `GET /v1/instances`. */
export const SERVICE_QUERY: Checked<{ service?: string }> = {
  schema: z.strictObject({ service: service.optional() }),
  fixes: { service: SERVICE_FIX },
};

/** `?tail=` of `GET /v1/instances/:id/logs`. */
export const LOGS_QUERY: Checked<{ tail?: number }> = {
  schema: z.strictObject({ tail: count('tail').optional() }),
  fixes: { tail: 'give the number of lines, as ?tail=100, or leave it out for all' },
};

/** `?since=&service=&limit=` of `GET /v1/events`. */
export const EVENTS_QUERY: Checked<{ since?: number; service?: string; limit?: number }> = {
  schema: z.strictObject({
    since: count('since').optional(),
    service: service.optional(),
    limit: count('limit').pipe(z.number().min(1).max(MAX_READ_LIMIT)).optional(),
  }),
  fixes: {
    since: 'give the last sequence number seen, as ?since=42 (0 for the start)',
    service: SERVICE_FIX,
    limit: `give a number from 1 to ${MAX_READ_LIMIT}`,
  },
};

/** `?instance=&service=` of `GET /v1/verify`: one instance, a service's, or all. */
export const VERIFY_QUERY: Checked<VerifyRequest> = {
  schema: z.strictObject({
    instance: z.string().min(1).max(NAME_MAX).optional(),
    service: service.optional(),
  }),
  fixes: { instance: 'name a live instance, as kiln instances lists them', service: SERVICE_FIX },
};

/** `POST /v1/instances/:id/exec`. */
export const EXEC_REQUEST: Checked<ExecRequest> = {
  schema: z.strictObject({
    command: z
      .array(z.string().max(64 * 1024))
      .min(1)
      .max(4096)
      .refine((c) => c[0] !== '', 'must name a program first'),
    tty: z.boolean().optional(),
  }),
  fixes: {
    command: 'give the program and its arguments as a list of strings, such as ["/bin/sh", "-c", "ls /"]',
    tty: 'give true to allocate a terminal, or leave it out',
  },
};

/** `POST /v1/exec/:session/end`. */
export const EXEC_END_REQUEST: Checked<ExecEndRequest> = {
  schema: z.strictObject({ exitCode: z.number().int().min(0).max(255).optional() }),
  fixes: { exitCode: "give the command's exit status, a whole number from 0 to 255, or leave it out" },
};

/** The query string checked against `checked`; a parameter given twice is refused. */
export function parseQuery<T>(query: URLSearchParams, checked: Checked<T>): T {
  // No prototype: `?__proto__=x` is a parameter like any other (refused as unknown), not dropped.
  const raw = Object.create(null) as Record<string, string>;
  const issues: ValidationIssue[] = [];
  for (const key of new Set(query.keys())) {
    const values = query.getAll(key);
    if (values.length > 1)
      issues.push({ path: key, message: 'is given more than once', fix: 'give it once' });
    raw[key] = values[0]!;
  }
  return check('query', raw, checked, issues);
}

/** The JSON body checked against `checked`; an empty body counts as `{}`. */
export function parseBody<T>(body: Buffer, checked: Checked<T>): T {
  let raw: unknown = {};
  if (body.length > 0) {
    try {
      raw = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new ValidationError('request body', [
        {
          path: '',
          message: `is not JSON (${(err as Error).message})`,
          fix: 'send a JSON object, such as {"reason": "fix the login page"}',
        },
      ]);
    }
  }
  return check('request body', raw, checked, []);
}

function check<T>(what: string, raw: unknown, checked: Checked<T>, issues: ValidationIssue[]): T {
  const parsed = checked.schema.safeParse(raw, { reportInput: true });
  if (!parsed.success) issues.push(...parsed.error.issues.map((i) => toIssue(i, checked.fixes)));
  if (issues.length > 0 || !parsed.success) throw new ValidationError(what, issues);
  return parsed.data;
}

function toIssue(issue: z.core.$ZodIssue, fixes: Fixes): ValidationIssue {
  const known = Object.keys(fixes).join(', ');
  if (issue.code === 'unrecognized_keys') {
    return {
      path: issue.path.join('.'),
      message: `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`,
      fix:
        known === ''
          ? 'remove it: none is taken here'
          : `remove it or check its spelling; the fields are ${known}`,
    };
  }
  const field = String(issue.path[0] ?? '');
  if (field === '') {
    return { path: '', message: 'must be a JSON object', fix: `send an object with some of ${known}` };
  }
  const message =
    issue.code === 'invalid_type'
      ? `must be a ${issue.expected}, not ${describe(issue.input)}`
      : issue.code === 'invalid_value'
        ? `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`
        : issue.message;
  const fix = fixes[field];
  return { path: issue.path.join('.'), message, ...(fix === undefined ? {} : { fix }) };
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
