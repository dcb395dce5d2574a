// Recovery after kill -9. kiln: `kiln server` runs one busybox httpd service of 3 replicas; the
// bench kills a healthy instance's process with SIGKILL and measures until a replacement (an id
// that was not there before the kill) is healthy in the API and routed by the router. podman, the
// peer: `podman run -d --restart=always --network host` of the same image; the bench kills the
// container's process with SIGKILL and measures until its port answers HTTP 200 again.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectRouter } from '../dist/traffic/index.js';
import { hasServerVerb, NOT_BUILT, SERVICE, startKilnServer } from './fleet-control-plane.js';
import { Cleanup, freePorts, httpOk, median, nowMs, percentile, ratio, summary, waitHttp } from './lib.js';

/** How often the API and the router (kiln) or the port (podman) are polled after a kill. */
export const POLL_MS = 5;
/** The pause after one recovery before the next kill. */
export const PAUSE_MS = 300;
/** How long one recovery may take before the bench gives up on it. */
const RECOVERY_TIMEOUT_MS = 30_000;

/** Median, p90, p99, min and max, with the samples. */
const stats = (xs) => ({ ...summary(xs), p90: percentile(xs, 90) });

/** True once `pid` has exited (gone, or a zombie not yet reaped). */
function exited(pid) {
  try {
    return /^\d+ \(.*\) [ZX]/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Waits until `pid` has exited; throws after `timeoutMs`. */
async function waitExited(pid, timeoutMs = 5000) {
  const deadline = nowMs() + timeoutMs;
  while (!exited(pid)) {
    if (nowMs() > deadline) throw new Error(`pid ${pid} still runs ${timeoutMs} ms after SIGKILL`);
    await sleep(1);
  }
}

/**
 * The running processes whose arguments include `id` exactly: a container's conmon, and the
 * `podman container cleanup <id>` conmon starts when the container exits (and which restarts it).
 */
function processesNaming(id) {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(id) && !exited(pid))
        pids.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/**
 * Waits until no process names container `id` any more: a `podman container cleanup` still running
 * when the next podman command (the image's removal) runs can leave podman's storage mounted.
 */
export async function waitPodmanSettled(id, timeoutMs = 15_000) {
  const deadline = nowMs() + timeoutMs;
  let pids = processesNaming(id);
  const seen = pids.length;
  while (pids.length > 0) {
    if (nowMs() > deadline) throw new Error(`pids ${pids.join(', ')} still name podman container ${id}`);
    await sleep(20);
    pids = processesNaming(id);
  }
  return seen;
}

/** One look at the service: its live instances in the API and the ids the router gives new requests to. */
async function look(api, router) {
  const [live, routes] = await Promise.all([api.instances(SERVICE), router.routes()]);
  const route = routes.find((r) => r.service === SERVICE);
  const routed = new Set((route?.backends ?? []).filter((b) => b.weight > 0).map((b) => b.id));
  return { live, routed };
}

/** Waits until the service has `replicas` instances, all healthy and routed, and nothing else routed. */
async function steady(api, router, replicas) {
  const deadline = nowMs() + RECOVERY_TIMEOUT_MS;
  for (;;) {
    const { live, routed } = await look(api, router);
    const ok = live.filter((i) => i.state === 'healthy' && routed.has(i.id));
    if (live.length === replicas && ok.length === replicas && routed.size === replicas) return live;
    if (nowMs() > deadline) {
      const seen = live.map((i) => `${i.id}:${i.state}${routed.has(i.id) ? ':routed' : ''}`);
      throw new Error(
        `the service is not back at ${replicas} healthy, routed replicas after ${RECOVERY_TIMEOUT_MS} ms: ${seen.join(', ')}; routed ${[...routed].join(', ')}`,
      );
    }
    await sleep(POLL_MS);
  }
}

/**
 * Kills `victim`'s process with SIGKILL and polls the API and the router every {@link POLL_MS}
 * until a new instance is healthy in both and the victim is no longer routed. Each time is taken
 * when the poll that first showed it returned: late by at most the time between two polls (the
 * pause plus about two round trips).
 */
async function killOnce(api, router, victim, before) {
  const t0 = nowMs();
  process.kill(victim.pid, 'SIGKILL');
  const out = { victim: victim.id, victimPid: victim.pid };
  const roundTrips = [];
  for (;;) {
    const p0 = nowMs();
    const { live, routed } = await look(api, router);
    const t = nowMs();
    roundTrips.push(t - p0);
    const fresh = live.filter((i) => !before.has(i.id) && i.state === 'healthy');
    const served = fresh.find((i) => routed.has(i.id));
    out.victimUnroutedMs ??= routed.has(victim.id) ? undefined : t - t0;
    out.healthyInApiMs ??= fresh.length > 0 ? t - t0 : undefined;
    if (out.recoveredMs === undefined && served !== undefined) {
      out.recoveredMs = t - t0;
      out.replacement = served.id;
    }
    if (out.recoveredMs !== undefined && out.victimUnroutedMs !== undefined) {
      return {
        ...out,
        polls: roundTrips.length,
        pollRoundTripMs: median(roundTrips),
        pollRoundTripMaxMs: Math.max(...roundTrips),
      };
    }
    if (t - t0 > RECOVERY_TIMEOUT_MS) {
      throw new Error(
        `no recovery from kill -9 of ${victim.id} in ${RECOVERY_TIMEOUT_MS} ms: ${JSON.stringify(out)}`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** kiln: `kills` kills of a healthy instance of a 3-replica service under `kiln server`. */
async function kilnRecovery({ dir, image, runtime, cleanup, kills, replicas }) {
  if (!(await hasServerVerb())) return { measured: false, reason: NOT_BUILT };
  console.error(`bench: recovery, kiln server with ${replicas} replicas, ${kills} kills`);
  const local = new Cleanup();
  const end = cleanup.add('end the recovery control plane', () => local.run());
  try {
    const plane = await startKilnServer(replicas, {
      dir,
      image,
      runtime,
      cleanup: local,
      name: 'recovery',
    });
    const { api } = plane;
    const router = await connectRouter({ dir: path.join(plane.home, 'router') });
    const runs = [];
    for (let k = 0; k < kills; k++) {
      const live = await steady(api, router, replicas);
      const victim = live[k % live.length];
      if (!(victim.pid > 0)) throw new Error(`instance ${victim.id} has no pid in the API`);
      const run = await killOnce(api, router, victim, new Set(live.map((i) => i.id)));
      if (!exited(victim.pid)) throw new Error(`pid ${victim.pid} of ${victim.id} survived SIGKILL`);
      runs.push(run);
      if ((k + 1) % 5 === 0) console.error(`bench: recovery, kiln, ${k + 1}/${kills} kills`);
      await sleep(PAUSE_MS);
    }
    await steady(api, router, replicas);
    const pick = (key) => stats(runs.map((r) => r[key]));
    return {
      measured: true,
      runtime,
      replicas,
      deployUntilSucceededMs: plane.extra.deployUntilSucceededMs,
      recoveredMs: pick('recoveredMs'),
      healthyInApiMs: pick('healthyInApiMs'),
      victimUnroutedMs: pick('victimUnroutedMs'),
      pollRoundTripMs: pick('pollRoundTripMs'),
      pollRoundTripMaxMs: pick('pollRoundTripMaxMs'),
      runs,
    };
  } finally {
    await end();
  }
}

/** The state podman reports for a container: status, restart count, exit code, pid. */
async function podmanState(podman, id) {
  const out = await podman.run([
    'inspect',
    '--format',
    '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}} {{.State.Pid}}',
    id,
  ]);
  const [status, restarts, exitCode, pid] = out.split(/\s+/);
  return { status, restarts: Number(restarts), exitCode: Number(exitCode), pid: Number(pid) };
}

/**
 * podman: one `podman run -d --restart=always --network host` container; `kills` times, its
 * process (`{{.State.Pid}}`) is killed with SIGKILL and the port polled every {@link POLL_MS}
 * until it answers HTTP 200 again (polling starts once the killed process has exited). When podman
 * does not restart it, the results say why instead. The container is removed by its id.
 */
async function podmanRecovery({ podman, cleanup, kills }) {
  if (podman === undefined)
    return { measured: false, reason: 'not measured: podman left out (BENCH_PODMAN=0)' };
  console.error(`bench: recovery, podman run -d --restart=always, ${kills} kills`);
  const [port] = await freePorts(1);
  // Named first, so a run that fails before printing its id is still removed (by that name).
  let id = `kiln-bench-restart-${randomBytes(4).toString('hex')}`;
  const remove = cleanup.add(`remove podman container ${id}`, async () => {
    await podman.remove(id);
    await waitPodmanSettled(id);
  });
  try {
    id = await podman.start(port, id, ['--restart=always']);
    await waitHttp(port);
    const samples = [];
    const runs = [];
    for (let k = 0; k < kills; k++) {
      const { pid } = await podmanState(podman, id);
      if (!(pid > 0)) throw new Error(`podman reports no pid for container ${id}`);
      const t0 = nowMs();
      process.kill(pid, 'SIGKILL');
      await waitExited(pid);
      const exitedMs = nowMs() - t0;
      while (!(await httpOk(port))) {
        if (nowMs() - t0 > RECOVERY_TIMEOUT_MS) {
          const state = await podmanState(podman, id);
          const reason = `not measured: podman did not restart the container within ${RECOVERY_TIMEOUT_MS / 1000} s of kill -9 #${k + 1} (podman inspect: status ${state.status}, restart count ${state.restarts}, exit code ${state.exitCode})`;
          console.error(`bench: recovery, podman: ${reason}`);
          return { measured: false, reason, samplesBefore: samples };
        }
        await sleep(POLL_MS);
      }
      const answeredMs = nowMs() - t0;
      samples.push(answeredMs);
      runs.push({ pid, exitedMs, answeredMs });
      if ((k + 1) % 5 === 0) console.error(`bench: recovery, podman, ${k + 1}/${kills} kills`);
      await sleep(PAUSE_MS);
    }
    const state = await podmanState(podman, id);
    return { measured: true, answeredMs: stats(samples), restartCount: state.restarts, runs };
  } finally {
    await remove();
  }
}

/** Recovery after kill -9, kiln (under `kiln server`) beside podman's restart policy. */
export async function recoveryBench({ image, dir, cleanup, podman, runtime, kills, replicas }) {
  const kiln = await kilnRecovery({ dir, image, runtime, cleanup, kills, replicas });
  let peer;
  try {
    peer = await podmanRecovery({ podman, cleanup, kills });
  } catch (err) {
    console.error(`bench: recovery, podman: ${err instanceof Error ? err.stack : String(err)}`);
    peer = { measured: false, reason: `not measured: ${err instanceof Error ? err.message : String(err)}` };
  }
  const both = kiln.measured && peer.measured;
  return {
    kills,
    pollMs: POLL_MS,
    pauseMs: PAUSE_MS,
    method: `${kills} kills, none left out; SIGKILL to a healthy instance's init process (its pid from GET /v1/instances), then the API (GET /v1/instances) and the router (routes() over its admin API) polled together every ${POLL_MS} ms until an instance whose id was not there before the kill is healthy in the API and routed with weight > 0, and the killed one is not routed; each time is taken when the poll that first showed it returned; ${PAUSE_MS} ms pause, then the service must be back at its replicas (healthy, routed) before the next kill. podman: \`podman run -d --restart=always --network host\` of the same image, SIGKILL to its {{.State.Pid}}, then (once that process has exited) GET / on its port every ${POLL_MS} ms over new connections until HTTP 200, ${PAUSE_MS} ms pause`,
    kiln,
    podman: peer,
    ratios: both
      ? {
          median: ratio(kiln.recoveredMs.median, peer.answeredMs.median),
          p99: ratio(kiln.recoveredMs.p99, peer.answeredMs.p99),
        }
      : undefined,
  };
}
