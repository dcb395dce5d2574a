/**
 * kiln on a three-node Docker Swarm (three network namespaces, a dockerd in each, see
 * test/support/swarm-cluster.ts): `kiln server --target prod` runs the fleet there. Given a
 * service spread over the nodes, its instances are known (the engines attest them, and a file
 * planted in one or a shell opened in another gets it replaced), and under a constant load through
 * kiln's router, a blue/green deploy, a canary and the loss of a node cost no request the router
 * could not retry.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readServerFile, type DeployResultJson, type VerifyJson } from '../../src/api/index.js';
import {
  get,
  pageOf,
  SERVICE,
  useFleet,
  waitFor,
  waitServes,
  WEB_IMAGE_YAML,
  type FleetProject,
  type KilnProcess,
} from '../support/fleet.js';
import type { Digest } from '../../src/oci/index.js';
import { SwarmRuntimeDriver } from '../../src/runtime/index.js';
import { describeLoad, startLoad } from '../support/loadgen.js';
import { makeBusyboxRootfs } from '../support/rootfs.js';
import {
  startSwarm,
  swarmUnavailable,
  type TestSwarm,
  type TestSwarmNode,
} from '../support/swarm-cluster.js';

const unavailable = swarmUnavailable();
if (unavailable) console.warn(`skipping the multi-node swarm test: ${unavailable}`);

const { fleet } = useFleet();
const REPLICAS = 4;
const RATE = 200;

/** The fleet's image, listening on every address of its own network namespace (not 127.0.0.1). */
const IMAGE_YAML = WEB_IMAGE_YAML.replace('-p 127.0.0.1:$PORT', '-p $PORT');

let swarm: TestSwarm;

/** kiln.yaml: the service at `gen` with `strategy`, and the swarm as target `prod`. */
function config(f: FleetProject, gen: number, strategy: object): string {
  const nodes = Object.entries(swarm.nodeEngines)
    .map(([host, url]) => `      ${host}: "${url}"`)
    .join('\n');
  return `${IMAGE_YAML}services:
  - name: ${SERVICE}
    image: web
    replicas: ${REPLICAS}
    port: ${f.port}
    health: { http: /index.html, interval: 250ms, timeout: 1s }
    env: { GEN: "${gen}" }
    strategy: ${JSON.stringify(strategy)}
    progressDeadline: 3m
targets:
  prod:
    driver: swarm
    docker: "${swarm.manager.docker}"
    registry: "${swarm.registry}/kiln"
    insecureRegistry: true
    nodes:
${nodes}
`;
}

