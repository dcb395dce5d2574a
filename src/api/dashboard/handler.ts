/**
 * The dashboard under `/ui`, served by the API server with the same tokens. The login form posts a
 * token; its secret becomes the `kiln_session` cookie (HttpOnly, SameSite=Strict, Path=/ui) and is
 * verified again on every request, so a revoked token logs out at once. Actions are POSTs that also
 * need `HX-Request: true` (CSRF: a cross-site form cannot set it) and the `deploy` scope; one
 * refused for either is recorded in the audit log (the plane records the ones it carries out).
 */
import type http from 'node:http';
import { KilnError } from '../../errors/index.js';
import type { AuditSink } from '../audit.js';
import { hasScope, type TokenVerifier } from '../auth.js';
import { errorAnswer, readBody } from '../http.js';
import type { ControlPlane, DeployRequest, RolloutCommandJson } from '../types.js';
import { DEPLOY_REQUEST, parseBody } from '../validate.js';
import { asset } from './assets.js';
import { streamEvents } from './events.js';
import type { Html } from './html.js';
import { errorPage, loginPage, type Session } from './layout.js';
import { auditPage, chaosPage, imagesPage, overviewPage, servicesTable } from './pages.js';
import {
  instancesSection,
  releasesSection,
  rolloutSection,
  SECTIONS,
  servicePage,
  type SectionName,
} from './service.js';

/** The session cookie's name. */
export const SESSION_COOKIE = 'kiln_session';
const COOKIE_FLAGS = 'HttpOnly; SameSite=Strict; Path=/ui';

/** What the dashboard needs from the server. */
export interface DashboardOptions {
  readonly plane: ControlPlane;
  readonly tokens: TokenVerifier;
  /** Fires when the server closes, to end event streams. */
  readonly closing?: AbortSignal;
  /** Served over HTTPS: the session cookie gets `Secure`. @default false */
  readonly secure?: boolean;
  /** Where refused actions are recorded. @default nowhere */
  readonly audit?: AuditSink;
}

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
};

function send(
  res: http.ServerResponse,
  status: number,
  body: string | Html,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = typeof body === 'string' ? body : body.value;
  res
    .writeHead(status, {
      ...PAGE_HEADERS,
      ...headers,
      'content-type': 'text/html; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
    })
    .end(text);
}

function redirect(
  res: http.ServerResponse,
  location: string,
  headers: Readonly<Record<string, string>> = {},
) {
  res.writeHead(303, { ...headers, location, 'cache-control': 'no-store', 'content-length': '0' }).end();
}

