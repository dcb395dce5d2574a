// The fleet benchmarks: start to healthy (kiln vs podman), router throughput and added latency
// (kiln's router vs direct vs HAProxy), bringing up N instances (time, memory, router memory), and
// recovery after kill -9 (kiln server vs podman's restart policy), and the chaos monkey's run
// under load (availability and MTTR).
// Every instance, container and process started here is ended by its id or PID before returning.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OciStore } from '../dist/oci/index.js';
import { ensureRootfs, processFromImage } from '../dist/runtime/index.js';
import { routerBench } from './fleet-router.js';
import { fleetMarkdown } from './fleet-markdown.js';
import { chaosBench } from './fleet-chaos.js';
import { recoveryBench } from './fleet-recovery.js';
import { scaleBench } from './fleet-scale.js';
import { Podman, startBench } from './fleet-start.js';
import { envInt, kiln, load1 } from './lib.js';

const list = (name, fallback) =>
  (process.env[name] ?? fallback)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');

/** The knobs, from the environment. */
export function fleetSettings() {
  const runtimes = list('BENCH_RUNTIMES', 'crun,runc');
  return {
    parts: list('BENCH_FLEET', 'start,router,scale,recovery,chaos'),
    suite: process.env.BENCH_SUITE ?? 'bookworm',
    runtimes,
    startSamples: envInt('BENCH_START_SAMPLES', 30),
    podman: process.env.BENCH_PODMAN !== '0',
    router: {
      connectionCounts: list('BENCH_ROUTER_CONNECTIONS', '32,1').map(Number),
      repetitions: envInt('BENCH_ROUTER_REPS', 3),
      warmupMs: envInt('BENCH_ROUTER_WARMUP_MS', 1000),
      durationMs: envInt('BENCH_ROUTER_MS', 5000),
    },
    scale: {
      runtime: process.env.BENCH_SCALE_RUNTIME ?? runtimes[0],
      counts: list('BENCH_INSTANCES', '100,1000').map(Number),
      podmanCounts: list('BENCH_PODMAN_INSTANCES', '100').map(Number),
      width: envInt('BENCH_START_CONCURRENCY', 4),
    },
    recovery: {
      runtime: process.env.BENCH_SCALE_RUNTIME ?? runtimes[0],
      kills: envInt('BENCH_RECOVERY_KILLS', 20),
      replicas: 3,
    },
    chaos: {
      runtime: process.env.BENCH_SCALE_RUNTIME ?? runtimes[0],
      kills: envInt('BENCH_CHAOS_KILLS', 30),
      intervalMs: envInt('BENCH_CHAOS_INTERVAL_MS', 2000),
      rate: envInt('BENCH_CHAOS_RATE', 500),
      replicas: 4,
    },
  };
}

/**
 * Bakes the bench's image with kiln (busybox-static, serving /www/index.html with `busybox httpd`
 * on 127.0.0.1:$PORT) and unpacks its rootfs once, as the driver's `ensureRootfs` does.
 */
async function bakeHttpdImage(dir, suite) {
  const project = path.join(dir, 'project');
  mkdirSync(path.join(project, 'www'), { recursive: true });
  writeFileSync(path.join(project, 'www', 'index.html'), 'ok\n');
  writeFileSync(
    path.join(project, 'kiln.yaml'),
    [
      'images:',
      '  - name: httpd',
      `    from: debian:${suite}`,
      '    packages: [busybox-static]',
      '    files:',
      '      - { src: ./www/index.html, dest: /www/index.html, mode: "0644" }',
      '    entrypoint: [/bin/busybox, sh, -c, "exec /bin/busybox httpd -f -p 127.0.0.1:$PORT -h /www"]',
      '',
    ].join('\n'),
  );
  const home = path.join(dir, 'home');
  const config = path.join(project, 'kiln.yaml');
  const bakeSeconds = kiln(config, home, ['bake', '--all']).seconds;
  const [info] = JSON.parse(kiln(config, home, ['images', '--json']).stdout);
  const storeDir = path.join(home, 'store');
  const store = await OciStore.open(storeDir);
  const manifest = await store.getManifest(info.digest);
  const imageConfig = JSON.parse((await store.getBlob(manifest.config.digest)).toString('utf8'));
  return {
    name: 'httpd',
    digest: info.digest,
    configDigest: manifest.config.digest,
    compressedBytes: info.size,
    bakeSeconds,
    storeDir,
    rootfs: await ensureRootfs(store, info.digest, path.join(home, 'rootfs')),
    process: processFromImage(imageConfig),
  };
}

/**
 * Unmounts whatever is still mounted under the run's own directory `dir`, deepest first: podman's
 * overlay storage bind-mounts `<dir>/podman/root/overlay` onto itself while a podman command runs,
 * and two podman processes that overlap can leave that mount behind.
 */
export function unmountUnder(dir) {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m !== undefined && m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    console.error(`bench: unmounting ${m}, left mounted under the run's directory`);
    const r = spawnSync('umount', [m], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`umount ${m} failed: ${r.stderr}`);
  }
}

/** Runs the fleet benchmarks picked by BENCH_FLEET; `cleanup` ends what they start. */
export async function fleetBench(cleanup) {
  const settings = fleetSettings();
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-bench-fleet-'));
  // The first step registered runs last, also when Ctrl-C runs the cleanup.
  cleanup.add(`remove ${dir}`, async () => {
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  const out = { settings, load1: { before: load1() } };
  try {
    console.error('bench: baking the busybox httpd image');
    const image = await bakeHttpdImage(dir, settings.suite);
    out.image = {
      digest: image.digest,
      configDigest: image.configDigest,
      compressedBytes: image.compressedBytes,
      bakeSeconds: image.bakeSeconds,
      entrypoint: image.process.args,
    };
    let podman;
    if (settings.podman) {
      podman = new Podman(path.join(dir, 'podman'));
      const id = await podman.importFrom(image.storeDir, image.name);
      cleanup.add('remove the image from the bench podman', () => podman.removeImage());
      out.image.podmanImageId = id;
      out.image.podmanVersion = (await podman.run(['--version'])).replace(/^podman version /, '');
      // podman's image id is the config digest: the same image as kiln's, not a rebuild.
      out.image.sameImageInPodman = `sha256:${id}` === image.configDigest;
    }
    if (settings.parts.includes('start')) {
      console.error(`bench: start to healthy (${settings.startSamples} samples each)`);
      out.startToHealthy = await startBench({
        image,
        dir,
        cleanup,
        podman,
        runtimes: settings.runtimes,
        samples: settings.startSamples,
      });
      out.load1.afterStart = load1();
    }
    if (settings.parts.includes('router')) {
      console.error('bench: router throughput and added latency');
      out.router = await routerBench({ dir, cleanup, ...settings.router });
      out.load1.afterRouter = load1();
    }
    if (settings.parts.includes('scale')) {
      out.scale = await scaleBench({ image, dir, cleanup, podman, ...settings.scale });
      out.load1.afterScale = load1();
    }
    if (settings.parts.includes('recovery')) {
      out.recovery = await recoveryBench({ image, dir, cleanup, podman, ...settings.recovery });
      out.load1.afterRecovery = load1();
    }
    if (settings.parts.includes('chaos')) {
      out.chaos = await chaosBench({ image, dir, cleanup, ...settings.chaos });
      out.load1.afterChaos = load1();
    }
  } finally {
    const failures = await cleanup.run();
    if (failures.length > 0) out.cleanupFailures = failures;
  }
  return out;
}

export { fleetMarkdown };