async function deploy(f: FleetProject, args: string[] = []): Promise<DeployResultJson> {
  const r = await f.kiln(['deploy', SERVICE, '--no-bake', '--wait', '--timeout', '4m', '--json', ...args]);
  expect(r.code, `kiln deploy:\n${r.stdout}${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as DeployResultJson;
}

/** Waits until five GETs in a row through the router are answered by `page`. */
function serves(f: FleetProject, page: string): Promise<void> {
  return waitServes(f.url, page, { timeoutMs: 30_000, everyMs: 50 });
}

/** The swarm's running tasks of the service's release: instance id → node hostname. */
async function placements(release: string): Promise<Map<string, string>> {
  const filters = ['--filter', `label=kiln.service=${SERVICE}`, '--filter', `label=kiln.release=${release}`];
  const names = (await swarm.docker(['service', 'ls', ...filters, '--format', '{{.Name}}']))
    .split('\n')
    .filter((n) => n !== '');
  if (names.length === 0) return new Map();
  const lines = await swarm.docker([
    'service', 'ps', ...names, '--filter', 'desired-state=running', '--format', '{{.Name}} {{.Node}} {{.CurrentState}}',
  ]); // prettier-ignore
  const out = new Map<string, string>();
  for (const line of lines.split('\n')) {
    const [task, node, state] = line.split(' ');
    if (task && node && state === 'Running') out.set(task.replace(/\.\d+$/, ''), node);
  }
  return out;
}

/** Starts `kiln server --target prod` and waits until its API answers. */
async function startServer(f: FleetProject): Promise<KilnProcess> {
  const server = f.spawnKiln(['server', '--target', 'prod']);
  await waitFor('kiln server --target prod', async () => {
    if (server.child.exitCode !== null) throw new Error(`kiln server exited:\n${server.output()}`);
    const file = await readServerFile(f.project.home).catch(() => undefined);
    if (file?.pid !== server.pid) return undefined;
    const res = await fetch(`${file.url}/v1/health`).catch(() => undefined);
    return res && (res.ok || res.status === 401) ? true : undefined;
  });
  return server;
}

/** The worker (not the manager) that runs the most of the instances at `addresses`. */
function mostLoadedWorker(addresses: readonly string[]): TestSwarmNode {
  const workers = swarm.nodes.slice(1).filter((n) => addresses.includes(n.address));
  const count = (n: TestSwarmNode) => addresses.filter((a) => a === n.address).length;
  const victim = workers.sort((a, b) => count(b) - count(a))[0];
  if (!victim) throw new Error(`no worker runs an instance: they run on ${addresses.join(', ')}`);
  return victim;
}

describe.skipIf(unavailable !== undefined).sequential('kiln on a three-node Docker Swarm', () => {
  beforeAll(async () => {
    swarm = await startSwarm({ tag: 'fl', nodes: 3 });
  });
  afterAll(async () => {
    await swarm?.destroy();
  });

  it('has Swarm place the instances of a lost node again; list reports their new address, where they serve', async () => {
    // Given four instances started through the driver on the swarm
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-swarm-resched-'));
    const driver = new SwarmRuntimeDriver({
      docker: swarm.manager.docker,
      nodes: swarm.nodeEngines,
      scope: 'reschedule',
      image: async (digest) => `${image.slice(0, image.indexOf('@'))}@${digest}`,
      pollIntervalMs: 100,
    });
    let image = '';
    try {
      const rootfs = await makeBusyboxRootfs(path.join(dir, 'rootfs'));
      await mkdir(path.join(rootfs, 'www'));
      await writeFile(path.join(rootfs, 'www', 'index.html'), 'placed again\n');
      image = await swarm.pushRootfs(rootfs, 'kiln/resched');
      const digest = image.slice(image.indexOf('@') + 1) as Digest;
      for (let k = 0; k < REPLICAS; k++) {
        await driver.start({
          id: `resched-${k}`,
          service: 'resched',
          release: 'r1',
          digest,
          args: ['/bin/sh', '-c', 'exec httpd -f -p "$PORT" -h /www'],
          env: {},
          port: 23_000 + k,
        });
      }
      const before = await driver.list();
      const victim = mostLoadedWorker(before.map((i) => i.host!));
      const lost = before.filter((i) => i.host === victim.address).map((i) => i.id);

      // When the worker running the most of them is stopped
      const stoppedAt = Date.now();
      await swarm.stopNode(victim);

      // Then each comes back, same id, on a node that is up, and serves at its new address
      const after = await waitFor(
        'the lost instances running on other nodes',
        async () => {
          const now = await driver.list();
          const moved = now.filter((i) => lost.includes(i.id));
          return moved.length === lost.length &&
            moved.every((i) => i.state === 'running' && i.host !== victim.address)
            ? now
            : undefined;
        },
        { timeoutMs: 120_000, everyMs: 200 },
      );
      const placedMs = Date.now() - stoppedAt;
      for (const i of after.filter((x) => lost.includes(x.id))) {
        const page = await waitFor(`${i.id} at ${i.host}:${i.port}`, async () => {
          const r = await get(`http://${i.host}:${i.port}/`);
          return 'body' in r && r.status === 200 ? r.body : undefined;
        });
        expect(page).toBe('placed again\n');
      }
      console.log(`swarm: ${lost.length} instance(s) of ${victim.hostname} placed again in ${placedMs} ms`);
      expect(after.map((i) => i.state)).toEqual(Array(REPLICAS).fill('running'));
      for (const i of after) await driver.stop(i.id, { graceMs: 0 });
      expect(await driver.list()).toEqual([]);
    } finally {
      await driver.close();
      await rm(dir, { recursive: true, force: true });
    }
    // And the node, started again on its old state, rejoins for the next test
    for (const node of swarm.nodes) await swarm.restartNode(node);
  }, 600_000);

  it('spreads a service over the nodes, and a blue/green, a canary and a lost node fail no request', async () => {
    // Given a project whose service runs on the swarm, pinned by digest
    const f = await fleet({ replicas: REPLICAS }, { bake: false });
    await f.write(config(f, 1, { type: 'rolling' }));
    await f.project.bake();
    await startServer(f);
    expect((await deploy(f)).rollout).toMatchObject({ to: 'r1', phase: 'succeeded' });
    await serves(f, pageOf('r1', 1));
    const first = await placements('r1');
    expect(first.size).toBe(REPLICAS);
    expect(new Set(first.values()).size, `tasks on ${[...first.values()].join(', ')}`).toBeGreaterThan(1);
    const [id] = [...first.keys()];
    const image = await swarm.docker([
      'service',
      'inspect',
      '--format',
      '{{.Spec.TaskTemplate.ContainerSpec.Image}}',
      id!,
    ]);
    expect(image).toMatch(
      new RegExp(`^${swarm.registry.replace(/\./g, '\\.')}/kiln/web@sha256:[0-9a-f]{64}$`),
    );

    // And the engines attest every instance exactly its release
    const verified = await f.kiln(['verify', '--all', '--json']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect((JSON.parse(verified.stdout) as VerifyJson).instances.map((v) => [v.verdict, v.manifest])).toEqual(
      Array(REPLICAS).fill(['clean', 'engine']),
    );

    // When someone on a node plants a file in one instance's writable layer, and opens a shell in another
    const api = await f.api();
    const [[planted, plantedOn], [shelled, shelledOn]] = [...first] as [[string, string], [string, string]];
    const onNode = async (id: string, hostname: string, args: (cid: string) => string[]) => {
      const node = swarm.nodes.find((n) => n.hostname === hostname)!;
      const cid = await swarm.docker(['ps', '-q', '--filter', `label=kiln.instance=${id}`], node);
      return swarm.docker(args(cid), node);
    };
    const upper = await onNode(planted, plantedOn, (cid) => [
      'inspect',
      '-f',
      '{{.GraphDriver.Data.UpperDir}}',
      cid,
    ]);
    const changedAt = Date.now();
    await writeFile(path.join(upper, 'planted'), '#!/bin/sh\n', { mode: 0o755 });
    const shell = onNode(shelled, shelledOn, (cid) => ['exec', cid, '/bin/busybox', 'sleep', '60']).catch(
      () => '',
    );

    // Then both are tainted and replaced, and the service keeps its four healthy instances
    await waitFor(
      `${planted} and ${shelled} replaced`,
      async () => {
        const live = await api.instances(SERVICE);
        const healthy = live.filter((i) => i.state === 'healthy' && i.id !== planted && i.id !== shelled);
        return healthy.length === REPLICAS && !live.some((i) => i.id === planted || i.id === shelled)
          ? true
          : undefined;
      },
      { timeoutMs: 60_000, everyMs: 100 },
    );
    const replacedMs = Date.now() - changedAt;
    await shell;
    const detected = (await api.events(0, SERVICE, 1000)).filter((e) => e.kind === 'drift.detected');
    expect(detected.map((e) => [e.subject, e.reason]).sort()).toEqual(
      [
        [planted, 'DriftDetected'],
        [shelled, 'DriftDetected'],
      ].sort(),
    );
    expect(detected.find((e) => e.subject === planted)!.message).toContain('/planted added');
    expect(detected.find((e) => e.subject === shelled)!.message).toMatch(
      /not by kiln: exec [0-9a-f]{12}: \/bin\/busybox sleep 60/,
    );
    console.log(`swarm: a planted file and a shell, both instances replaced ${replacedMs} ms later`);
    await serves(f, pageOf('r1', 1));

    // And a constant load through kiln's router on this host
    const load = await startLoad({ url: f.url, rate: RATE, bodies: true });

    // When r2 replaces r1 by blue/green
    // (blue is kept 2 s for an instant rollback, then retired)
    await f.write(config(f, 2, { type: 'bluegreen', rollbackWindow: '2s' }));
    const bluegreen = await deploy(f);
    expect(bluegreen.rollout).toMatchObject({
      from: 'r1',
      to: 'r2',
      strategy: 'bluegreen',
      phase: 'succeeded',
    });
    await serves(f, pageOf('r2', 2));

    // And r3 comes as a canary judged on the router's errors, then promoted
    const canary = {
      type: 'canary',
      steps: [{ weight: 25, analyse: '8s' }, { weight: 100 }],
      analysis: {
        interval: '2s',
        minSamples: 100,
        metrics: [{ name: 'errors', source: 'errors', critical: true }],
      },
    };
    await f.write(config(f, 3, canary));
    expect((await deploy(f)).rollout).toMatchObject({
      from: 'r2',
      to: 'r3',
      strategy: 'canary',
      phase: 'succeeded',
    });
    await serves(f, pageOf('r3', 3));

    // When the worker node running the most instances is stopped (its dockerd and everything in it killed)
    const before = await placements('r3');
    const victim = mostLoadedWorker(
      [...before.values()].map((h) => swarm.nodes.find((x) => x.hostname === h)!.address),
    );
    const lost = [...before].filter(([, node]) => node === victim!.hostname).map(([i]) => i);
    const stoppedAt = Date.now();
    await swarm.stopNode(victim!);

    // Then every instance runs again on the nodes that are up, and r3 keeps serving
    const after = await waitFor(
      `${REPLICAS} instances on the nodes that are up`,
      async () => {
        const now = await placements('r3');
        const up = [...now.values()].filter((n) => n !== victim!.hostname);
        return up.length === REPLICAS && ![...now.keys()].some((i) => lost.includes(i)) ? now : undefined;
      },
      { timeoutMs: 120_000, everyMs: 250 },
    );
    const recoveredMs = Date.now() - stoppedAt;
    await serves(f, pageOf('r3', 3));
    await sleep(3_000);

    // And the load lost no request: the router retried those the lost node refused
    const summary = await load.stop();
    console.log(
      `swarm: ${lost.length} instance(s) lost with ${victim!.hostname}, all ${REPLICAS} running elsewhere ` +
        `${recoveredMs} ms later (${[...after.values()].join(', ')}); load: ${describeLoad(summary)}`,
    );
    expect(summary.failures).toEqual({});
    expect(summary.failed).toBe(0);
    // And the drift check, attesting every instance through the deploys, found nothing else
    expect((await api.events(0, SERVICE, 1000)).filter((e) => e.kind === 'drift.detected')).toHaveLength(2);
    expect(Object.keys(summary.bodies ?? {}).sort()).toEqual([
      pageOf('r1', 1),
      pageOf('r2', 2),
      pageOf('r3', 3),
    ]);
  }, 900_000);
});
