/**
 * The request path of the built-in router: an HTTP/1.1 reverse proxy that streams bodies, strips
 * hop-by-hop headers, adds `x-forwarded-*` and `via`, and retries idempotent requests on another
 * backend when the connection fails before any response byte. A backend that takes no connection
 * within {@link DEFAULT_CONNECT_TIMEOUT_MS} is treated as lost until it answers again.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { BackendCounters } from './metrics.js';
import type { Backend } from './router.js';

/** Idle keep-alive sockets to a backend are closed after this long: 4 s, below Node's 5 s server default. */
export const DEFAULT_IDLE_SOCKET_TIMEOUT_MS = 4_000;
/** How many times a failed request is retried on another backend. */
export const DEFAULT_MAX_RETRIES = 2;
/** A backend that refused a connection, or took none in time, is skipped this long, unless every backend is. */
export const DEFAULT_FAIL_TIMEOUT_MS = 2_000;
/**
 * A connection to a backend not made within this long has failed (`ETIMEDOUT`): 2 s, as the
 * HAProxy router's `timeout connect`. A host that is up answers a SYN at once, even when busy;
 * silence means the host or its network is gone, as with a lost node.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 2_000;

/** One backend as the request path sees it: its address, a keep-alive agent, its counters. */
export class BackendState {
  readonly agent: http.Agent;
  /** Weight and address as last set; the picker copies weights, so changing this alone routes nothing. */
  backend: Backend;
  draining = false;
  downUntil = 0;
  /** Requests on this state's agent (the counters' `inFlight` spans every address the id had). */
  inFlight = 0;
  /** Idempotent requests without a body still waiting for this backend's answer: safe to move. */
  readonly waiting = new Set<http.ClientRequest>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    backend: Backend,
    readonly counters: BackendCounters,
  ) {
    this.backend = backend;
    // LIFO hands out the most recently used socket, so idle ones age out instead of being kept warm.
    this.agent = new http.Agent({
      keepAlive: true,
      scheduling: 'lifo',
      timeout: DEFAULT_IDLE_SOCKET_TIMEOUT_MS,
    });
  }

  /** Weight for new requests: 0 while draining. */
  get effectiveWeight(): number {
    return this.draining ? 0 : this.backend.weight;
  }

  /** Resolves once no request is in flight on this backend. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Counts a request sent to this backend. */
  started(): void {
    this.inFlight++;
    this.counters.inFlight++;
    this.counters.requests++;
  }

  /**
   * Ends the requests still waiting for an answer that are safe to send again (idempotent, no
   * body): their proxy retries them on another backend. For a backend that left the route because
   * it failed, such as one on a lost node, which answers nothing and resets nothing.
   */
  moveWaiting(why = 'left the route'): void {
    for (const request of this.waiting) {
      request.destroy(
        Object.assign(new Error(`backend ${this.backend.id} ${why}`), { code: 'ECONNRESET', moved: true }),
      );
    }
    this.waiting.clear();
  }

  /**
   * After a connection to this backend timed out: the host is unreachable, so it is skipped for
   * {@link DEFAULT_FAIL_TIMEOUT_MS}, its idle keep-alive sockets (as dead as it is) are closed, and
   * the requests safe to send again that wait on it go to another backend.
   */
  unreachable(): void {
    this.downUntil = performance.now() + DEFAULT_FAIL_TIMEOUT_MS;
    for (const sockets of Object.values(this.agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
    this.moveWaiting('took no connection');
  }

  /** Marks one request on this backend as ended. */
  ended(): void {
    this.counters.inFlight--;
    if (--this.inFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

/** What the proxy needs from its service: the current backends and a choice among them. */
export interface BackendChooser {
  /** The backend for the next attempt, skipping `tried`, or undefined when none is left. */
  choose(tried: readonly BackendState[] | null): BackendState | undefined;
  /** True once the service is closing: responses then end their connections. */
  readonly closing: boolean;
  /** Every backend at `host`, for when one of them took no connection (see {@link sameHost}). */
  atHost(host: string): readonly BackendState[];
}

/**
 * The backends lost with `state` when it took no connection: on another machine, every one at its
 * address (the machine is unreachable, not just this instance); on loopback, only itself (a
 * listener whose backlog is full says nothing of its neighbours on this machine).
 */
export function sameHost(chooser: BackendChooser, state: BackendState): readonly BackendState[] {
  const { host } = state.backend;
  const loopback = host === 'localhost' || host === '::1' || host.startsWith('127.');
  return loopback ? [state] : chooser.atHost(host);
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
]);
const VIA = '1.1 kiln';

/** Header names the `Connection` header lists, beyond the usual `keep-alive`/`close`. */
function connectionTokens(value: string): Set<string> | undefined {
  const lower = value.toLowerCase();
  if (lower === 'keep-alive' || lower === 'close') return undefined;
  return new Set(lower.split(',').map((t) => t.trim()));
}

/** Request headers for the backend, and what the proxy must know about the request's body. */
function requestHeaders(req: http.IncomingMessage): { headers: string[]; hasBody: boolean } {
  const raw = req.rawHeaders;
  const out: string[] = [];
  let extra: Set<string> | undefined;
  let xff = '';
  let via = '';
  let proto = false;
  let hasBody = false;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection')
      extra = connectionTokens(raw[i + 1]!);
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === 'content-length') hasBody = value !== '0';
    if (name === 'transfer-encoding') hasBody = true;
    if (HOP_BY_HOP.has(name) || extra?.has(name)) continue;
    if (name === 'x-forwarded-for') xff = xff === '' ? value : `${xff}, ${value}`;
    else if (name === 'via') via = via === '' ? value : `${via}, ${value}`;
    else {
      if (name === 'x-forwarded-proto') proto = true;
      out.push(raw[i]!, value);
    }
  }
  const client = req.socket.remoteAddress ?? '';
  out.push(
    'x-forwarded-for',
    xff === '' ? client : `${xff}, ${client}`,
    'via',
    via === '' ? VIA : `${via}, ${VIA}`,
  );
  if (!proto) out.push('x-forwarded-proto', 'http');
  return { headers: out, hasBody };
}

/** Response headers for the client: hop-by-hop ones removed, `via` added. */
function responseHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  let extra: Set<string> | undefined;
  let via = '';
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection')
      extra = connectionTokens(raw[i + 1]!);
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || extra?.has(name)) continue;
    if (name === 'via') via = via === '' ? raw[i + 1]! : `${via}, ${raw[i + 1]!}`;
    else out.push(raw[i]!, raw[i + 1]!);
  }
  out.push('via', via === '' ? VIA : `${via}, ${VIA}`);
  return out;
}

