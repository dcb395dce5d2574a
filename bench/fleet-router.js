// Router throughput and added latency: the built-in router in its own process (spawnRouter, as kiln
// runs it in production) beside a direct connection to the backend and beside HAProxy
// (startHaproxyRouter), with the same backend, the same load generator (bench/load.js, its own
// process) and the same keep-alive connections.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { spawnRouter, startHaproxyRouter } from '../dist/traffic/index.js';
import { LOOPBACK, httpOk, median, ratio, ROOT, vmRssBytes } from './lib.js';

const exec = promisify(execFile);

/** Starts bench/backend.js as its own process; resolves with its pid, port and a stop function. */
export async function startBackend(cleanup) {
  const child = spawn(process.execPath, [path.join(ROOT, 'bench', 'backend.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = cleanup.add(`stop backend pid ${child.pid}`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the bench backend exited (${code}) before listening`)));
  });
  return { pid: child.pid, port: JSON.parse(line).port, stop };
}

/** Runs bench/load.js against `port` and returns what it printed. */
export async function runLoad(port, { connections, warmupMs, durationMs }) {
  const { stdout } = await exec(
    process.execPath,
    [path.join(ROOT, 'bench', 'load.js'), JSON.stringify({ port, connections, warmupMs, durationMs })],
    { timeout: warmupMs + durationMs + 60_000 },
  );
  return JSON.parse(stdout);
}

/** CPU seconds (user + system) used so far by a process and its children (HAProxy's workers). */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    const own = (Number(fields[11]) + Number(fields[12])) / 100;
    return children === '' ? own : own + children.split(' ').reduce((s, c) => s + cpuSeconds(Number(c)), 0);
  } catch {
    return 0;
  }
}

/**
 * For each connection count, `repetitions` rounds of direct → kiln → HAProxy (interleaved, so
 * drift from other work on the machine spreads over all three); medians over the rounds.
 */
export async function routerBench({ dir, cleanup, connectionCounts, repetitions, warmupMs, durationMs }) {
  const backend = await startBackend(cleanup);
  const backends = [{ id: 'backend-1', host: LOOPBACK, port: backend.port, weight: 1 }];

  const kiln = await spawnRouter({ dir: path.join(dir, 'router') });
  const stopKiln = cleanup.add(`stop kiln router pid ${kiln.pid}`, () => kiln.stop());
  const kilnPort = (await kiln.setRoute({ service: 'bench', listenPort: 0, backends })).listenPort;

  const haproxyVersion = (await exec('haproxy', ['-v'])).stdout.split('\n')[0];
  const haproxy = await startHaproxyRouter({ dir: path.join(dir, 'haproxy') });
  const stopHaproxy = cleanup.add(`stop HAProxy master pid ${haproxy.pid}`, () => haproxy.stop());
  const haproxyPort = (await haproxy.setRoute({ service: 'bench', listenPort: 0, backends })).listenPort;

  // [name, port, pid whose CPU is the router's]
  const targets = [
    ['direct', backend.port, undefined],
    ['kiln', kilnPort, kiln.pid],
    ['haproxy', haproxyPort, haproxy.pid],
  ];
  for (const [name, port] of targets) {
    if (!(await httpOk(port))) throw new Error(`${name} on ${LOOPBACK}:${port} does not answer 200`);
  }
  const runs = {};
  const figures = {};
  for (const connections of connectionCounts) {
    const key = `c${connections}`;
    runs[key] = Object.fromEntries(targets.map(([name]) => [name, []]));
    for (let rep = 0; rep < repetitions; rep++) {
      for (const [name, port, pid] of targets) {
        const cpu0 = pid === undefined ? 0 : cpuSeconds(pid);
        const r = await runLoad(port, { connections, warmupMs, durationMs });
        // Warm-up included: CPU over every request the run sent, counted or not.
        if (pid !== undefined) r.routerCpuSeconds = cpuSeconds(pid) - cpu0;
        runs[key][name].push(r);
        console.error(
          `bench: router ${connections} conn, ${name} #${rep + 1}: ${Math.round(r.rps)} req/s, p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms.toFixed(3)} ms`,
        );
      }
    }
    const med = (name, field) => median(runs[key][name].map((r) => r[field]));
    const f = {};
    for (const [name] of targets) {
      f[name] = {
        rps: med(name, 'rps'),
        p50Ms: med(name, 'p50Ms'),
        p99Ms: med(name, 'p99Ms'),
        errors: runs[key][name].reduce((s, r) => s + r.errors, 0),
      };
      if (name !== 'direct') {
        f[name].routerCpuCores = median(
          runs[key][name].map((r) => r.routerCpuSeconds / ((warmupMs + durationMs) / 1000)),
        );
      }
    }
    f.kiln.addedP50Ms = f.kiln.p50Ms - f.direct.p50Ms;
    f.haproxy.addedP50Ms = f.haproxy.p50Ms - f.direct.p50Ms;
    f.ratios = {
      rpsKilnVsHaproxy: ratio(f.kiln.rps, f.haproxy.rps),
      rpsKilnVsDirect: ratio(f.kiln.rps, f.direct.rps),
      p50KilnVsHaproxy: ratio(f.kiln.p50Ms, f.haproxy.p50Ms),
      p50KilnVsDirect: ratio(f.kiln.p50Ms, f.direct.p50Ms),
      p99KilnVsHaproxy: ratio(f.kiln.p99Ms, f.haproxy.p99Ms),
      p99KilnVsDirect: ratio(f.kiln.p99Ms, f.direct.p99Ms),
      addedP50KilnVsHaproxy: ratio(f.kiln.addedP50Ms, f.haproxy.addedP50Ms),
    };
    figures[key] = f;
  }
  const kilnRouterRssBytes = vmRssBytes(kiln.pid);
  await stopHaproxy();
  await stopKiln();
  await backend.stop();
  return {
    method: `bench/load.js in its own process: N keep-alive connections sending GET / back to back, ${warmupMs} ms warm-up then ${durationMs} ms counted; ${repetitions} rounds of direct, kiln, HAProxy interleaved; medians over the rounds. Backend: bench/backend.js (Node http, 200 "ok"), one process. kiln router: spawnRouter (its own process). HAProxy: startHaproxyRouter (Debian's haproxy, master-worker).`,
    haproxyVersion,
    connectionCounts,
    repetitions,
    warmupMs,
    durationMs,
    figures,
    kilnRouterRssAfterLoadBytes: kilnRouterRssBytes,
    runs,
  };
}
