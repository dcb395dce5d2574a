// The developer loop (issue #8), on the example app (examples/hello: a Node.js base from this
// machine's apt sources, and the hello app on it), in one run:
//   - edit to serving: `kiln dev hello`, beside `node --watch server.js` on the host (the floor: a
//     process restart and nothing else) and podman (the same base image, the same folder
//     bind-mounted, `podman restart` after each edit), interleaved, each on its own copy of the app;
//   - `kiln deploy hello --bake --wait` after a one-file app change (rebake of the app layer, then a
//     blue/green release of 3 replicas under `kiln server`), beside a cold bake of the same image.
// Every process and container started here is ended by its PID or id, also on Ctrl-C.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import {
  body,
  edit,
  editToServing,
  kilnDevPeer,
  nodeWatchPeer,
  podmanPeer,
  SERVICE,
  SETTLE_MS,
  stats,
} from './dev-peers.js';
import { spawnServer, stopLeftovers } from './fleet-control-plane.js';
import { Podman } from './fleet-start.js';
import { unmountUnder } from './fleet.js';
import { envInt, fmt, freePorts, KILN, kiln, nowMs, ratio, ROOT } from './lib.js';

const run = promisify(execFile);

/** The knobs, from the environment. */
export function devSettings() {
  return {
    suite: process.env.BENCH_SUITE ?? 'bookworm',
    edits: envInt('BENCH_DEV_EDITS', 15),
    deploys: envInt('BENCH_DEV_DEPLOYS', 5),
    coldRuns: envInt('BENCH_DEV_COLD_RUNS', 2),
    podman: process.env.BENCH_PODMAN !== '0',
    runtime: process.env.BENCH_SCALE_RUNTIME ?? 'crun',
  };
}

/** The example's stack as kiln.yaml, with the router on `port` (examples/hello/kiln.config.ts). */
function exampleYaml(suite, port) {
  return [
    'images:',
    '  - name: node-base',
    `    from: debian:${suite}`,
    '    packages: [nodejs, ca-certificates]',
    '    users: [{ name: app, uid: 1000, home: /home/app }]',
    '    env: { NODE_ENV: production, NODE_EXTRA_CA_CERTS: /etc/ssl/certs/ca-certificates.crt }',
    '  - name: hello',
    '    from: node-base',
    '    app: { src: ./app, type: npm, dest: /app }',
    '    user: app',
    '    workdir: /app',
    '    env: { PORT: "8080" }',
    '    ports: [8080]',
    '    cmd: [node, /app/server.js]',
    'services:',
    `  - name: ${SERVICE}`,
    '    image: hello',
    '    replicas: 3',
    `    port: ${port}`,
    '    health: { http: /healthz, interval: 1s, timeout: 500ms, threshold: 3 }',
    '    resources: { memory: 128Mi, cpus: 0.5 }',
    '    strategy: { type: rolling, maxSurge: 1, maxUnavailable: 0 }',
    '',
  ].join('\n');
}

/** `kiln deploy hello --bake --wait` after one-file changes, under `kiln server`. */
async function deployBake({ project, home, runtime, cleanup, deploys, routerPort }) {
  const config = path.join(project, 'kiln.yaml');
  const env = { ...process.env, KILN_HOME: home };
  const server = await spawnServer(project, home, runtime, cleanup);
  cleanup.add(`stop what kiln server left in ${home}`, () => stopLeftovers(home, runtime));
  try {
    const deploy = async (args) => {
      const t0 = nowMs();
      const { stdout } = await run(process.execPath, [KILN, '-c', config, 'deploy', SERVICE, ...args], {
        cwd: project,
        env,
        maxBuffer: 16 * 1024 * 1024,
      });
      return { seconds: (nowMs() - t0) / 1000, result: JSON.parse(stdout) };
    };
    edit(path.join(project, 'app'), 'r1');
    const first = await deploy(['--wait', '--json']);
    if (first.result.rollout?.phase !== 'succeeded')
      throw new Error(`the first deploy ended ${first.result.rollout?.phase}`);
    const samples = [];
    for (let i = 1; i <= deploys; i++) {
      const marker = `bake${i}-${Date.now()}`;
      edit(path.join(project, 'app'), marker);
      const r = await deploy(['--bake', '--wait', '--json']);
      const { rollout } = r.result;
      if (rollout?.phase !== 'succeeded' || rollout.strategy !== 'bluegreen')
        throw new Error(`deploy --bake #${i} ended ${rollout?.phase} (${rollout?.strategy})`);
      if (!(await body(routerPort))?.includes(marker))
        throw new Error(`after deploy --bake #${i} the router does not serve the edit`);
      samples.push(r.seconds);
      await sleep(SETTLE_MS);
    }
    return { firstDeploySeconds: first.seconds, ...stats(samples) };
  } finally {
    server.child.kill('SIGTERM');
    await new Promise((resolve) =>
      server.child.exitCode !== null ? resolve() : server.child.once('exit', resolve),
    );
    await stopLeftovers(home, runtime);
  }
}