// Errors on a response stream are handled on its 'close', where `complete` says whether it ended well.
function noop(): void {}

function fail(res: http.ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, [
    'content-type',
    'text/plain; charset=utf-8',
    'content-length',
    String(Buffer.byteLength(message)),
    'via',
    VIA,
  ]);
  res.end(message);
}

/**
 * Proxies one client request: picks a backend, forwards, streams the response back, and on a
 * connection failure before any response byte retries an idempotent request whose body was not
 * yet sent on another backend (or on the same one when a reused keep-alive socket was reset). A
 * connection not made within {@link DEFAULT_CONNECT_TIMEOUT_MS} fails, and marks its backend's
 * host unreachable.
 */
export function proxyRequest(
  chooser: BackendChooser,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  maxRetries: number = DEFAULT_MAX_RETRIES,
): void {
  const { headers, hasBody } = requestHeaders(req);
  const retriable = IDEMPOTENT.has(req.method ?? '');
  let current: http.ClientRequest | undefined;
  let clientGone = false;
  let lastFailure = '';
  res.on('close', () => {
    if (res.writableFinished) return;
    clientGone = true;
    current?.destroy();
  });

  const attempt = (tried: BackendState[] | null, retriesLeft: number, failed: BackendState | null): void => {
    const state = chooser.choose(tried);
    if (state === undefined) {
      if (lastFailure === '') fail(res, 503, 'no backend available\n');
      else fail(res, 502, `bad gateway: ${lastFailure}, and no other backend to retry on\n`);
      return;
    }
    if (failed !== null) failed.counters.retries++;
    const { backend, counters } = state;
    state.started();
    const start = performance.now();
    let ended = false;
    let bodySent = false;
    let responded = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      state.ended();
    };
    const out = http.request({
      agent: state.agent,
      host: backend.host,
      port: backend.port,
      method: req.method,
      path: req.url,
      headers,
    });
    current = out;
    if (retriable && !hasBody) {
      state.waiting.add(out);
      out.once('close', () => state.waiting.delete(out));
    }
    out.on('socket', (socket) => {
      if (!socket.connecting) return;
      const timer = setTimeout(() => {
        const err = new Error(`no connection within ${DEFAULT_CONNECT_TIMEOUT_MS} ms`);
        out.destroy(Object.assign(err, { code: 'ETIMEDOUT' }));
      }, DEFAULT_CONNECT_TIMEOUT_MS);
      socket.once('connect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    });
    out.on('response', (upstream) => {
      responded = true;
      state.waiting.delete(out);
      counters.response(upstream.statusCode ?? 0);
      if (chooser.closing) res.shouldKeepAlive = false;
      res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, responseHeaders(upstream.rawHeaders));
      upstream.pipe(res);
      upstream.on('error', noop);
      upstream.on('close', () => {
        if (upstream.complete || clientGone) return;
        counters.errors++;
        res.destroy();
        end();
      });
      res.on('finish', () => {
        counters.observe(performance.now() - start);
        end();
      });
      res.on('close', end);
    });
    out.on('error', (err: NodeJS.ErrnoException & { moved?: boolean }) => {
      state.waiting.delete(out);
      if (responded) return;
      if (clientGone) {
        end();
        return;
      }
      counters.errors++;
      const code = err.code ?? '';
      // A reused keep-alive socket the backend had closed: try it again. Moved off it: try another.
      const reused = out.reusedSocket && code === 'ECONNRESET' && err.moved !== true;
      if (code === 'ECONNREFUSED') state.downUntil = performance.now() + DEFAULT_FAIL_TIMEOUT_MS;
      if (code === 'ETIMEDOUT') for (const lost of sameHost(chooser, state)) lost.unreachable();
      end();
      lastFailure = `backend ${backend.id} failed (${code || err.message})`;
      if (retriable && !bodySent && retriesLeft > 0 && CONNECT_FAILURES.has(code)) {
        attempt(reused ? (tried ?? []) : [...(tried ?? []), state], retriesLeft - 1, state);
        return;
      }
      fail(res, 502, `bad gateway: ${lastFailure}\n`);
    });
    if (!hasBody) {
      out.end();
      return;
    }
    // The body is piped only once connected, so a refused connection leaves it unread for a retry.
    out.on('socket', (socket) => {
      const send = (): void => {
        bodySent = true;
        req.pipe(out);
      };
      if (socket.connecting) socket.once('connect', send);
      else send();
    });
  };
  attempt(null, maxRetries, null);
}
