/**
 * The swarm driver against a real one-node Docker Swarm (Debian's dockerd in a network namespace
 * of the test's own, see test/support/swarm-cluster.ts): the runtime conformance suite, then what
 * only Swarm has (the service's spec on the engine, the node's address, refusals).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { Cleanup, startAuthProxy } from '../../../test/support/registry.js';
import { makeBusyboxRootfs } from '../../../test/support/rootfs.js';
import {
  DOCKER_CLI,
  startSwarm,
  swarmUnavailable,
  type TestSwarm,
} from '../../../test/support/swarm-cluster.js';
import { KilnError, ValidationError } from '../../errors/index.js';
import type { Digest } from '../../oci/index.js';
import { runRuntimeDriverConformance } from '../conformance.js';
import type { InstanceSpec } from '../driver.js';
import { SwarmRuntimeDriver } from './driver.js';
import { readEngineTls } from './engine.js';
import { probeSwarm } from './probe.js';
import type { ServiceSpecJson } from './service-spec.js';

const unavailable = swarmUnavailable();
if (unavailable) console.warn(`skipping the swarm driver tests: ${unavailable}`);

let swarm: TestSwarm;
let reference: string;
let dir: string;
const digestOf = (ref: string) => ref.slice(ref.indexOf('@') + 1) as Digest;
const made: SwarmRuntimeDriver[] = [];

const driver = (
  scope: string,
  extra: {
    image?: (d: Digest) => Promise<string>;
    registryAuth?: { username: string; password: string };
  } = {},
) => {
  const d = new SwarmRuntimeDriver({
    docker: swarm.manager.docker,
    image: extra.image ?? (async (digest) => `${reference.slice(0, reference.indexOf('@'))}@${digest}`),
    scope,
    pollIntervalMs: 100,
    ...(extra.registryAuth ? { registryAuth: extra.registryAuth } : {}),
  });
  made.push(d);
  return d;
};

describe.skipIf(unavailable !== undefined)('swarm runtime driver on a one-node swarm', () => {
  beforeAll(async () => {
    swarm = await startSwarm({ tag: 'conf', nodes: 1, tls: true });
    dir = await mkdtemp(join(tmpdir(), 'kiln-swarm-image-'));
    const rootfs = await makeBusyboxRootfs(join(dir, 'rootfs'));
    await mkdir(join(rootfs, 'www'));
    await writeFile(join(rootfs, 'www', 'index.html'), 'kiln conformance\n');
    reference = await swarm.pushRootfs(rootfs, 'kiln/conformance');
  });

  afterAll(async () => {
    await swarm?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  runRuntimeDriverConformance('swarm', () => driver('conformance'), {
    get digest() {
      return digestOf(reference);
    },
    // Instances listen inside their own network namespace, reached at the node's address.
    realNetwork: true,
    listen: '0.0.0.0',
    patienceMs: 30_000,
  });

  describe('what only Swarm has', () => {
    afterEach(async () => {
      const sweeper = driver('swarm-own');
      for (const left of await sweeper.list()) await sweeper.stop(left.id, { graceMs: 0 });
      await Promise.all(made.splice(0).map((d) => d.close()));
    });

    const spec = (id: string, extra: Partial<InstanceSpec> = {}): InstanceSpec => ({
      id,
      service: 'web',
      release: 'r2',
      digest: digestOf(reference),
      args: ['/bin/sh', '-c', 'echo "$KILN_NOTE" > /tmp/note; exec httpd -f -p "$PORT" -h /www'],
      env: { KILN_NOTE: 'hello' },
      port: 24_000 + Math.floor(Math.random() * 1_000),
      labels: { 'kiln.service': 'web', 'kiln.release': 'r2' },
      ...extra,
    });

    it('runs one pinned, read-only, limited service per instance, reached at its node address', async () => {
      const d = driver('swarm-own');
      const s = spec('web-r2-a1b2', {
        cpus: 0.5,
        memoryBytes: 64 * 1024 * 1024,
        healthCheck: {
          args: ['/bin/sh', '-c', 'test -f /tmp/note'],
          intervalMs: 1_000,
          timeoutMs: 500,
          retries: 3,
        },
      });
      const started = await d.start(s);
      expect(started).toMatchObject({
        id: s.id,
        state: 'running',
        host: swarm.manager.address,
        port: s.port,
      });

      const [service] = JSON.parse(await swarm.docker(['service', 'inspect', s.id])) as [
        { Spec: ServiceSpecJson },
      ];
      const task = service.Spec.TaskTemplate;
      expect(task.ContainerSpec.Image).toBe(reference);
      expect(task.ContainerSpec.ReadOnly).toBe(true);
      expect(task.ContainerSpec.Healthcheck?.Test).toEqual(['CMD', '/bin/sh', '-c', 'test -f /tmp/note']);
      expect(task.Resources.Limits).toEqual({ NanoCPUs: 500_000_000, MemoryBytes: 64 * 1024 * 1024 });
      expect(task.RestartPolicy.Condition).toBe('none');
      expect(service.Spec.Labels).toMatchObject({
        'kiln.instance': s.id,
        'kiln.service': 'web',
        'kiln.release': 'r2',
      });
      expect(service.Spec.EndpointSpec).toEqual({
        Mode: 'dnsrr',
        Ports: [{ Protocol: 'tcp', TargetPort: s.port, PublishedPort: s.port, PublishMode: 'host' }],
      });

      const body = await eventually(async () => {
        const res = await fetch(`http://${started.host}:${s.port}/`);
        return res.ok ? res.text() : undefined;
      });
      expect(body).toBe('kiln conformance\n');
      // The root is read-only; /tmp is the instance's own tmpfs.
      const write = await d.exec(s.id, ['/bin/sh', '-c', 'touch /www/x; cat /tmp/note']);
      expect(write.stderr).toMatch(/Read-only file system/);
      expect(write.stdout).toBe('hello\n');
      // The engine's own check passes, as Docker reports it.
      const health = await eventually(async () => {
        const cid = (await swarm.docker(['ps', '-q', '--filter', `label=kiln.instance=${s.id}`])).trim();
        const h = await swarm.docker(['inspect', '-f', '{{.State.Health.Status}}', cid]);
        return h === 'healthy' ? h : undefined;
      });
      expect(health).toBe('healthy');
    });

    it('attests an instance as its engine sees it: image, process, changes to its root, processes started in it', async () => {
      const d = driver('swarm-own');
      const s = spec('web-r2-e5f6', {
        healthCheck: { args: ['/bin/sh', '-c', 'sleep 0.3'], intervalMs: 200, timeoutMs: 1_000, retries: 3 },
      });
      await d.start(s);
      const fresh = await d.attest(s.id);
      // What Docker adds itself (docker-init, the mount points of its files) is not a change.
      expect(fresh).toEqual({
        image: reference,
        args: s.args,
        env: { KILN_NOTE: 'hello', PORT: String(s.port) },
        changes: [],
        foreignProcesses: [],
      });
      // The driver's own exec sessions, and Docker's health probes, are not foreign, even while they run.
      const own = d.exec(s.id, ['/bin/sh', '-c', 'sleep 1']);
      await sleep(300);
      expect((await d.attest(s.id))?.foreignProcesses).toEqual([]);
      await own;

      // When someone on the node plants a file in the container's writable layer, and opens a shell in it
      const cid = (await swarm.docker(['ps', '-q', '--filter', `label=kiln.instance=${s.id}`])).trim();
      const upper = await swarm.docker(['inspect', '-f', '{{.GraphDriver.Data.UpperDir}}', cid]);
      await writeFile(join(upper, 'planted'), '#!/bin/sh\n', { mode: 0o755 });
      const shell = swarm.docker(['exec', cid, '/bin/sh', '-c', 'sleep 3']).catch(() => 'cut short');
      const seen = await eventually(async () => {
        const a = await d.attest(s.id);
        return a && a.foreignProcesses.length > 0 ? a : undefined;
      });
      // Then the engine's diff shows the file, and the shell is reported
      expect(seen.changes).toEqual([{ path: 'planted', change: 'added', detail: expect.any(String) }]);
      expect(seen.foreignProcesses).toEqual([
        expect.stringMatching(/^exec [0-9a-f]{12}: \/bin\/sh -c sleep 3$/),
      ]);
      await shell;
      expect(await driver('swarm-own').attest('web-r2-none')).toBeUndefined();
    });

    it('has the nodes pull from a registry that wants credentials with those given, and fails the start without', async () => {
      const cleanup = new Cleanup();
      try {
        // Basic auth in front of the test registry, on the bridge the nodes reach it by.
        const bridge = swarm.registry.slice(0, swarm.registry.indexOf(':'));
        const credentials = { username: 'kiln', password: randomBytes(8).toString('hex') };
        const proxy = await startAuthProxy(cleanup, swarm.registry, 'basic', credentials, bridge);
        const image = async (digest: Digest) => `${proxy.host}/kiln/conformance@${digest}`;

        const refused = await driver('swarm-own', { image })
          .start(spec('web-r2-anon'))
          .catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(KilnError);
        // Swarm reports the pull that the registry refused as the image not found.
        expect((refused as KilnError).message).toMatch(/web-r2-anon could not start: .*No such image/i);
        expect([proxy.refused > 0, proxy.forwarded]).toEqual([true, 0]);

        const started = await driver('swarm-own', { image, registryAuth: credentials }).start(
          spec('web-r2-auth'),
        );
        expect(started.state).toBe('running');
        expect(proxy.forwarded).toBeGreaterThan(0);
        const body = await eventually(async () => {
          const res = await fetch(`http://${started.host}:${started.port}/`);
          return res.ok ? res.text() : undefined;
        });
        expect(body).toBe('kiln conformance\n');
      } finally {
        await cleanup.run();
      }
    });

    it('speaks TLS to an engine at a tcp:// address with a client certificate; without one, it is refused', async () => {
      const tcp = swarm.manager.tcp!;
      const tls = await readEngineTls(swarm.tls!, 'targets.prod.tls');
      const d = new SwarmRuntimeDriver({
        docker: tcp,
        tls,
        image: async (digest) => `${reference.slice(0, reference.indexOf('@'))}@${digest}`,
        scope: 'swarm-own',
        pollIntervalMs: 100,
      });
      made.push(d);
      const s = spec('web-r2-tls');
      expect(await d.start(s)).toMatchObject({ id: s.id, state: 'running', host: swarm.manager.address });
      expect((await d.list()).map((i) => i.id)).toEqual([s.id]);
      // The shell kiln exec hands the CLI carries the same TLS, and works.
      const argv = await d.execCommand(s.id, ['/bin/sh', '-c', 'echo "$KILN_NOTE"']);
      expect(argv.slice(0, 9)).toEqual([
        'docker', '-H', tcp, '--tlsverify', '--tlscacert', swarm.tls!.ca, '--tlscert', swarm.tls!.cert, '--tlskey',
      ]); // prettier-ignore
      expect((await execa(DOCKER_CLI, argv.slice(1), { stdin: 'ignore' })).stdout).toBe('hello');
      await d.stop(s.id, { graceMs: 0 });
      expect(await d.list()).toEqual([]);
      expect((await probeSwarm(tcp, tls)).ok).toBe(true);

      // Without TLS the engine answers nothing kiln can use, and doctor says so
      const plain = new SwarmRuntimeDriver({ docker: tcp, image: async () => reference, scope: 'swarm-own' });
      made.push(plain);
      await expect(plain.list()).rejects.toThrow(KilnError);
      expect((await probeSwarm(tcp)).ok).toBe(false);
    });

    it('refuses host mounts and ids Swarm cannot name, and starts nothing', async () => {
      const d = driver('swarm-own');
      const error = await d
        .start(spec('web_r2.x', { mounts: [{ source: '/srv', destination: '/data' }] }))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).issues.map((i) => i.path).sort()).toEqual(['id', 'mounts']);
      expect(await d.list()).toEqual([]);
    });

    it('fails a start whose image the nodes cannot pull with the task error, leaving no service', async () => {
      const missing = `sha256:${'0'.repeat(64)}` as Digest;
      const d = driver('swarm-own');
      const error = await d.start(spec('web-r2-nopull', { digest: missing })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KilnError);
      expect((error as KilnError).message).toMatch(
        /web-r2-nopull could not start: .*(No such image|not found|manifest unknown)/i,
      );
      expect(await d.list()).toEqual([]);
    });

    it('keeps other scopes apart: a driver lists only its own instances', async () => {
      const mine = driver('swarm-own');
      const theirs = driver('swarm-theirs');
      const s = spec('web-r2-c3d4');
      await mine.start(s);
      expect((await mine.list()).map((i) => i.id)).toEqual([s.id]);
      expect(await theirs.list()).toEqual([]);
    });
  });
});

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`nothing within ${timeoutMs} ms`);
    await sleep(100);
  }
}