/** The cookies of a request, by name (the first of a name wins). */
export function cookiesOf(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

function sessionOf(req: http.IncomingMessage, tokens: TokenVerifier): Session | undefined {
  const secret = cookiesOf(req.headers.cookie).get(SESSION_COOKIE);
  if (secret === undefined || secret === '') return undefined;
  const token = tokens.verify(secret);
  return token === undefined ? undefined : { name: token.name, scopes: token.scopes };
}

async function formOf(req: http.IncomingMessage): Promise<URLSearchParams> {
  return new URLSearchParams((await readBody(req)).toString('utf8'));
}

/**
 * Answers one request whose path starts with `/ui`. `path` is the raw path (no query), still
 * percent-encoded.
 */
export async function handleDashboard(
  options: DashboardOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  path: string,
): Promise<void> {
  const method = req.method ?? 'GET';
  if (path === '/ui') return redirect(res, '/ui/');
  if (path.startsWith('/ui/assets/')) {
    const found = method === 'GET' || method === 'HEAD' ? asset(path.slice('/ui/assets/'.length)) : undefined;
    if (!found) return send(res, 404, 'no such asset');
    res.writeHead(200, {
      'content-type': found.type,
      'content-length': String(found.body.length),
      'cache-control': found.cacheControl,
      'x-content-type-options': 'nosniff',
    });
    res.end(method === 'HEAD' ? undefined : found.body);
    return;
  }
  if (path === '/ui/login') {
    if (method === 'GET') return send(res, 200, loginPage());
    if (method !== 'POST') return send(res, 405, 'GET or POST', { allow: 'GET, POST' });
    const secret = (await formOf(req)).get('token')?.trim() ?? '';
    const token = secret === '' ? undefined : options.tokens.verify(secret);
    if (token === undefined) {
      const why =
        secret === ''
          ? 'Enter a token.'
          : 'That token is malformed, unknown or revoked: use a live token of this control plane.';
      return send(res, 401, loginPage(why));
    }
    return redirect(res, '/ui/', { 'set-cookie': `${SESSION_COOKIE}=${secret}; ${cookieFlags(options)}` });
  }

  const session = sessionOf(req, options.tokens);
  if (session === undefined) {
    if (method === 'GET' || method === 'HEAD') return redirect(res, '/ui/login');
    return send(res, 401, '<p class="error">Your session has ended: log in again.</p>', {
      'hx-redirect': '/ui/login',
    });
  }
  if (path === '/ui/logout') {
    if (method !== 'POST') return send(res, 405, 'POST', { allow: 'POST' });
    const cleared = { 'set-cookie': `${SESSION_COOKIE}=; ${cookieFlags(options)}; Max-Age=0` };
    if (req.headers['hx-request'] === 'true')
      return send(res, 200, '', { ...cleared, 'hx-redirect': '/ui/login' });
    return redirect(res, '/ui/login', cleared);
  }
  try {
    if (method === 'POST') return await action(options, req, res, path, session);
    if (method !== 'GET' && method !== 'HEAD') return send(res, 405, 'GET or POST', { allow: 'GET, POST' });
    return await view(options, res, path, session);
  } catch (err) {
    if (!(err instanceof KilnError) || res.headersSent) throw err;
    const answer = errorAnswer(err);
    if (answer.internal) throw err;
    return send(res, answer.status, errorPage(session, answer.status, err.message));
  }
}

function cookieFlags(options: DashboardOptions): string {
  return options.secure ? `${COOKIE_FLAGS}; Secure` : COOKIE_FLAGS;
}

/** The segments after `/ui/`, decoded; undefined when one is not valid percent-encoding. */
function segmentsOf(path: string): string[] | undefined {
  try {
    return path.slice('/ui/'.length).split('/').map(decodeURIComponent);
  } catch {
    return undefined;
  }
}

async function view(options: DashboardOptions, res: http.ServerResponse, path: string, session: Session) {
  const { plane } = options;
  const s = segmentsOf(path);
  const notFound = () => send(res, 404, errorPage(session, 404, `no dashboard page ${path}`));
  if (s === undefined) return notFound();
  const [first, name, third, fourth, ...rest] = s;
  if (s.length === 1) {
    if (first === '') return send(res, 200, await overviewPage(plane, session));
    if (first === 'images') return send(res, 200, await imagesPage(plane, session));
    if (first === 'chaos') return send(res, 200, await chaosPage(plane, session));
    if (first === 'audit') return send(res, 200, await auditPage(plane, session));
    if (first === 'events') return streamEvents(plane, res, options.closing);
  }
  if (s.length === 2 && first === 'fragment' && name === 'services') {
    return send(res, 200, await servicesTable(plane));
  }
  if (first !== 'services' || !name || rest.length > 0) return notFound();
  if (third === undefined) return send(res, 200, await servicePage(plane, name, session));
  if (third === 'fragment' && (SECTIONS as readonly string[]).includes(fourth ?? '')) {
    return send(res, 200, await section(plane, name, fourth as SectionName, session));
  }
  return notFound();
}

function section(plane: ControlPlane, service: string, name: SectionName, session: Session): Promise<Html> {
  if (name === 'releases') return releasesSection(plane, service);
  if (name === 'instances') return instancesSection(plane, service);
  return rolloutSection(plane, service, session);
}

const forbidden = (what: string) => `<p class="error">${what}</p>`;

async function action(
  options: DashboardOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  path: string,
  session: Session,
) {
  const { plane } = options;
  const s = segmentsOf(path);
  const [first, service, verb, command, ...rest] = s ?? [];
  const known =
    first === 'services' &&
    !!service &&
    rest.length === 0 &&
    (((verb === 'rollback' || verb === 'deploy') && command === undefined) ||
      (verb === 'rollout' && (command === 'promote' || command === 'abort')));
  // The plane audits the actions it carries out; the ones refused before it are recorded here.
  const record = (result: 'denied' | 'failed', why: string) => {
    if (!known) return;
    const action = verb === 'rollout' ? `rollout.${command}` : verb;
    options.audit?.append({
      actor: session.name,
      action,
      target: service,
      result,
      detail: `dashboard: ${why}`,
    });
  };
  const refuse = (why: string) => {
    record('denied', why);
    return send(res, 403, forbidden(why));
  };
  if (req.headers['hx-request'] !== 'true') {
    return refuse('Refused: dashboard actions must come from the dashboard itself (HX-Request: true).');
  }
  if (!known) return send(res, 404, forbidden(`No dashboard action ${path}.`));
  if (!hasScope(session.scopes, 'deploy')) {
    return refuse(
      `Token '${session.name}' has scope ${session.scopes.join(', ') || 'none'}: this needs 'deploy' (or 'admin').`,
    );
  }
  const form = await formOf(req);
  let request: DeployRequest = {};
  try {
    if (verb === 'deploy') request = deployRequest(form);
  } catch (err) {
    if (!(err instanceof KilnError)) throw err;
    record('failed', err.message);
    return send(res, 200, await rolloutSection(plane, service, session, err.message));
  }
  let error: string | undefined;
  try {
    if (verb === 'rollback') await plane.rollback(service, {}, session.name);
    else if (verb === 'deploy') await plane.deploy(service, request, session.name);
    else await plane.controlRollout(service, command as RolloutCommandJson, {}, session.name);
  } catch (err) {
    if (!(err instanceof KilnError) || errorAnswer(err).internal) throw err;
    error = err.message;
  }
  return send(res, 200, await rolloutSection(plane, service, session, error));
}

function deployRequest(form: URLSearchParams): DeployRequest {
  const image = form.get('image')?.trim();
  const reason = form.get('reason')?.trim();
  const body = {
    ...(image ? { image } : {}),
    ...(reason ? { reason } : {}),
  };
  return parseBody(Buffer.from(JSON.stringify(body)), DEPLOY_REQUEST);
}
