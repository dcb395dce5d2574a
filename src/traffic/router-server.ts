/**
 * The router process's core: a {@link LocalRouter} fed from and saved to a state file, behind an
 * admin API on its own loopback port. `router-main.ts` runs this as a detached process.
 *
 * Admin API (JSON unless noted; every path but `/healthz` needs `Authorization: Bearer <token>`):
 * - `GET /healthz` → `{ status: 'ok', pid }`
 * - `GET /v1/routes` → `ServiceRoute[]`; `GET /v1/routes/:service` → `ServiceRoute`
 * - `PUT /v1/routes/:service` with a `ServiceRoute` → `{ listenPort }`
 * - `DELETE /v1/routes/:service` → 204
 * - `POST /v1/routes/:service/backends/:id/drain` with `{ timeoutMs? }` → 204 once drained
 * - `GET /v1/metrics` → `BackendMetrics[]`; `GET /metrics` → Prometheus text 0.0.4
 * - `GET /v1/totals` → `ServiceTotals[]`
 * Errors are `{ error: { code, message, issues? } }` with the status from {@link httpStatusOf}.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConflictError, KilnError, NotFoundError, ValidationError, wrap } from '../errors/index.js';
import { DEFAULT_ROUTER_HOST, LocalRouter } from './local-router.js';
import { PROMETHEUS_CONTENT_TYPE, prometheusText } from './metrics.js';
import type { DrainOptions, ServiceRoute } from './router.js';
import { loadRouterState, saveRouterState } from './state-file.js';

/** Largest admin request body accepted: 1 MiB. */
export const MAX_ADMIN_BODY_BYTES = 1 << 20;

/** Options for {@link startRouterServer}. */
export interface RouterServerOptions {
  /** Loopback port of the admin API; 0 = any free port (see the result's `adminPort`). */
  readonly adminPort: number;
  /** Bearer token the admin API requires. */
  readonly token: string;
  /** Where routes are kept across restarts; created on the first change. */
  readonly stateFile: string;
  /**
   * Address for the admin API and every service.
   * @default DEFAULT_ROUTER_HOST
   */
  readonly host?: string;
  /** Where to report start, changes and failures. */
  readonly log?: (line: string) => void;
}

/** A running router server. */
export interface RunningRouterServer {
  readonly adminPort: number;
  /** The router itself, for callers in the same process. */
  readonly router: LocalRouter;
  /** Stops the admin API and every service listener. */
  close(): Promise<void>;
}

/** The HTTP status for an error: the one place the admin API maps kiln's errors. */
export function httpStatusOf(err: unknown): number {
  if (!(err instanceof KilnError)) return 500;
  switch (err.code) {
    case 'validation':
      return 400;
    case 'not-found':
      return 404;
    case 'conflict':
      return 409;
    case 'integrity':
      return 422;
    case 'unavailable':
      return 503;
    default:
      return 500;
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function send(res: http.ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res
    .writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    .end(text);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY_BYTES) {
      throw new ValidationError(undefined, [
        {
          path: '',
          message: `request body over ${MAX_ADMIN_BODY_BYTES} bytes`,
          fix: 'send one route per request',
        },
      ]);
    }
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new ValidationError(undefined, [
      { path: '', message: `body is not JSON: ${(err as Error).message}` },
    ]);
  }
}

function notFound(method: string, path: string): KilnError {
  return new NotFoundError(`no admin endpoint ${method} ${path}; see docs/traffic.md for the admin API`);
}

