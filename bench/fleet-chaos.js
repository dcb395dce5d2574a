// Recovery under load, proven by the chaos monkey: `kiln server` runs one busybox httpd service of
// 4 replicas; an open-loop load generator (test/support/loadgen-main.mjs, its own process) sends
// `rate` GETs a second through kiln's router while `kiln chaos run` kills (SIGKILL) one instance
// every 2 s. Figures: the monkey's own report (MTTR median and p99: kill until a healthy
// replacement; availability from the router's per-service totals) beside what the load generator
// saw. The peer is the recovery part's podman --restart=always (same run), when it ran.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasServerVerb, NOT_BUILT, SERVICE, startKilnServer } from './fleet-control-plane.js';
import { ROOT } from './lib.js';

const LOADGEN = path.join(ROOT, 'test', 'support', 'loadgen-main.mjs');

/** Starts the open-loop load generator; `stop()` ends it by its PID and returns its summary. */
async function startLoad(url, rate, cleanup) {
  const child = spawn(process.execPath, [LOADGEN, JSON.stringify({ url, rate })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const kill = () => {
    if (child.exitCode === null) process.kill(child.pid, 'SIGTERM');
    return exited;
  };
  cleanup.add(`end the load generator (pid ${child.pid})`, kill);
  while (!stdout.includes('loadgen: running\n')) {
    if (child.exitCode !== null) throw new Error(`the load generator exited ${child.exitCode}`);
    await sleep(10);
  }
  return {
    async stop() {
      await kill();
      return JSON.parse(stdout.trimEnd().split('\n').at(-1));
    },
  };
}

/** The chaos run's figures, or why it was not measured. Whatever it started is ended through `cleanup`. */
export async function chaosBench({ image, dir, cleanup, runtime, kills, rate, replicas, intervalMs }) {
  if (!(await hasServerVerb())) return { measured: false, reason: NOT_BUILT };
  console.error(
    `bench: chaos, ${kills} kills one every ${intervalMs} ms at ${rate} req/s on ${replicas} replicas`,
  );
  const plane = await startKilnServer(replicas, { dir, image, runtime, cleanup, name: 'chaos' });
  const [status] = await plane.api.status(SERVICE);
  const load = await startLoad(status.url, rate, cleanup);
  await sleep(1000);
  const run = await plane.api.chaosRun({
    service: SERVICE,
    kills,
    interval: `${intervalMs}ms`,
    mode: 'kill',
  });
  for (;;) {
    const now = (await plane.api.chaosRuns(20)).find((r) => r.id === run.id);
    if (now?.phase !== 'running') break;
    await sleep(250);
  }
  await sleep(1000);
  const seen = await load.stop();
  const report = await plane.api.chaosReport(run.id);
  return {
    measured: true,
    runtime,
    replicas,
    rate,
    kills,
    intervalMs,
    report: {
      kills: report.kills,
      recovered: report.recovered,
      mttrMs: report.mttrMs,
      detectMs: report.detectMs,
      availability: report.availability,
      requests: report.requests,
      failed: report.failed,
      recoveryMs: report.terminations.map((t) => t.recoveryMs ?? null),
    },
    loadgen: {
      sent: seen.sent,
      ok: seen.ok,
      failed: seen.failed,
      failures: seen.failures,
      seconds: seen.seconds,
      availability: seen.sent > 0 ? seen.ok / seen.sent : null,
      latencyMs: seen.latencyMs,
    },
  };
}
