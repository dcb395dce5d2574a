// Bringing up N instances: LocalRuntimeDriver starts N busybox httpd instances (a few at a time)
// until every one answers HTTP; then the memory they use, the router process's memory with a route
// to all N, and the control plane's (hook in fleet-control-plane.js); then every instance is
// stopped by its id. podman does the same for the smaller counts, as the peer.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnRouter } from '../dist/traffic/index.js';
import { controlPlaneRss } from './fleet-control-plane.js';
import { instanceSpec, makeDriver, STOP } from './fleet-start.js';
import {
  freePorts,
  inBatches,
  LOOPBACK,
  memAvailableBytes,
  nowMs,
  pssBytes,
  ratio,
  vmRssBytes,
  waitHttp,
} from './lib.js';

/** Memory kept free for everything else on the machine when deciding whether N instances fit. */
export const MEMORY_RESERVE_BYTES = 2 * 2 ** 30;
/** Assumed cost of one instance before one has been measured (generous: 8 MiB). */
export const INSTANCE_MEMORY_GUESS_BYTES = 8 * 2 ** 20;

/** A process's memory cgroup usage (v1 memory.usage_in_bytes, or v2 memory.current), if readable. */
function cgroupMemoryBytes(pid) {
  try {
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const v1 = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
    if (v1 !== undefined) {
      const dir = v1.slice(v1.indexOf(':', v1.indexOf(':') + 1) + 1);
      return Number(readFileSync(path.join('/sys/fs/cgroup/memory', dir, 'memory.usage_in_bytes'), 'utf8'));
    }
    const v2 = lines.find((l) => l.startsWith('0::'));
    return Number(readFileSync(path.join('/sys/fs/cgroup', v2.slice(3), 'memory.current'), 'utf8'));
  } catch {
    return undefined;
  }
}

const sum = (xs) => xs.reduce((s, x) => s + (x ?? 0), 0);

/** Whether `n` instances fit in memory now, at `perInstance` bytes each plus the reserve. */
function memoryCheck(n, perInstance) {
  const available = memAvailableBytes();
  const needed = n * perInstance + MEMORY_RESERVE_BYTES;
  return {
    ok: available >= needed,
    availableBytes: available,
    neededBytes: needed,
    perInstanceBytes: perInstance,
  };
}

/** Sends `requests` GETs through `port` over `connections` keep-alive connections; counts non-200s. */
async function sendThrough(port, requests, connections) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let sent = 0;
  let failed = 0;
  const one = () =>
    new Promise((resolve) => {
      http
        .get({ host: LOOPBACK, port, path: '/', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200));
        })
        .on('error', () => resolve(false));
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (sent < requests) {
        sent++;
        if (!(await one())) failed++;
      }
    }),
  );
  agent.destroy();
  return { requests, failed };
}

/** The router process's VmRSS idle, with a route to every instance, and after traffic to each. */
async function routerRss(dir, n, ports, cleanup) {
  const router = await spawnRouter({ dir: path.join(dir, `router-${n}`) });
  const stop = cleanup.add(`stop kiln router pid ${router.pid}`, () => router.stop());
  try {
    await sleep(500);
    const idle = vmRssBytes(router.pid);
    const backends = ports.map((port, i) => ({ id: `b${i}`, host: LOOPBACK, port, weight: 1 }));
    const t0 = nowMs();
    const { listenPort } = await router.setRoute({ service: 'bench', listenPort: 0, backends });
    const setRouteMs = nowMs() - t0;
    await sleep(500);
    const routed = vmRssBytes(router.pid);
    const traffic = await sendThrough(listenPort, 2 * n, 16);
    await sleep(500);
    return {
      idleBytes: idle,
      withRouteBytes: routed,
      afterTrafficBytes: vmRssBytes(router.pid),
      setRouteMs,
      traffic: { ...traffic, note: 'round robin: two requests to each backend' },
    };
  } finally {
    await stop();
  }
}

/**
 * Starts `n` things `width` at a time with `start(i)` → port; resolves when all answer HTTP. One
 * that does not answer within 2 minutes is listed in `failed` (with `explain(i)`) rather than
 * ending the run, and the time is then until all the others answered.
 */
async function bringUp(n, width, start, explain) {
  const t0 = nowMs();
  const healthy = [];
  const failed = [];
  await inBatches(
    Array.from({ length: n }, (_, i) => i),
    width,
    async (i) => {
      const port = await start(i);
      healthy.push(
        waitHttp(port, 120_000).catch(async (err) =>
          failed.push({ i, port, error: err.message, ...(await explain(i)) }),
        ),
      );
    },
  );
  const allStartedMs = nowMs() - t0;
  await Promise.all(healthy);
  if (failed.length > 0)
    console.error(`bench: ${failed.length} of ${n} did not answer: ${JSON.stringify(failed)}`);
  return { allStartedMs, allHealthyMs: nowMs() - t0, failed };
}

