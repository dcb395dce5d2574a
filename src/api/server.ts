/**
 * The control plane's HTTP API on node:http (node:https with a certificate): bearer tokens with
 * scopes on every route, the routes of {@link ROUTES}, JSON in and out, and kiln errors mapped to
 * HTTP status in one place ({@link errorAnswer}). docs/api.md documents it.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { ValidationError } from '../errors/index.js';
import { auditTarget, type AuditSink } from './audit.js';
import { authenticate, authorize, type Caller, type TokenVerifier } from './auth.js';
import { handleDashboard } from './dashboard/handler.js';
import { errorAnswer, HttpError, readBody, sendJson, sendText } from './http.js';
import { matchPath, type Match, type Reply } from './routes.js';
import type { OciStore } from '../oci/index.js';
import { Registry } from './registry-server.js';
import type { TlsMaterial } from './tls.js';
import type { ControlPlane } from './types.js';

/** The address the API listens on unless told otherwise: loopback only. */
export const DEFAULT_API_HOST = '127.0.0.1';

/** How long `close()` lets requests in flight finish before cutting their connections. */
export const DEFAULT_CLOSE_GRACE_MS = 5_000;

/** Options for {@link startApiServer}. */
export interface ApiServerOptions {
  /** What the routes call. */
  readonly plane: ControlPlane;
  /** Checks bearer tokens; the state store's `store.tokens` is one. */
  readonly tokens: TokenVerifier;
  /** kiln's version, answered by `GET /v1/health`. */
  readonly version: string;
  /** @default DEFAULT_API_HOST */
  readonly host?: string;
  /** 0 = any free port (see the result's `port`). @default 0 */
  readonly port?: number;
  /** Where failures of the server itself (500s) are reported. @default a line on stderr */
  readonly log?: (line: string) => void;
  /** @default DEFAULT_CLOSE_GRACE_MS */
  readonly closeGraceMs?: number;
  /**
   * Where the server records the mutating calls it refuses before the plane sees them (401, 403,
   * a bad request); the plane records the rest. The state store's `store.audit` is one.
   * @default nowhere
   */
  readonly audit?: AuditSink;
  /** Serve HTTPS with this certificate and key ({@link readTlsFiles} reads and checks them). @default plain HTTP */
  readonly tls?: TlsMaterial;
  /**
   * The image store to serve as an OCI registry under `/v2/` (docs/api.md, "Registry"), with the
   * same tokens. @default none: `/v2/` paths are routed like any other (401, else 404)
   */
  readonly registry?: OciStore;
}

/** A running API server. */
export interface ApiServer {
  /** `http://HOST:PORT` (`https://` with TLS), without a trailing slash. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting, lets requests in flight finish (up to the grace period) and closes every connection. */
  close(): Promise<void>;
}

/** The actor the audit log records for a call without a live token. */
const ANONYMOUS = 'anonymous';

/**
 * Starts the HTTP API and resolves once it listens.
 *
 * @example
 * const store = openState('.kiln/state.db');
 * const api = await startApiServer({ plane, tokens: store.tokens, version: kilnVersion() });
 * console.log(api.url); // http://127.0.0.1:41234
 * await api.close();
 */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const host = options.host ?? DEFAULT_API_HOST;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  let closing = false;
  const closed = new AbortController();
  const registry =
    options.registry &&
    new Registry({
      store: options.registry,
      tokens: options.tokens,
      log,
      ...(options.audit ? { audit: options.audit } : {}),
    });
  const handler: http.RequestListener = (req, res) => {
    // Once closing, every answer ends its connection so keep-alive clients let go.
    if (closing) res.setHeader('connection', 'close');
    serve(options, req, res, closed.signal, registry).catch((err: unknown) => {
      const answer = errorAnswer(err);
      if (answer.internal) {
        const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
        log(`kiln api: ${req.method ?? '?'} ${pathOf(req.url)} failed: ${detail}`);
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, answer.status, answer.body, answer.headers);
    });
  };
  const server = options.tls
    ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handler)
    : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let done: Promise<void> | undefined;
  return {
    url,
    port,
    close: () => {
      done ??= new Promise<void>((resolve, reject) => {
        closing = true;
        closed.abort(); // ends the dashboard's event streams
        registry?.close();
        const timer = setTimeout(
          () => server.closeAllConnections(),
          options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS,
        );
        server.close((err) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        });
        server.closeIdleConnections();
      });
      return done;
    },
  };
}

