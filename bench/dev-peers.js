// The developer loop's edit-to-serving benchmark: three ways to run the example app while its
// server.js is edited (`kiln dev`, `node --watch` on the host, podman with the folder bind-mounted
// and `podman restart`), each timed from the write until GET / answers with the edit.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitPodmanSettled } from './fleet-recovery.js';
import { KILN, LOOPBACK, nowMs, percentile, ROOT, summary } from './lib.js';

/** Median, p90, p99, min, max and the samples; undefined for none. */
export const stats = (xs) => (xs.length === 0 ? undefined : { ...summary(xs), p90: percentile(xs, 90) });

/** How long one edit may take to be served before the bench gives up. */
const EDIT_TIMEOUT_MS = 30_000;
/** The pause after each edit is served, so the next one meets a settled process. */
export const SETTLE_MS = 300;
/** The example's service. */
export const SERVICE = 'hello';

/** The example app's server.js as the repository has it. */
const ORIGINAL = readFileSync(path.join(ROOT, 'examples', 'hello', 'app', 'server.js'), 'utf8');

/** Writes the app's server.js with `marker` in every answer, as an edit would. */
export function edit(appDir, marker) {
  const text = ORIGINAL.replace("hello: 'from kiln'", `hello: 'from kiln ${marker}'`);
  if (text === ORIGINAL) throw new Error('examples/hello/app/server.js changed: the bench cannot edit it');
  writeFileSync(path.join(appDir, 'server.js'), text);
}

/** GET / on a loopback port over a new connection: its body, or undefined. */
export function body(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get({ host: LOOPBACK, port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(res.statusCode === 200 ? text : undefined));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** Polls GET / every 2 ms until the body has `marker`; resolves with the time since `t0`. */
export async function servedAt(port, marker, t0) {
  for (;;) {
    const text = await body(port);
    if (text?.includes(marker)) return nowMs() - t0;
    if (nowMs() - t0 > EDIT_TIMEOUT_MS)
      throw new Error(`127.0.0.1:${port} did not serve "${marker}" within ${EDIT_TIMEOUT_MS} ms`);
    await sleep(2);
  }
}

/** A child process the bench started, tracked for cleanup by PID. */
function track(child, cleanup, what) {
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d) => (out = (out + d).slice(-20_000)));
  child.stderr?.setEncoding('utf8').on('data', (d) => (out = (out + d).slice(-20_000)));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const stop = cleanup.add(`stop ${what} (pid ${child.pid})`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, output: () => out, exited, stop };
}

/** The three ways to run the app while it is edited; each `start()`s, then `apply(marker)`s edits. */
export function kilnDevPeer({ project, home, port, cleanup, runtime }) {
  let proc;
  return {
    name: 'kiln dev',
    appDir: path.join(project, 'app'),
    port,
    async start() {
      const t0 = nowMs();
      const child = spawn(
        process.execPath,
        [
          KILN,
          '-c',
          path.join(project, 'kiln.yaml'),
          'dev',
          SERVICE,
          '--port',
          String(port),
          '--runtime',
          runtime,
        ],
        { cwd: project, env: { ...process.env, KILN_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      proc = track(child, cleanup, 'kiln dev');
      await servedAt(port, 'from kiln', t0);
      return nowMs() - t0;
    },
    async apply(marker) {
      const t0 = nowMs();
      edit(this.appDir, marker);
      return servedAt(port, marker, t0);
    },
    /** kiln's own "healthy in N ms" for each restart (from the change it saw). */
    reported() {
      return [...proc.output().matchAll(/changed: restarted as \S+, healthy in (\d+) ms/g)].map((m) =>
        Number(m[1]),
      );
    },
    async stop() {
      proc.child.kill('SIGTERM');
      const code = await proc.exited;
      await proc.stop();
      if (code !== 0) throw new Error(`kiln dev exited ${code}:\n${proc.output()}`);
      if (!proc.output().includes('nothing is left running'))
        throw new Error(`kiln dev did not say it stopped:\n${proc.output()}`);
    },
  };
}

export function nodeWatchPeer({ appDir, port, cleanup }) {
  let proc;
  return {
    name: 'node --watch (host)',
    appDir,
    port,
    async start() {
      const t0 = nowMs();
      const child = spawn(process.execPath, ['--watch', 'server.js'], {
        cwd: appDir,
        env: { ...process.env, PORT: String(port), NODE_ENV: 'production' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      proc = track(child, cleanup, 'node --watch');
      await servedAt(port, 'from kiln', t0);
      return nowMs() - t0;
    },
    async apply(marker) {
      const t0 = nowMs();
      edit(appDir, marker);
      return servedAt(port, marker, t0);
    },
    async stop() {
      await proc.stop();
      if ((await body(port, 300)) !== undefined)
        throw new Error(`node --watch's server still answers on ${port}`);
    },
  };
}

export function podmanPeer({ podman, appDir, port, cleanup }) {
  let id;
  let remove;
  return {
    name: 'podman restart',
    appDir,
    port,
    async start() {
      const t0 = nowMs();
      id = (
        await podman.run([
          'run',
          '-d',
          '--name',
          `kiln-bench-dev-${process.pid}`,
          '--network',
          'host',
          '--ulimit',
          'nofile=1024:1024',
          '--ulimit',
          'nproc=1024:1024',
          '-v',
          `${appDir}:/app:ro`,
          '-w',
          '/app',
          '--user',
          '1000:1000',
          '-e',
          `PORT=${port}`,
          podman.ref,
          'node',
          '/app/server.js',
        ])
      )
        .split('\n')
        .at(-1);
      remove = cleanup.add(`remove podman container ${id}`, async () => {
        await podman.remove(id);
        await waitPodmanSettled(id);
      });
      await servedAt(port, 'from kiln', t0);
      return nowMs() - t0;
    },
    async apply(marker) {
      const t0 = nowMs();
      edit(appDir, marker);
      // The bench is podman's watcher: it restarts at once, with no debounce, so podman gets the
      // better of that.
      await podman.run(['restart', '--time', '2', id]);
      return servedAt(port, marker, t0);
    },
    async stop() {
      await remove();
    },
  };
}

/** Edit to serving: every peer started, then `edits` rounds, one edit per peer each, interleaved. */
export async function editToServing({ peers, edits }) {
  const out = {};
  const live = [];
  for (const p of peers) {
    try {
      out[p.name] = { firstStartMs: await p.start(), samples: [] };
      live.push(p);
    } catch (err) {
      console.error(`bench: dev, ${p.name}: ${err instanceof Error ? err.stack : String(err)}`);
      out[p.name] = { measured: false, reason: `not measured: ${err instanceof Error ? err.message : err}` };
    }
  }
  for (let i = 1; i <= edits; i++) {
    for (const p of live) {
      if (out[p.name].measured === false) continue;
      try {
        out[p.name].samples.push(await p.apply(`e${i}-${Date.now()}`));
      } catch (err) {
        out[p.name] = {
          measured: false,
          reason: `not measured: ${err instanceof Error ? err.message : err}`,
        };
      }
      await sleep(SETTLE_MS);
    }
    if (i % 5 === 0) console.error(`bench: dev, edit to serving, ${i}/${edits} edits`);
  }
  for (const p of live) {
    if (out[p.name].measured !== false) out[p.name] = { ...out[p.name], ...stats(out[p.name].samples) };
    if (p.reported) out[p.name].reportedHealthyMs = stats(p.reported());
    await p.stop();
  }
  return out;
}
