/**
 * The routes of known state and security (part of {@link ROUTES}): `kiln verify`, `kiln exec`'s
 * session and `kiln audit`'s report. docs/api.md documents each.
 */
import type { Reply, Route } from './routes.js';
import {
  EXEC_END_REQUEST,
  EXEC_REQUEST,
  NO_BODY,
  NO_QUERY,
  parseBody,
  parseQuery,
  VERIFY_QUERY,
} from './validate.js';

const ok = (json: unknown): Reply => ({ status: 200, json });

export const SECURITY_ROUTES: readonly Route[] = [
  {
    method: 'GET',
    path: '/v1/verify',
    // `read`, though drift found taints the instance: that is what the background check does on
    // its next round anyway. Verifying asks for the check now; it changes no desired state.
    scope: 'read',
    handle: async (ctx) => ok(await ctx.plane.verify(parseQuery(ctx.query, VERIFY_QUERY))),
  },
  {
    method: 'POST',
    path: '/v1/instances/:id/exec',
    // `admin`, not `deploy`: a shell in an instance runs anything, unsigned, as the instance's user,
    // around every check a deploy passes (signed image, known state). Break-glass, for operators.
    scope: 'admin',
    audit: (p) => ({ action: 'exec', target: p.id! }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      const request = parseBody(await ctx.body(), EXEC_REQUEST);
      return { status: 201, json: await ctx.plane.execOpen(ctx.params.id!, request, ctx.caller.name) };
    },
  },
  {
    method: 'POST',
    path: '/v1/exec/:session/heartbeat',
    scope: 'admin',
    audit: (p) => ({ action: 'exec.heartbeat', target: p.session! }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      parseBody(await ctx.body(), NO_BODY);
      return ok(await ctx.plane.execHeartbeat(ctx.params.session!, ctx.caller.name));
    },
  },
  {
    method: 'POST',
    path: '/v1/exec/:session/end',
    scope: 'admin',
    audit: (p) => ({ action: 'exec.end', target: p.session! }),
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      const request = parseBody(await ctx.body(), EXEC_END_REQUEST);
      return ok(await ctx.plane.execEnd(ctx.params.session!, request, ctx.caller.name));
    },
  },
  {
    method: 'GET',
    path: '/v1/audit/report',
    // `read`, as `/v1/audit`: digests, signers, SBOMs and taints hold no secret.
    scope: 'read',
    handle: async (ctx) => {
      parseQuery(ctx.query, NO_QUERY);
      return ok(await ctx.plane.securityReport());
    },
  },
];
