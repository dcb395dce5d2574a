/**
 * Test support for the registry client: the real Debian `docker-registry` on 127.0.0.1 with a
 * random port, an auth proxy in front of it (Basic, or Bearer with a token service), and a
 * self-signed certificate. Not exported from index.ts. Traffic stays on 127.0.0.1, or on the
 * address of a network namespace a test made (the swarm tests' bridge).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';

/** A running registry process. */
export interface RunningRegistry {
  /** `127.0.0.1:PORT` */
  readonly host: string;
  readonly stop: () => Promise<void>;
}

/** Removes a temp directory and every process/server registered, in reverse order, even after failures. */
export class Cleanup {
  private readonly steps: (() => Promise<void>)[] = [];

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.add(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  /**
   * Has `server` listen on a free port of `host` (loopback, or an address of a test's own
   * network), closed (connections and all) at clean-up; its `host:port`.
   */
  async listen(server: http.Server, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    this.add(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    return `${host}:${(server.address() as net.AddressInfo).port}`;
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) await step().catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
  }
}

async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function canConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Ends a process we started, by its PID: SIGTERM, then SIGKILL after 5 s. */
async function stopProcess(child: ResultPromise): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null) return;
  const exited = child.then(
    () => undefined,
    () => undefined,
  );
  process.kill(child.pid, 'SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
  if (!done && child.exitCode === null) {
    process.kill(child.pid, 'SIGKILL');
    await exited;
  }
}

/**
 * Starts `/usr/bin/docker-registry serve` on `address` (127.0.0.1, or an address of a test's own
 * network) with a fresh storage directory, optionally with TLS, and waits until it accepts
 * connections. Registers its stop with `cleanup`.
 */
export async function startRegistry(
  cleanup: Cleanup,
  tls?: { cert: string; key: string },
  address = '127.0.0.1',
): Promise<RunningRegistry> {
  const dir = await cleanup.tempDir('kiln-registry-');
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort(address);
    const config = join(dir, `config-${port}.yml`);
    await mkdir(join(dir, 'storage'), { recursive: true });
    await writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${join(dir, 'storage')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: ${address}:${port}`,
        `  secret: ${randomBytes(16).toString('hex')}`,
        ...(tls ? ['  tls:', `    certificate: ${tls.cert}`, `    key: ${tls.key}`] : []),
        '',
      ].join('\n'),
    );
    const child = execa('/usr/bin/docker-registry', ['serve', config], {
      reject: false,
      stdin: 'ignore',
      buffer: true,
    });
    const stop = (): Promise<void> => stopProcess(child);
    cleanup.add(stop);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && child.exitCode === null) {
      if (await canConnect(port, address)) return { host: `${address}:${port}`, stop };
      await sleep(50);
    }
    await stop();
    lastError = String((await child).stderr ?? '');
  }
  throw new Error(`docker-registry did not start: ${lastError}`);
}

/** A self-signed certificate for 127.0.0.1, made with openssl. */
export async function makeCertificate(cleanup: Cleanup): Promise<{ cert: string; key: string; dir: string }> {
  const dir = await cleanup.tempDir('kiln-tls-');
  const cert = join(dir, 'ca.crt');
  const key = join(dir, 'key.pem');
  await execa('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert,
  ]); // prettier-ignore
  return { cert, key, dir };
}

/** An auth proxy in front of a registry, and what it saw. */
export interface AuthProxy {
  readonly host: string;
  /** Scopes asked of the token service, in order (bearer mode). */
  readonly tokenRequests: { scope: string[]; service: string | null; authorized: boolean }[];
  /** Requests forwarded to the registry. */
  forwarded: number;
  /** Requests refused for want of credentials (401). */
  refused: number;
}

/**
 * An HTTP server on `listenOn` (127.0.0.1 unless given) that demands `Basic` credentials, or
 * `Bearer` tokens from its own `/token` endpoint (which wants the Basic credentials, and issues
 * tokens bound to a scope), then forwards authorised requests to `upstream` (`HOST:PORT`).
 */
export async function startAuthProxy(
  cleanup: Cleanup,
  upstream: string,
  mode: 'basic' | 'bearer',
  credentials: { username: string; password: string },
  listenOn?: string,
): Promise<AuthProxy> {
  const basic = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  const tokens = new Map<string, string[]>();
  const state: AuthProxy & { host: string } = { host: '', tokenRequests: [], forwarded: 0, refused: 0 };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${state.host}`);
    if (mode === 'bearer' && url.pathname === '/token') {
      const scope = url.searchParams.getAll('scope');
      const authorized = req.headers.authorization === basic;
      state.tokenRequests.push({ scope, service: url.searchParams.get('service'), authorized });
      if (!authorized) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      const token = randomBytes(12).toString('hex');
      tokens.set(token, scope);
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ access_token: token, expires_in: 300 }));
      return;
    }
    const match = /^\/v2\/(.+?)\/(blobs|manifests|tags|referrers)\//.exec(url.pathname);
    const needed = match
      ? `repository:${match[1]}:${req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'pull,push'}`
      : '';
    const auth = req.headers.authorization ?? '';
    const ok =
      mode === 'basic'
        ? auth === basic
        : auth.startsWith('Bearer ') && granted(tokens.get(auth.slice(7)), needed);
    if (!ok) {
      state.refused++;
      const challenge =
        mode === 'basic'
          ? 'Basic realm="kiln-test"'
          : `Bearer realm="http://${state.host}/token",service="kiln-test"${needed ? `,scope="${needed}"` : ''}`;
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    state.forwarded++;
    const [host, port] = upstream.split(':');
    const headers = { ...req.headers };
    delete headers.authorization;
    const forward = http.request(
      { host, port: Number(port), method: req.method, path: req.url, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', (err) => res.writeHead(502).end(String(err)));
    req.pipe(forward);
  });
  state.host = await cleanup.listen(server, listenOn);
  return state;
}

/** True when a token's scopes cover `needed` (`repository:name:pull` or `…:pull,push`). */
function granted(scopes: string[] | undefined, needed: string): boolean {
  if (scopes === undefined) return false;
  if (needed === '') return true;
  const [, name, actions] = /^repository:(.+):([a-z,]+)$/.exec(needed) ?? [];
  return actions!.split(',').every((action) =>
    scopes.some((s) => {
      const m = /^repository:(.+):([a-z,*]+)$/.exec(s);
      return m !== null && m[1] === name && (m[2]!.split(',').includes(action) || m[2] === '*');
    }),
  );
}
