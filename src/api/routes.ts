/**
 * The API's routes: one table of method, path, the scope it needs and a handler that checks its
 * input and calls the {@link ControlPlane}. Every route needs a token; every mutating one names
 * what the audit log calls it. docs/api.md documents each.
 */
import type { TokenScope } from '../state/index.js';
import type { Caller } from './auth.js';
import type { ControlPlane, HealthJson, RolloutCommandJson } from './types.js';
import {
  AUDIT_QUERY,
  CHAOS_REPORT_QUERY,
  CHAOS_RUN_REQUEST,
  CHAOS_RUNS_QUERY,
  DEPLOY_REQUEST,
  EVENTS_QUERY,
  LOGS_QUERY,
  NO_BODY,
  NO_QUERY,
  parseBody,
  parseQuery,
  RING_REQUEST,
  RINGS_QUERY,
  ROLLBACK_REQUEST,
  ROLLOUT_COMMAND_REQUEST,
  ROLLOUT_COMMANDS,
  SERVICE_QUERY,
  TOKEN_REQUEST,
} from './validate.js';
import { ValidationError } from '../errors/index.js';
import { SECURITY_ROUTES } from './routes-security.js';

/** What a handler gets: the plane, the path's parameters, the query, the caller and the body. */
export interface RouteContext {
  readonly plane: ControlPlane;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The verified token's owner. */
  readonly caller: Caller;
  readonly version: string;
  /** Reads the request body (at most MAX_BODY_BYTES). */
  body(): Promise<Buffer>;
}

/** A handler's answer: JSON or plain text, with its status. */
export type Reply =
  { readonly status: number; readonly json: unknown } | { readonly status: number; readonly text: string };

/** What the audit log calls a mutating call, and what it acts on. */
export interface AuditSubject {
  /** Such as `deploy` or `token.revoke`, as the plane records it. */
  readonly action: string;
  /** The service or token the path names, else the route's path (the body is not read yet). */
  readonly target: string;
}

/** One route. Every route needs a token with `scope` (or a broader one). */
export interface Route {
  readonly method: 'GET' | 'POST';
  /** Such as `/v1/services/:name/deploy`; `:x` matches one non-empty path segment. */
  readonly path: string;
  readonly scope: TokenScope;
  /**
   * Mutating routes: their name in the audit log, which the server records a call under when it
   * refuses it before the plane sees it (401, 403, a bad request); the plane records the rest.
   */
  readonly audit?: (params: Readonly<Record<string, string>>) => AuditSubject;
  handle(ctx: RouteContext): Promise<Reply>;
}

const ok = (json: unknown): Reply => ({ status: 200, json });
/** 202: the rollout was started and proceeds; 200 when nothing had to change. */
const accepted = (json: { readonly unchanged?: boolean }): Reply => ({
  status: json.unchanged === true ? 200 : 202,
  json,
});