/**
 * Where a `deploy --bake` spends its time, measured apart (no server running): the app-only
 * rebake (`kiln bake hello`, whole CLI run) and the root filesystem of the new digest, both as
 * `deploy --bake` gets it (unpacked onto a hard-link copy of the previous release's root: only the
 * app layer is applied) and as a first release of an image gets it (every layer, into an empty
 * directory). Each also records the manifest of the root's files (`ensureRootfs`).
 */
async function breakdown({ project, home, dir, runs }) {
  const config = path.join(project, 'kiln.yaml');
  const { OciStore } = await import('../dist/oci/index.js');
  const { ensureRootfs } = await import('../dist/runtime/index.js');
  const bake = [];
  const onto = [];
  const full = [];
  for (let i = 0; i < runs; i++) {
    const store = await OciStore.open(path.join(home, 'store'));
    const before = (await store.resolve('hello')).digest;
    edit(path.join(project, 'app'), `split${i}-${Date.now()}`);
    bake.push(kiln(config, home, ['bake', 'hello']).seconds);
    const after = (await (await OciStore.open(path.join(home, 'store'))).resolve('hello')).digest;
    const scratch = path.join(dir, `unpack-${i}`);
    await ensureRootfs(store, before, scratch);
    let t0 = nowMs();
    await ensureRootfs(store, after, scratch);
    onto.push((nowMs() - t0) / 1000);
    const empty = path.join(dir, `unpack-full-${i}`);
    t0 = nowMs();
    await ensureRootfs(store, after, empty);
    full.push((nowMs() - t0) / 1000);
    rmSync(scratch, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  }
  return {
    appOnlyBakeCliSeconds: stats(bake),
    rootfsOntoSeconds: stats(onto),
    rootfsUnpackSeconds: stats(full),
  };
}

/** Runs the developer-loop benchmarks; `cleanup` ends what they start. */
export async function devBench(cleanup) {
  const settings = devSettings();
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-bench-dev-'));
  cleanup.add(`remove ${dir}`, async () => {
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  const out = { settings };
  try {
    const project = path.join(dir, 'project');
    const [routerPort, devPort, nodePort, podmanPort] = await freePorts(4);
    cpSync(path.join(ROOT, 'examples', 'hello', 'app'), path.join(project, 'app'), { recursive: true });
    writeFileSync(path.join(project, 'kiln.yaml'), exampleYaml(settings.suite, routerPort));
    const config = path.join(project, 'kiln.yaml');

    console.error(`bench: dev, cold bakes of hello (${settings.coldRuns}, empty store and cache each)`);
    const cold = [];
    let home;
    for (let i = 0; i < settings.coldRuns; i++) {
      home = path.join(dir, `home-${i}`);
      rmSync(path.join(project, 'kiln.lock'), { force: true });
      cold.push(kiln(config, home, ['bake', 'hello']).seconds);
    }
    out.coldBakeSeconds = stats(cold);

    const peers = [kilnDevPeer({ project, home, port: devPort, cleanup, runtime: settings.runtime })];
    const nodeApp = path.join(dir, 'peers', 'node-app');
    cpSync(path.join(project, 'app'), nodeApp, { recursive: true });
    peers.push(nodeWatchPeer({ appDir: nodeApp, port: nodePort, cleanup }));
    if (settings.podman) {
      const podman = new Podman(path.join(dir, 'podman'));
      podman.ref = 'localhost/kiln-bench-node-base:latest';
      await podman.importFrom(path.join(home, 'store'), 'node-base');
      cleanup.add('remove the node-base image from the bench podman', () => podman.removeImage());
      out.podmanVersion = (await podman.run(['--version'])).replace(/^podman version /, '');
      const podmanApp = path.join(dir, 'peers', 'podman-app');
      cpSync(path.join(project, 'app'), podmanApp, { recursive: true });
      mkdirSync(podmanApp, { recursive: true });
      peers.push(podmanPeer({ podman, appDir: podmanApp, port: podmanPort, cleanup }));
    }
    console.error(`bench: dev, edit to serving (${settings.edits} edits each, interleaved)`);
    out.editToServing = await editToServing({ peers, edits: settings.edits });

    console.error(`bench: dev, kiln deploy --bake after a one-file change (${settings.deploys})`);
    try {
      out.deployBakeSeconds = await deployBake({
        project,
        home,
        runtime: settings.runtime,
        cleanup,
        deploys: settings.deploys,
        routerPort,
      });
    } catch (err) {
      console.error(`bench: dev, deploy --bake: ${err instanceof Error ? err.stack : String(err)}`);
      out.deployBakeSeconds = {
        measured: false,
        reason: `not measured: ${err instanceof Error ? err.message : err}`,
      };
    }

    console.error('bench: dev, where deploy --bake spends its time (app-only rebake, rootfs unpack)');
    out.deployBakeBreakdown = await breakdown({ project, home, dir, runs: 3 });

    const e = out.editToServing;
    out.ratios = {
      kilnDevVsNodeWatch: ratio(e['kiln dev']?.median, e['node --watch (host)']?.median),
      kilnDevVsPodman: ratio(e['kiln dev']?.median, e['podman restart']?.median),
      deployBakeVsColdBake: ratio(out.deployBakeSeconds?.median, out.coldBakeSeconds?.median),
    };
  } finally {
    const failures = await cleanup.run();
    if (failures.length > 0) out.cleanupFailures = failures;
  }
  return out;
}

/** The developer-loop figures as a markdown section. */
export function devMarkdown(dev) {
  const e = dev.editToServing ?? {};
  const row = (name) => {
    const x = e[name];
    if (x === undefined) return undefined;
    if (x.measured === false) return `| ${name} | ${x.reason} | | | |`;
    return `| ${name} | ${fmt.ms(x.median)} | ${fmt.ms(x.p90)} | ${fmt.ms(x.max)} | ${fmt.ms(x.firstStartMs)} |`;
  };
  const r = dev.ratios ?? {};
  const d = dev.deployBakeSeconds ?? {};
  const kd = e['kiln dev'];
  const b = dev.deployBakeBreakdown ?? {};
  return [
    '## Developer loop',
    '',
    `The example app (examples/hello, ${dev.settings.suite}); ${dev.settings.edits} edits of server.js per way of running it, interleaved; from the write until GET / answers with the edit (a new connection every 2 ms).`,
    '',
    '| edit to serving | median | p90 | slowest | first start until serving |',
    '|---|---|---|---|---|',
    ...['kiln dev', 'node --watch (host)', 'podman restart'].map(row).filter((x) => x !== undefined),
    '',
    `Ratio kiln dev / node --watch: ${fmt.ratio(r.kilnDevVsNodeWatch)}; kiln dev / podman restart: ${fmt.ratio(r.kilnDevVsPodman)}.` +
      (kd?.reportedHealthyMs
        ? ` kiln dev's own "healthy in" (from the change it saw): median ${fmt.ms(kd.reportedHealthyMs.median)}.`
        : ''),
    '',
    '| what | median | samples |',
    '|---|---|---|',
    d.measured === false
      ? `| kiln deploy hello --bake --wait (one-file change) | ${d.reason} | |`
      : `| kiln deploy hello --bake --wait (one-file change: app layer, blue/green of 3) | ${fmt.s(d.median)} | ${d.n} |`,
    `| cold bake of hello (empty store and cache) | ${fmt.s(dev.coldBakeSeconds?.median)} | ${dev.coldBakeSeconds?.n ?? 0} |`,
    `| of a deploy --bake: app-only rebake, whole CLI run | ${fmt.s(b.appOnlyBakeCliSeconds?.median)} | ${b.appOnlyBakeCliSeconds?.n ?? 0} |`,
    `| of a deploy --bake: the new digest's root, its app layer unpacked onto the previous release's | ${fmt.s(b.rootfsOntoSeconds?.median)} | ${b.rootfsOntoSeconds?.n ?? 0} |`,
    `| for comparison: the same root unpacked whole, as an image's first release gets it | ${fmt.s(b.rootfsUnpackSeconds?.median)} | ${b.rootfsUnpackSeconds?.n ?? 0} |`,
    '',
    `Ratio deploy --bake / cold bake: ${fmt.ratio(r.deployBakeVsColdBake)}.`,
    '',
  ].join('\n');
}