/** Serves one admin request; throws kiln errors that the caller maps to a status. */
async function handle(
  router: LocalRouter,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const method = req.method ?? 'GET';
  const path = (req.url ?? '/').split('?')[0]!;
  const parts = path
    .split('/')
    .filter((p) => p !== '')
    .map(decodeURIComponent);
  if (method === 'GET' && path === '/metrics') {
    const text = prometheusText(await router.metrics());
    res
      .writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) })
      .end(text);
    return;
  }
  if (parts[0] !== 'v1') throw notFound(method, path);
  if (parts[1] === 'totals' && parts.length === 2 && method === 'GET')
    return send(res, 200, await router.totals());
  if (parts[1] === 'metrics' && parts.length === 2 && method === 'GET')
    return send(res, 200, await router.metrics());
  if (parts[1] !== 'routes') throw notFound(method, path);
  const service = parts[2];
  if (service === undefined) {
    if (method === 'GET') return send(res, 200, await router.routes());
    throw notFound(method, path);
  }
  if (parts.length === 3) {
    if (method === 'GET') {
      const route = (await router.routes()).find((r) => r.service === service);
      if (route === undefined) throw new NotFoundError(`no route for service ${service}`);
      return send(res, 200, route);
    }
    if (method === 'PUT') {
      const body = (await readJson(req)) as Partial<ServiceRoute>;
      if (body.service !== undefined && body.service !== service) {
        throw new ValidationError(undefined, [
          {
            path: 'service',
            message: `body names ${body.service} but the path names ${service}`,
            fix: 'make them match',
          },
        ]);
      }
      return send(res, 200, await router.setRoute({ ...body, service } as ServiceRoute));
    }
    if (method === 'DELETE') {
      await router.removeRoute(service);
      return send(res, 204);
    }
  }
  if (parts.length === 6 && parts[3] === 'backends' && parts[5] === 'drain' && method === 'POST') {
    const body = (await readJson(req)) as DrainOptions;
    if (body.timeoutMs !== undefined && !(Number.isInteger(body.timeoutMs) && body.timeoutMs >= 0)) {
      throw new ValidationError(undefined, [
        {
          path: 'timeoutMs',
          message: `invalid drain timeout ${JSON.stringify(body.timeoutMs)}`,
          fix: 'use whole milliseconds ≥ 0',
        },
      ]);
    }
    await router.drain(service, parts[4]!, body.timeoutMs === undefined ? {} : { timeoutMs: body.timeoutMs });
    return send(res, 204);
  }
  throw notFound(method, path);
}

/**
 * Starts the router: loads the state file, serves every route in it on its saved port, then opens
 * the admin API. Every change is saved to the state file before it is acknowledged.
 *
 * @example
 * const server = await startRouterServer({ adminPort: 0, token, stateFile: '.kiln/router/state.json' });
 * // … later
 * await server.close();
 */
export async function startRouterServer(options: RouterServerOptions): Promise<RunningRouterServer> {
  if (options.token.length < 16) {
    throw new ValidationError(undefined, [
      {
        path: 'token',
        message: 'the admin token is shorter than 16 characters',
        fix: 'generate one: openssl rand -hex 32',
      },
    ]);
  }
  const host = options.host ?? DEFAULT_ROUTER_HOST;
  const log = options.log ?? (() => undefined);
  const saved = await loadRouterState(options.stateFile);
  let loading = true;
  const router = new LocalRouter({
    host,
    log,
    onChange: (routes) => (loading ? Promise.resolve() : saveRouterState(options.stateFile, routes)),
  });
  try {
    for (const route of saved) await router.setRoute(route);
  } catch (err) {
    await router.close();
    throw wrap(`serving the routes saved in ${options.stateFile} (is another router using it?)`, err);
  }
  loading = false;
  const expected = sha256(`Bearer ${options.token}`);
  const admin = http.createServer((req, res) => {
    if (req.url === '/healthz' && req.method === 'GET')
      return send(res, 200, { status: 'ok', pid: process.pid });
    if (!timingSafeEqual(sha256(req.headers.authorization ?? ''), expected)) {
      res.setHeader('www-authenticate', 'Bearer');
      return send(res, 401, {
        error: {
          code: 'unauthorized',
          message: 'missing or wrong bearer token; send Authorization: Bearer <token>',
        },
      });
    }
    handle(router, req, res).catch((err: unknown) => {
      const status = httpStatusOf(err);
      if (status === 500)
        log(`admin ${req.method} ${req.url}: ${err instanceof Error ? err.stack : String(err)}`);
      const e = err instanceof KilnError ? err : wrap('admin request', err);
      if (!res.headersSent) {
        send(res, status, {
          error: {
            code: e.code,
            message: e.message,
            ...(e instanceof ValidationError ? { issues: e.issues } : {}),
          },
        });
      } else res.destroy();
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      admin.once('error', reject);
      admin.listen(options.adminPort, host, resolve);
    });
  } catch (err) {
    await router.close();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new ConflictError(
        `opening the router admin API: ${host}:${options.adminPort} is taken; is another router running? choose another admin port`,
      );
    }
    throw wrap(`opening the router admin API on ${host}:${options.adminPort}`, err);
  }
  const adminPort = (admin.address() as AddressInfo).port;
  log(`router ${process.pid} serving ${saved.length} routes; admin API on ${host}:${adminPort}`);
  return {
    adminPort,
    router,
    close: async () => {
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      await router.close();
    },
  };
}
