// HOOK: the control plane's memory (VmRSS of `kiln server`) while it runs N instances.
//
// The measurement is `measurePlane(plane)`: give it a running control plane as
// `{ pid, rssOf: () => bytes | undefined }` that has brought its instances up, and it records the
// RSS (after a settle, three readings a second apart, the median). `startKilnServer(n, ctx)` is
// what brings `kiln server` up with one busybox httpd service of n replicas and returns such a
// plane (fleet-recovery.js uses it too); what it starts is ended through `ctx.cleanup`. While
// `dist/cli/main.js` registers no `server` verb, the results say "not measured: control plane not
// built yet".
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { clearInterval, setInterval } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalRuntimeDriver } from '../dist/runtime/index.js';
import { connectRouter } from '../dist/traffic/index.js';
import { STOP } from './fleet-start.js';
import { Cleanup, freePorts, inBatches, KILN, median, nowMs, vmRssBytes } from './lib.js';

/** What the results say while `kiln server` does not exist. */
export const NOT_BUILT = 'not measured: control plane not built yet';

/** Whether the compiled CLI has a `server` verb. */
export async function hasServerVerb() {
  const { program } = await import('../dist/cli/main.js');
  return program().commands.some((c) => c.name() === 'server');
}

/** Reads a running plane's RSS: three readings a second apart after a 2 s settle, their median. */
export async function measurePlane(plane) {
  await sleep(2000);
  const readings = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(1000);
    readings.push(plane.rssOf());
  }
  if (readings.some((r) => r === undefined)) throw new Error(`the control plane (pid ${plane.pid}) is gone`);
  return { measured: true, rssBytes: median(readings), readings };
}

/**
 * How long a deploy of N replicas may take: 60 s + 600 ms each (10 min at 1,000). The service's
 * `progressDeadline` is set to it, since the default (2 min) is shorter than 1,000 starts here.
 */
const deployTimeoutMs = (n) => 60_000 + 600 * n;

/** Starts `node bin/kiln.js server` for `project` with KILN_HOME=home; resolves with it and its API. */
export async function spawnServer(project, home, runtime, cleanup) {
  const child = spawn(
    process.execPath,
    [KILN, '-c', path.join(project, 'kiln.yaml'), 'server', '--port', '0', '--runtime', runtime],
    {
      cwd: project,
      env: { ...process.env, KILN_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  cleanup.add(`stop kiln server pid ${child.pid}`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await exited;
  });
  const url = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = line.match(/API at (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    void exited.then((code) => reject(new Error(`kiln server exited (${code}) before serving:\n${stderr}`)));
  });
  const token = readFileSync(path.join(home, 'admin-token'), 'utf8').trim();
  return { child, url, token };
}

/**
 * Ends what the server left running when it stopped (it leaves instances and the router serving,
 * to be adopted): every instance in its state directory, by id, then the router by its recorded PID.
 */
export async function stopLeftovers(home, runtime) {
  const driver = new LocalRuntimeDriver({
    runtime,
    stateDir: path.join(home, 'instances'),
    rootfs: async () => {
      throw new Error('the bench only stops these instances');
    },
  });
  try {
    const ids = (await driver.list()).map((s) => s.id);
    await inBatches(ids, 8, (id) => driver.stop(id, STOP));
    const left = (await driver.list()).length;
    if (left !== 0) throw new Error(`${left} instances of the control plane are left`);
  } finally {
    await driver.close();
  }
  const router = await connectRouter({ dir: path.join(home, 'router') }).catch(() => undefined);
  await router?.stop();
}

/** The service every control plane of the bench runs. */
export const SERVICE = 'bench';

/**
 * Starts `kiln server` in a project of its own (`<dir>/<name>`, KILN_HOME `.kiln` in it with a
 * copy of the bench's image store) declaring one busybox httpd service ({@link SERVICE}) of `n`
 * replicas, deploys it through the API (src/api/types.ts) and waits until the rollout succeeded;
 * resolves with a plane for {@link measurePlane}, its API client (`api`) and its KILN_HOME
 * (`home`). What it starts is ended through `cleanup`, also when it fails half-way.
 */
export async function startKilnServer(n, { dir, image, runtime, cleanup, name = `control-plane-${n}` }) {
  const project = path.join(dir, name);
  const home = path.join(project, '.kiln');
  mkdirSync(home, { recursive: true });
  cpSync(image.storeDir, path.join(home, 'store'), { recursive: true });
  const [port] = await freePorts(1);
  writeFileSync(
    path.join(project, 'kiln.yaml'),
    [
      'services:',
      `  - name: ${SERVICE}`,
      `    image: "${image.digest}"`,
      `    replicas: ${n}`,
      `    port: ${port}`,
      '    health: { http: / }',
      `    progressDeadline: ${Math.ceil(deployTimeoutMs(n) / 1000)}s`,
      '',
    ].join('\n'),
  );
  // Registered first: whatever the server started is ended even if it fails half-way.
  cleanup.add(`stop what kiln server left in ${home}`, () => stopLeftovers(home, runtime));
  const server = await spawnServer(project, home, runtime, cleanup);
  // Imported here: the API is new, and the other benchmarks must not depend on it being built.
  const { ApiClient } = await import('../dist/api/index.js');
  const api = new ApiClient({ url: server.url, token: server.token });
  const t0 = nowMs();
  const { rollout } = await api.deploy(SERVICE, { reason: 'kiln bench' });
  // How many are healthy every 5 s, to show where a slow rollout spends its time.
  const progress = [];
  const poll = setInterval(() => {
    api.status(SERVICE).then(
      ([s]) =>
        progress.push({
          atS: Math.round((nowMs() - t0) / 1000),
          instances: s?.instances,
          healthy: s?.healthy,
        }),
      () => undefined,
    );
  }, 5000);
  let done;
  try {
    done = await api.waitForRollout(rollout.id, { timeoutMs: deployTimeoutMs(n) + 10_000, pollMs: 100 });
  } finally {
    clearInterval(poll);
  }
  const deployMs = nowMs() - t0;
  if (progress.length > 0) console.error(`bench: kiln server rollout progress: ${JSON.stringify(progress)}`);
  if (done.phase !== 'succeeded') {
    throw new Error(
      `the control plane's rollout of ${n} replicas ended ${done.phase}: ${done.message ?? ''}`,
    );
  }
  const [status] = await api.status(SERVICE);
  return {
    pid: server.child.pid,
    rssOf: () => vmRssBytes(server.child.pid),
    api,
    home,
    extra: {
      deployUntilSucceededMs: deployMs,
      healthy: status?.healthy,
      instances: status?.instances,
      progress,
    },
  };
}

/**
 * The control plane's RSS with `n` instances, or why it was not measured. A control plane that
 * fails is recorded as such: the other figures stand without it. Whatever it started is ended
 * before this returns.
 */
export async function controlPlaneRss(n, ctx) {
  if (!(await hasServerVerb())) return { measured: false, reason: NOT_BUILT };
  console.error(`bench: kiln server with ${n} replicas`);
  const local = new Cleanup();
  const end = ctx.cleanup.add(`end the control plane of ${n} replicas`, () => local.run());
  try {
    const plane = await startKilnServer(n, { ...ctx, cleanup: local });
    return { instances: n, ...plane.extra, ...(await measurePlane(plane)) };
  } catch (err) {
    console.error(`bench: control plane at ${n}: ${err instanceof Error ? err.stack : String(err)}`);
    const reason = err instanceof Error ? err.message : String(err);
    return { measured: false, reason: `not measured: kiln server failed: ${reason}` };
  } finally {
    await end();
  }
}