/** Every route the server answers. */
export const ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/v1/health',
    // `read`, as every route: a probe that must not hold a token can take a 401 as a sign of life.
    scope: 'read',
    handle: async (ctx) => ok({ ok: true, version: ctx.version, pid: process.pid } satisfies HealthJson),
  },
  {
    method: 'GET',
    path: '/v1/status',
    scope: 'read',
    handle: async (ctx) => ok(await ctx.plane.status(parseQuery(ctx.query, SERVICE_QUERY).service)),
  },
  {
    method: 'GET',
    path: '/v1/services/:name/releases',
    scope: 'read',
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      return ok(await ctx.plane.releases(ctx.params.name!));
    },
  },
  {
    method: 'GET',
    path: '/v1/instances',
    scope: 'read',
    handle: async (ctx) => ok(await ctx.plane.instances(parseQuery(ctx.query, SERVICE_QUERY).service)),
  },
  {
    method: 'GET',
    path: '/v1/instances/:id/logs',
    scope: 'read',
    handle: async (ctx) => ({
      status: 200,
      text: await ctx.plane.logs(ctx.params.id!, parseQuery(ctx.query, LOGS_QUERY).tail),
    }),
  },
  {
    method: 'POST',
    path: '/v1/services/:name/deploy',
    scope: 'deploy',
    audit: (p) => ({ action: 'deploy', target: p.name! }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      const request = parseBody(await ctx.body(), DEPLOY_REQUEST);
      return accepted(await ctx.plane.deploy(ctx.params.name!, request, ctx.caller.name));
    },
  },
  {
    method: 'POST',
    path: '/v1/services/:name/rollback',
    scope: 'deploy',
    audit: (p) => ({ action: 'rollback', target: p.name! }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      const request = parseBody(await ctx.body(), ROLLBACK_REQUEST);
      return accepted(await ctx.plane.rollback(ctx.params.name!, request, ctx.caller.name));
    },
  },
  {
    method: 'GET',
    path: '/v1/services/:name/rollout',
    scope: 'read',
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      return ok(await ctx.plane.serviceRollout(ctx.params.name!));
    },
  },
  {
    method: 'POST',
    path: '/v1/services/:name/rollout/:command',
    scope: 'deploy',
    // An unknown command is recorded as such: the path's segment may be any length, an action may not.
    audit: (p) => ({
      action: (ROLLOUT_COMMANDS as readonly string[]).includes(p.command!)
        ? `rollout.${p.command!}`
        : 'rollout.unknown',
      target: p.name!,
    }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      const command = ctx.params.command!;
      if (!(ROLLOUT_COMMANDS as readonly string[]).includes(command)) {
        throw new ValidationError(undefined, [
          {
            path: 'command',
            message: `${JSON.stringify(command)} is not a rollout command`,
            fix: `use one of ${ROLLOUT_COMMANDS.join(', ')}`,
          },
        ]);
      }
      const request = parseBody(await ctx.body(), ROLLOUT_COMMAND_REQUEST);
      return ok(
        await ctx.plane.controlRollout(
          ctx.params.name!,
          command as RolloutCommandJson,
          request,
          ctx.caller.name,
        ),
      );
    },
  },
  {
    method: 'POST',
    path: '/v1/rings',
    scope: 'deploy',
    audit: () => ({ action: 'ring.start', target: '/v1/rings' }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      const request = parseBody(await ctx.body(), RING_REQUEST);
      return { status: 202, json: await ctx.plane.startRing(request, ctx.caller.name) };
    },
  },
  {
    method: 'GET',
    path: '/v1/rings',
    scope: 'read',
    handle: async (ctx) => ok(await ctx.plane.rings(parseQuery(ctx.query, RINGS_QUERY).limit)),
  },
  {
    method: 'POST',
    path: '/v1/chaos/runs',
    scope: 'deploy',
    audit: () => ({ action: 'chaos.run', target: '/v1/chaos/runs' }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      const request = parseBody(await ctx.body(), CHAOS_RUN_REQUEST);
      return { status: 202, json: await ctx.plane.chaosRun(request, ctx.caller.name) };
    },
  },
  {
    method: 'GET',
    path: '/v1/chaos/runs',
    scope: 'read',
    handle: async (ctx) => ok(await ctx.plane.chaosRuns(parseQuery(ctx.query, CHAOS_RUNS_QUERY).limit)),
  },
  {
    method: 'GET',
    path: '/v1/chaos/report',
    scope: 'read',
    handle: async (ctx) => ok(await ctx.plane.chaosReport(parseQuery(ctx.query, CHAOS_REPORT_QUERY).run)),
  },
  {
    method: 'GET',
    path: '/v1/rollouts/:id',
    scope: 'read',
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      return ok(await ctx.plane.rollout(ctx.params.id!));
    },
  },
  {
    method: 'GET',
    path: '/v1/metrics',
    scope: 'read',
    handle: async (ctx) => ok(await ctx.plane.metrics(parseQuery(ctx.query, SERVICE_QUERY).service)),
  },
  {
    method: 'GET',
    path: '/v1/events',
    scope: 'read',
    handle: async (ctx) => {
      const q = parseQuery(ctx.query, EVENTS_QUERY);
      return ok(await ctx.plane.events(q.since ?? 0, q.service, q.limit));
    },
  },
  {
    method: 'GET',
    path: '/v1/audit',
    // `read`: the audit log names token names and what they did, which every reader of the
    // fleet may know in kiln's threat model (one team, one control plane); secrets never appear.
    scope: 'read',
    handle: async (ctx) => ok(await ctx.plane.audit(parseQuery(ctx.query, AUDIT_QUERY).limit)),
  },
  {
    method: 'GET',
    path: '/v1/images',
    scope: 'read',
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      return ok(await ctx.plane.images());
    },
  },
  {
    method: 'GET',
    path: '/v1/tokens',
    // `admin`: who holds which scope is for the people who hand tokens out.
    scope: 'admin',
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      return ok(await ctx.plane.tokens());
    },
  },
  {
    method: 'POST',
    path: '/v1/tokens',
    scope: 'admin',
    audit: () => ({ action: 'token.create', target: '/v1/tokens' }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      const request = parseBody(await ctx.body(), TOKEN_REQUEST);
      return { status: 201, json: await ctx.plane.createToken(request, ctx.caller.name) };
    },
  },
  {
    method: 'POST',
    path: '/v1/tokens/:name/revoke',
    scope: 'admin',
    audit: (p) => ({ action: 'token.revoke', target: p.name! }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      parseBody(await ctx.body(), NO_BODY);
      return ok(await ctx.plane.revokeToken(ctx.params.name!, ctx.caller.name));
    },
  },
  ...SECURITY_ROUTES,
];

/** A route matched against a request path, with its parameters. */
export interface Match {
  readonly route: Route;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * The routes whose path matches `segments` (already split and decoded), whatever their method;
 * the caller answers 404 when there are none and 405 when none has the request's method.
 */
export function matchPath(segments: readonly string[], routes: readonly Route[] = ROUTES): Match[] {
  const out: Match[] = [];
  for (const route of routes) {
    const pattern = route.path.split('/').slice(1);
    if (pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const same = pattern.every((p, i) => {
      const s = segments[i]!;
      if (!p.startsWith(':')) return p === s;
      params[p.slice(1)] = s;
      return s !== '';
    });
    if (same) out.push({ route, params });
  }
  return out;
}