/** kiln: n instances up, measured, then stopped by id. */
async function kilnAt(n, { driver, image, dir, cleanup, width }) {
  const ports = await freePorts(n);
  const specs = ports.map((port, i) => instanceSpec(image, `n${n}-${i}`, port));
  const started = new Map();
  const stopAll = cleanup.add(`stop the ${n} kiln instances`, () =>
    inBatches([...started.keys()], width, async (id) => {
      await driver.stop(id, STOP);
      started.delete(id);
    }),
  );
  const before = memAvailableBytes();
  const times = await bringUp(
    n,
    width,
    async (i) => {
      started.set(specs[i].id, undefined);
      started.set(specs[i].id, (await driver.start(specs[i])).pid);
      return specs[i].port;
    },
    async (i) => ({
      id: specs[i].id,
      state: (await driver.inspect(specs[i].id))?.state,
      log: (await driver.logs(specs[i].id, { tailLines: 5 }).catch(() => '')).trim(),
    }),
  );
  console.error(`bench: ${n} kiln instances answer HTTP after ${(times.allHealthyMs / 1000).toFixed(2)} s`);
  await sleep(1000);
  const pids = [...started.values()];
  const memory = {
    instancesRssBytes: sum(pids.map(vmRssBytes)),
    instancesPssBytes: sum(pids.map(pssBytes)),
    instancesCgroupBytes: sum(pids.map(cgroupMemoryBytes)),
    memAvailableDropBytes: before - memAvailableBytes(),
    benchProcessRssBytes: vmRssBytes(process.pid),
  };
  const router = await routerRss(dir, n, ports, cleanup);
  const t0 = nowMs();
  await stopAll();
  const stopAllMs = nowMs() - t0;
  const left = (await driver.list()).length;
  if (left !== 0) throw new Error(`${left} kiln instances are left after stopping all ${n}`);
  return { ...times, stopAllMs, memory, router };
}

/** podman: n containers up (`podman run -d`), measured, then removed by the ids podman printed. */
async function podmanAt(n, { podman, cleanup, width }) {
  const ports = await freePorts(n);
  const ids = new Map();
  const removeAll = cleanup.add(`remove the ${n} podman containers`, () =>
    inBatches([...ids.keys()], width, async (name) => {
      await podman.remove(ids.get(name) ?? name);
      ids.delete(name);
    }),
  );
  const before = memAvailableBytes();
  const times = await bringUp(
    n,
    width,
    async (i) => {
      const name = `kiln-bench-n${n}-${i}-${process.pid}`;
      ids.set(name, undefined);
      ids.set(name, await podman.start(ports[i], name));
      return ports[i];
    },
    async () => ({}),
  );
  console.error(
    `bench: ${n} podman containers answer HTTP after ${(times.allHealthyMs / 1000).toFixed(2)} s`,
  );
  await sleep(1000);
  const pids = (await inBatches([...ids.values()], width, (id) => podman.pidsOf(id))).flat();
  const memory = {
    conmonAndInstancesRssBytes: sum(pids.map(vmRssBytes)),
    conmonAndInstancesPssBytes: sum(pids.map(pssBytes)),
    memAvailableDropBytes: before - memAvailableBytes(),
  };
  const t0 = nowMs();
  await removeAll();
  return { ...times, removeAllMs: nowMs() - t0, memory };
}

/**
 * For each count: kiln's bring-up (skipped, with the reason recorded, when memory is short), then
 * podman's for the counts in `podmanCounts`, then the control plane's RSS (hook).
 */
export async function scaleBench({ image, dir, cleanup, podman, runtime, counts, podmanCounts, width }) {
  const driver = makeDriver(path.join(dir, 'scale'), runtime, image);
  cleanup.add('close the scale driver', () => driver.close());
  const out = { runtime, startConcurrency: width, counts: {} };
  let perInstance = INSTANCE_MEMORY_GUESS_BYTES;
  for (const n of counts) {
    const check = memoryCheck(n, perInstance);
    const entry = { memoryCheck: check };
    out.counts[n] = entry;
    if (!check.ok) {
      entry.skipped = `not enough free memory: ${Math.round(check.availableBytes / 2 ** 20)} MiB available, ${Math.round(check.neededBytes / 2 ** 20)} MiB needed (${n} × ${Math.round(perInstance / 2 ** 20)} MiB + ${MEMORY_RESERVE_BYTES / 2 ** 30} GiB reserve)`;
      console.error(`bench: ${n} instances skipped: ${entry.skipped}`);
      continue;
    }
    console.error(`bench: bringing up ${n} kiln instances (${runtime}, ${width} at a time)`);
    entry.kiln = await kilnAt(n, { driver, image, dir, cleanup, width });
    // The next count is checked against what this one cost, with a margin (never below the guess:
    // MemAvailable moves with whatever else runs on the machine).
    perInstance = Math.max(INSTANCE_MEMORY_GUESS_BYTES, (2 * entry.kiln.memory.memAvailableDropBytes) / n);
    if (podman !== undefined && podmanCounts.includes(n)) {
      console.error(`bench: bringing up ${n} podman containers (${width} at a time)`);
      entry.podman = await podmanAt(n, { podman, cleanup, width });
      entry.ratios = {
        allHealthyKilnVsPodman: ratio(entry.kiln.allHealthyMs, entry.podman.allHealthyMs),
        pssKilnVsPodman: ratio(
          entry.kiln.memory.instancesPssBytes,
          entry.podman.memory.conmonAndInstancesPssBytes,
        ),
      };
    }
    entry.controlPlane = await controlPlaneRss(n, { dir, cleanup, image, runtime });
  }
  return out;
}
