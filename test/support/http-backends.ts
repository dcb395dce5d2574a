/**
 * Test support for traffic routers: real HTTP backends on 127.0.0.1 (port 0) that answer with their
 * id, and a keep-alive client. Backends can be told to fail with 500, to reset connections, to be
 * slow (`?delay=MS`), to answer a given status (`?status=N`), or to echo the request's headers
 * (`?echo=headers`) or body (`?echo=body`). Everything started is closed by `closeAll()`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * How a backend answers every request: normally, with 500, by resetting the connection, or never
 * (`hang`: it reads the request and stays silent, as a lost machine does).
 */
export type BackendMode = 'ok' | 'fail' | 'reset' | 'hang';

/** One running test backend. */
export interface TestBackend {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  mode: BackendMode;
  /** Requests received. */
  readonly hits: number;
  /** Requests being answered now. */
  readonly active: number;
  /** This backend as a route entry with `weight`. */
  backend(weight: number): { id: string; host: string; port: number; weight: number };
  /** Closes the listener and every connection, so the port refuses connections from now on. */
  stop(): Promise<void>;
}

/** A response as the test client saw it. */
export interface TestResponse {
  readonly status: number;
  /** The body as UTF-8 text. */
  readonly body: string;
  /** The body's bytes. */
  readonly raw: Buffer;
  readonly headers: http.IncomingHttpHeaders;
}

/** Options of one test request. */
export interface TestRequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
}

function answer(id: string, req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
  const status = Number(url.searchParams.get('status') ?? 200);
  const echo = url.searchParams.get('echo');
  if (echo === 'body') {
    res.writeHead(status, { 'content-type': 'application/octet-stream', 'x-backend': id });
    req.pipe(res);
    return;
  }
  req.resume();
  const text = echo === 'headers' ? JSON.stringify(req.headers) : id;
  req.on('end', () => res.writeHead(status, { 'content-type': 'text/plain', 'x-backend': id }).end(text));
}

/** Starts backends and a client; `closeAll()` (call it in afterEach) ends every one of them. */
export class HttpBackends {
  private readonly servers: http.Server[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  /** Starts one backend answering with `id`. */
  async startOne(id: string): Promise<TestBackend> {
    let hits = 0;
    let active = 0;
    let mode: BackendMode = 'ok';
    const server = http.createServer((req, res) => {
      hits++;
      if (mode === 'reset') {
        req.socket.destroy();
        return;
      }
      active++;
      res.on('close', () => active--);
      if (mode === 'hang') return;
      const url = new URL(req.url ?? '/', 'http://backend');
      if (mode === 'fail') url.searchParams.set('status', '500');
      const delay = Number(url.searchParams.get('delay') ?? 0);
      if (delay <= 0) return answer(id, req, res, url);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        answer(id, req, res, url);
      }, delay);
      this.timers.add(timer);
      res.on('close', () => {
        clearTimeout(timer);
        this.timers.delete(timer);
      });
    });
    this.servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    return {
      id,
      host: '127.0.0.1',
      port,
      get mode() {
        return mode;
      },
      set mode(m: BackendMode) {
        mode = m;
      },
      get hits() {
        return hits;
      },
      get active() {
        return active;
      },
      backend: (weight) => ({ id, host: '127.0.0.1', port, weight }),
      stop: () => closeServer(server),
    };
  }

  /** Starts backends named `ids`, in parallel. */
  start(...ids: string[]): Promise<TestBackend[]> {
    return Promise.all(ids.map((id) => this.startOne(id)));
  }

  /** Sends one request to `127.0.0.1:port` over a keep-alive connection and reads the whole answer. */
  request(port: number, path = '/', options: TestRequestOptions = {}): Promise<TestResponse> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: options.method ?? 'GET',
          headers: options.headers,
          agent: this.agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const raw = Buffer.concat(chunks);
            resolve({ status: res.statusCode ?? 0, body: raw.toString('utf8'), raw, headers: res.headers });
          });
        },
      );
      req.on('error', reject);
      req.end(options.body);
    });
  }

  /** Sends `n` GETs one after another and counts the answering backends (status 200 only). */
  async countById(port: number, n: number, path = '/'): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const res = await this.request(port, path);
      const key = res.status === 200 ? res.body : `status ${res.status}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }

  /** Closes every backend, every connection and the client; safe to call more than once. */
  async closeAll(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.agent.destroy();
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    await Promise.all(this.servers.splice(0).map(closeServer));
  }
}

function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