/**
 * Answers one request: `/v2…` goes to the registry when there is one, `/` and `/ui…` to the
 * dashboard (docs/api.md, "Dashboard"); the rest is
 * authenticated (so without a live token every path is a 401, known or not), routed, authorized
 * and handled. Throws what the caller maps to an error answer.
 */
async function serve(
  options: ApiServerOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  closing: AbortSignal,
  registry: Registry | undefined,
): Promise<void> {
  const method = req.method ?? 'GET';
  const rawUrl = req.url ?? '/';
  const q = rawUrl.indexOf('?');
  const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  if (registry && (path === '/v2' || path.startsWith('/v2/'))) {
    return registry.handle(req, res, path, new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1)));
  }
  if (path === '/' && (method === 'GET' || method === 'HEAD')) {
    res.writeHead(303, { location: '/ui/', 'content-length': '0' }).end();
    return;
  }
  if (path === '/ui' || path.startsWith('/ui/')) {
    const dashboard = {
      plane: options.plane,
      tokens: options.tokens,
      closing,
      ...(options.tls ? { secure: true } : {}),
      ...(options.audit ? { audit: options.audit } : {}),
    };
    return handleDashboard(dashboard, req, res, path);
  }
  const query = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
  let match: Match | undefined;
  let unrouted: unknown;
  try {
    match = route(method, path);
  } catch (err) {
    unrouted = err;
  }
  // A mutating call refused here never reaches the plane, which audits the rest: record it.
  const refused = (err: unknown, actor: string): unknown => {
    if (match !== undefined) recordRefusal(options, match, err, actor);
    return err;
  };
  let caller: Caller;
  try {
    caller = authenticate(req.headers.authorization, options.tokens);
  } catch (err) {
    throw refused(err, ANONYMOUS);
  }
  if (match === undefined) throw unrouted;
  const { route: found, params } = match;
  try {
    authorize(caller, found.scope, `${method} ${found.path}`);
  } catch (err) {
    throw refused(err, caller.name);
  }
  // The plane audits every call that reaches it; one the handler refuses first (a bad body or
  // query) is the server's to record. Handlers touch `plane` only to call it, after their checks.
  let reached = false;
  let reply: Reply;
  try {
    reply = await found.handle({
      get plane() {
        reached = true;
        return options.plane;
      },
      params,
      query,
      caller,
      version: options.version,
      body: () => readBody(req),
    });
  } catch (err) {
    throw reached ? err : refused(err, caller.name);
  }
  if ('text' in reply) sendText(res, reply.status, reply.text);
  else sendJson(res, reply.status, reply.json);
}

/**
 * Appends a mutating call the server refused (401 or 403: `denied`; else `failed`) to the audit
 * log, with the message its caller was answered. A GET is not recorded.
 */
function recordRefusal(options: ApiServerOptions, match: Match, err: unknown, actor: string): void {
  if (match.route.audit === undefined || options.audit === undefined) return;
  const { action, target } = match.route.audit(match.params);
  const { status, body } = errorAnswer(err);
  try {
    options.audit.append({
      actor,
      action,
      target: auditTarget(target),
      result: status === 401 || status === 403 ? 'denied' : 'failed',
      detail: body.error.message,
    });
  } catch (auditErr) {
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    log(`kiln api: recording a refused ${action} in the audit log failed: ${String(auditErr)}`);
  }
}

/** The route for `method` and `path`; throws 404 when no route has the path, 405 when none has the method. */
function route(method: string, path: string): Match {
  const matches = path.startsWith('/') ? matchPath(decodeSegments(path)) : [];
  if (matches.length === 0) {
    throw new HttpError(404, 'not-found', `no route ${method} ${path}: the routes are listed in docs/api.md`);
  }
  const match = matches.find((m) => m.route.method === method);
  if (match === undefined) {
    const allow = [...new Set(matches.map((m) => m.route.method))].join(', ');
    throw new HttpError(405, 'method-not-allowed', `${path} answers ${allow}, not ${method}`, { allow });
  }
  return match;
}

function decodeSegments(path: string): string[] {
  return path
    .split('/')
    .slice(1)
    .map((segment) => {
      try {
        return decodeURIComponent(segment);
      } catch {
        throw new ValidationError('path', [
          {
            path: '',
            message: `${JSON.stringify(segment)} is not a valid percent-encoded path segment`,
            fix: 'encode names with encodeURIComponent',
          },
        ]);
      }
    });
}

function pathOf(url: string | undefined): string {
  return (url ?? '/').split('?')[0]!;
}
