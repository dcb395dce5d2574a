// The servers and clients of the registry benchmark, all on 127.0.0.1: Debian's docker-registry
// (CNCF distribution 2.8) with an empty storage directory, started afresh for every cold sample;
// `kiln server` serving the project's image store under /v2/ with a read token; the timed CLI runs.
// Every process started here is ended by its PID through the bench's Cleanup.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { URL } from 'node:url';
import { spawnServer, stopLeftovers } from './fleet-control-plane.js';
import { KILN, LOOPBACK, nowMs } from './lib.js';

/** Debian's CNCF distribution. */
export const DOCKER_REGISTRY = '/usr/bin/docker-registry';

/**
 * Runs a command without blocking the event loop (the servers' pipes keep being read); resolves
 * with its wall seconds and stdout, rejects with its output when it fails.
 */
export function timedRun(cmd, args, options = {}) {
  const t0 = nowMs();
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, ...options }, (err, stdout, stderr) => {
      const seconds = (nowMs() - t0) / 1000;
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code}):\n${stdout}\n${stderr}`));
      else resolve({ seconds, stdout });
    });
  });
}

/** `node bin/kiln.js -c CONFIG ARGS` with KILN_HOME=home, timed as a whole CLI run. */
export function kilnRun(config, home, args) {
  return timedRun(process.execPath, [KILN, '-c', config, ...args], {
    cwd: path.dirname(config),
    env: { ...process.env, KILN_HOME: home },
  });
}

/** `skopeo --insecure-policy ARGS` (no signature policy: the bench copies its own image). */
export function skopeo(args) {
  return timedRun('skopeo', ['--insecure-policy', ...args]);
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, LOOPBACK);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts docker-registry on 127.0.0.1:`port` with an empty storage directory (`dir/storage`,
 * removed first), as test/support/registry.ts does, and waits until it accepts connections.
 * Resolves with `{ host, pid, stop }`; `stop` ends it by its PID (SIGTERM, SIGKILL after 5 s).
 */
export async function startDockerRegistry(dir, port, cleanup) {
  const storage = path.join(dir, 'storage');
  rmSync(storage, { recursive: true, force: true });
  mkdirSync(storage, { recursive: true });
  const config = path.join(dir, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${storage}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${LOOPBACK}:${port}`,
      `  secret: ${randomBytes(16).toString('hex')}`,
      '',
    ].join('\n'),
  );
  const child = spawn(DOCKER_REGISTRY, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const stop = cleanup.add(`stop docker-registry pid ${child.pid}`, async () => {
    if (gone()) return;
    child.kill('SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const deadline = nowMs() + 20_000;
  while (!(await canConnect(port))) {
    if (gone() || nowMs() > deadline) {
      await stop();
      throw new Error(`docker-registry did not serve on ${LOOPBACK}:${port}:\n${stderr}`);
    }
    await sleep(20);
  }
  return { host: `${LOOPBACK}:${port}`, pid: child.pid, stop };
}

/** The digest a registry gives `repository:reference` (HEAD on the manifest), or undefined. */
export function manifestDigest(host, repository, reference, password) {
  const [hostname, port] = host.split(':');
  const headers = {
    accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
    ...(password ? { authorization: `Basic ${Buffer.from(`kiln:${password}`).toString('base64')}` } : {}),
  };
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: hostname,
        port: Number(port),
        method: 'HEAD',
        path: `/v2/${repository}/manifests/${reference}`,
        headers,
        agent: false,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? res.headers['docker-content-digest'] : undefined);
      },
    );
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** The manifest digests an OCI layout's index.json lists. */
export function layoutDigests(dir) {
  return JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')).manifests.map((m) => m.digest);
}

/**
 * `kiln server` in the project (its store is what /v2/ serves), and a token of scope `read` made
 * through its API, as a puller would have. Resolves with `{ host, token, stop }`; the server and
 * the router it may leave are ended through `cleanup` (and by `stop`).
 */
export async function startKilnRegistry(project, home, runtime, cleanup) {
  const leftovers = cleanup.add(`stop what kiln server left in ${home}`, () => stopLeftovers(home, runtime));
  const server = await spawnServer(project, home, runtime, cleanup);
  const { ApiClient } = await import('../dist/api/index.js');
  const api = new ApiClient({ url: server.url, token: server.token });
  const { secret } = await api.createToken({ name: `bench-puller-${process.pid}`, scopes: ['read'] });
  return {
    host: new URL(server.url).host,
    token: secret,
    pid: server.child.pid,
    async stop() {
      if (server.child.exitCode === null && server.child.signalCode === null) {
        const exited = new Promise((resolve) => server.child.once('exit', resolve));
        server.child.kill('SIGTERM');
        await exited;
      }
      await leftovers();
    },
  };
}
