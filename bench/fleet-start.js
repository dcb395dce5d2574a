// Start to healthy, one instance at a time: kiln's LocalRuntimeDriver (crun and runc) beside
// `podman run -d --network host` of the same image, each until its first successful HTTP GET.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { LocalRuntimeDriver } from '../dist/runtime/index.js';
import { freePorts, nowMs, ratio, summary, waitHttp } from './lib.js';

const exec = promisify(execFile);

/** The runtime podman runs containers with: its crun refuses this hybrid-cgroup host, runc works. */
export const PODMAN_RUNTIME = 'runc';

/**
 * A podman with its own storage (overlay) and state under `dir`, so the bench neither reads nor
 * changes the host's containers. This host refuses to raise RLIMIT_NOFILE/NPROC, which podman does
 * by default, so every container asks for less.
 */
export class Podman {
  constructor(dir) {
    this.dir = dir;
    this.global = [
      '--root',
      path.join(dir, 'root'),
      '--runroot',
      path.join(dir, 'run'),
      '--tmpdir',
      path.join(dir, 'tmp'),
      '--storage-driver',
      'overlay',
      '--runtime',
      PODMAN_RUNTIME,
      '--cgroup-manager',
      'cgroupfs',
      '--events-backend',
      'file',
    ];
    this.ref = 'localhost/kiln-bench-httpd:latest';
  }

  /** The containers-storage reference skopeo writes this podman's images to. */
  storageRef() {
    return `containers-storage:[overlay@${path.join(this.dir, 'root')}+${path.join(this.dir, 'run')}]${this.ref}`;
  }

  async run(args, options = {}) {
    const { stdout } = await exec('podman', [...this.global, ...args], { timeout: 120_000, ...options });
    return stdout.trim();
  }

  /** Imports kiln's image from its OCI layout (`oci:<store>:<name>`) with skopeo; returns podman's image id. */
  async importFrom(storeDir, name) {
    mkdirSync(path.join(this.dir, 'tmp'), { recursive: true });
    await exec('skopeo', ['copy', '--quiet', `oci:${storeDir}:${name}`, this.storageRef()], {
      timeout: 120_000,
    });
    return this.run(['image', 'inspect', '--format', '{{.Id}}', this.ref]);
  }

  /**
   * `podman run -d --network host` of the imported image with PORT set, and `extra` options (such
   * as `--restart=always`); returns the container id.
   */
  async start(port, name, extra = []) {
    const out = await this.run([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'host',
      ...extra,
      '--ulimit',
      'nofile=1024:1024',
      '--ulimit',
      'nproc=1024:1024',
      '-e',
      `PORT=${port}`,
      this.ref,
    ]);
    return out.split('\n').at(-1);
  }

  /** Removes one container by the id podman printed, without a stop grace (httpd as pid 1 ignores TERM). */
  async remove(id) {
    await this.run(['rm', '--force', '--time', '0', id]);
  }

  /** The host pids of a container's conmon and its init. */
  async pidsOf(id) {
    const out = await this.run(['inspect', '--format', '{{.State.ConmonPid}} {{.State.Pid}}', id]);
    return out.split(/\s+/).map(Number);
  }

  /** Removes the imported image (the containers are removed one by one before). */
  async removeImage() {
    await this.run(['rmi', '--force', this.ref]);
  }
}

/** A LocalRuntimeDriver over `runtime`, its state in `dir`, every instance from `image.rootfs`. */
export function makeDriver(dir, runtime, image) {
  return new LocalRuntimeDriver({
    runtime,
    stateDir: path.join(dir, `instances-${runtime}`),
    runtimeRoot: path.join(dir, 'runtime-root'),
    rootfs: async (digest) => {
      if (digest !== image.digest) throw new Error(`the bench has no rootfs for ${digest}`);
      return image.rootfs;
    },
  });
}

/** An instance spec of the bench's httpd image on `port`, with a fresh, unique id. */
export function instanceSpec(image, label, port) {
  return {
    id: `kiln-bench-${label}-${randomBytes(4).toString('hex')}`,
    service: 'kiln-bench',
    release: 'r1',
    digest: image.digest,
    args: image.process.args,
    env: Object.fromEntries(Object.entries(image.process.env).filter(([k]) => k !== 'PORT')),
    cwd: image.process.cwd,
    user: image.process.user,
    port,
  };
}

/** Stop without a grace period: the image's httpd runs as pid 1 and ignores SIGTERM. */
export const STOP = { graceMs: 0 };

/**
 * Runs `samples` rounds (after one warm-up round, not counted); each round starts one kiln
 * instance per runtime and one podman container, in turn, each until its first HTTP 200, and
 * removes it before the next.
 */
export async function startBench({ image, dir, cleanup, podman, runtimes, samples }) {
  const drivers = new Map(runtimes.map((r) => [r, makeDriver(dir, r, image)]));
  cleanup.add('close the runtime drivers', () => Promise.all([...drivers.values()].map((d) => d.close())));
  const kilnOnce = async (runtime) => {
    const driver = drivers.get(runtime);
    const [port] = await freePorts(1);
    const spec = instanceSpec(image, `start-${runtime}`, port);
    const stop = cleanup.add(`stop instance ${spec.id}`, () => driver.stop(spec.id, STOP));
    const t0 = nowMs();
    await driver.start(spec);
    const started = nowMs();
    await waitHttp(port);
    const healthy = nowMs();
    await stop();
    return { total: healthy - t0, call: started - t0 };
  };
  const podmanOnce = async () => {
    const [port] = await freePorts(1);
    // Named first, so a run that fails before printing its id is still removed (by that name).
    let id = `kiln-bench-podman-${randomBytes(4).toString('hex')}`;
    const remove = cleanup.add(`remove podman container ${id}`, () => podman.remove(id));
    const t0 = nowMs();
    id = await podman.start(port, id);
    const started = nowMs();
    await waitHttp(port);
    const healthy = nowMs();
    await remove();
    return { total: healthy - t0, call: started - t0 };
  };
  const runners = runtimes.map((r) => [`kiln-${r}`, () => kilnOnce(r)]);
  if (podman !== undefined) runners.push(['podman', podmanOnce]);
  const raw = Object.fromEntries(runners.map(([name]) => [name, { total: [], call: [] }]));
  for (let round = 0; round <= samples; round++) {
    for (const [name, once] of runners) {
      const r = await once();
      // Round 0 warms caches (page cache, runtime binaries, podman's storage) and is not counted.
      if (round > 0) {
        raw[name].total.push(r.total);
        raw[name].call.push(r.call);
      }
    }
    if (round > 0 && round % 10 === 0) console.error(`bench: start to healthy, ${round}/${samples} rounds`);
  }
  const figures = {};
  for (const [name, r] of Object.entries(raw)) {
    figures[name] = { startToHealthyMs: summary(r.total), startCallMs: summary(r.call) };
  }
  const ratios = {};
  for (const runtime of podman === undefined ? [] : runtimes) {
    const k = figures[`kiln-${runtime}`].startToHealthyMs;
    const p = figures.podman.startToHealthyMs;
    ratios[`kiln-${runtime}/podman`] = { median: ratio(k.median, p.median), p99: ratio(k.p99, p.p99) };
  }
  return {
    samples,
    podmanRuntime: PODMAN_RUNTIME,
    method:
      'sequential; one warm-up round not counted; from the start call (driver.start / spawning `podman run -d`) until the first HTTP 200 on 127.0.0.1:$PORT, polled every 2 ms over new connections; start call = until driver.start resolved / podman run -d exited',
    figures,
    ratios,
  };
}
