import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { makeBusyboxRootfs } from '../../test/support/rootfs.js';
import { KilnError, NotFoundError, ValidationError } from '../errors/index.js';
import type { Digest } from '../oci/index.js';
import { existingCgroupDirs, inspectCgroups, removeCgroupDirs, type CgroupHost } from './cgroups.js';
import { EXEC_SCRIPT, freePort, runRuntimeDriverConformance, SERVE_SCRIPT } from './conformance.js';
import { pickRuntime, type RuntimeName } from './detect.js';
import type { InstanceSpec, InstanceStatus } from './driver.js';
import { cgroupsPathOf } from './instance-store.js';
import { LocalRuntimeDriver, type LocalRuntimeDriverOptions } from './local.js';
import { runtimeStateDir } from './oci-runtime.js';

const DIGEST: Digest = `sha256:${'cd'.repeat(32)}`;
const RUNTIMES: readonly RuntimeName[] = ['crun', 'runc'];

let base: string;
let rootfs: string;
let host: CgroupHost;

beforeAll(async () => {
  // Missing crun, runc or busybox-static fail here, naming the apt-get fix, rather than skip.
  for (const name of RUNTIMES) await pickRuntime(name);
  base = await mkdtemp(join(tmpdir(), 'kiln-local-driver-'));
  rootfs = await makeBusyboxRootfs(join(base, 'rootfs'));
  await mkdir(join(rootfs, 'www'));
  await writeFile(join(rootfs, 'www', 'index.html'), 'kiln conformance\n');
  host = await inspectCgroups();
});

afterAll(async () => {
  // Whatever a failed test left running is removed before its directories go.
  for (const name of RUNTIMES) {
    const runtime = await pickRuntime(name);
    const root = runtimeStateDir(name, join(base, 'runtime'));
    const [file = runtime.path, ...prefix] = runtime.command;
    const listed = await execa(file, [...prefix, '--root', root, 'list', '--quiet'], { reject: false });
    for (const id of listed.stdout.split('\n').filter((line) => line !== '')) {
      await execa(file, [...prefix, '--root', root, 'delete', '--force', id], { reject: false });
      await rmCgroups(id);
    }
  }
  if (base !== undefined) await rm(base, { recursive: true, force: true });
});

async function rmCgroups(id: string): Promise<void> {
  await removeCgroupDirs(host, cgroupsPathOf(id)).catch(() => undefined);
}

/** The network interfaces listed in a `/proc/net/dev` text, sorted. */
function interfaces(procNetDev: string): string[] {
  return procNetDev
    .split('\n')
    .slice(2)
    .map((line) => line.split(':')[0]!.trim())
    .filter((name) => name !== '')
    .sort();
}

/** Runs `task` over `items`, at most `width` at a time. */
async function inBatches<T>(
  items: readonly T[],
  width: number,
  task: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

/** GET / on a loopback port, retried until the instance listens (start does not wait for that). */
async function httpGet(port: number): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await (await fetch(`http://127.0.0.1:${port}/`)).text();
    } catch (err) {
      if (attempt >= 200) throw err;
      await sleep(25);
    }
  }
}

const rootfsOf = async (digest: Digest): Promise<string> => {
  if (digest !== DIGEST) throw new NotFoundError(`no rootfs for ${digest}`);
  return rootfs;
};

describe.each(RUNTIMES)('LocalRuntimeDriver under %s', (runtime) => {
  const options = (extra: Partial<LocalRuntimeDriverOptions> = {}): LocalRuntimeDriverOptions => ({
    runtime,
    stateDir: join(base, runtime, 'instances'),
    runtimeRoot: join(base, 'runtime'),
    rootfs: rootfsOf,
    ...extra,
  });

  runRuntimeDriverConformance(`local (${runtime})`, () => new LocalRuntimeDriver(options()), {
    digest: DIGEST,
    realNetwork: true,
  });

  describe('on this host', () => {
    const drivers: LocalRuntimeDriver[] = [];
    let serial = 0;
    const driver = (extra: Partial<LocalRuntimeDriverOptions> = {}): LocalRuntimeDriver => {
      const made = new LocalRuntimeDriver(options(extra));
      drivers.push(made);
      return made;
    };
    const spec = async (extra: Partial<InstanceSpec> = {}): Promise<InstanceSpec> => ({
      id: `${runtime}-local-${++serial}`,
      service: 'web',
      release: 'r1',
      digest: DIGEST,
      args: ['/bin/sh', '-c', SERVE_SCRIPT],
      env: { GREETING: 'local' },
      port: await freePort(),
      ...extra,
    });

    afterEach(async () => {
      await Promise.all(drivers.splice(0).map((d) => d.close()));
      const sweeper = new LocalRuntimeDriver(options());
      try {
        for (const left of await sweeper.list()) await sweeper.stop(left.id, { graceMs: 0 });
      } finally {
        await sweeper.close();
      }
    });

    /** Nothing of the instance is left: no container, bundle directory or cgroup. */
    async function expectGone(id: string): Promise<void> {
      const info = await pickRuntime(runtime);
      const [file = info.path, ...prefix] = info.command;
      const root = runtimeStateDir(runtime, join(base, 'runtime'));
      const listed = await execa(file, [...prefix, '--root', root, 'list', '--quiet']);
      expect(listed.stdout.split('\n')).not.toContain(id);
      expect(await readdir(join(base, runtime, 'instances'))).not.toContain(id);
      expect(await existingCgroupDirs(host, cgroupsPathOf(id))).toEqual([]);
    }

    it('writes a bundle that runs the shared rootfs read-only in the host network, with its limits', async () => {
      const d = driver();
      const s = await spec({ memoryBytes: 64 * 1024 * 1024, cpus: 0.5, labels: { tier: 'front' } });
      await d.start(s);
      const dir = join(base, runtime, 'instances', s.id);
      expect((await readdir(dir)).sort()).toEqual(
        expect.arrayContaining(['config.json', 'init.pid', 'instance.json', 'output.log']),
      );
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as {
        root: unknown;
        process: { env: string[] };
        linux: { namespaces: { type: string }[]; cgroupsPath: string };
        mounts: { destination: string; type: string }[];
      };
      expect(config.root).toEqual({ path: rootfs, readonly: true });
      expect(config.linux.namespaces.map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount']);
      expect(config.linux.cgroupsPath).toBe(cgroupsPathOf(s.id));
      expect(config.process.env).toContain(`PORT=${s.port}`);
      expect(config.mounts).toContainEqual(expect.objectContaining({ destination: '/tmp', type: 'tmpfs' }));
      const record = JSON.parse(await readFile(join(dir, 'instance.json'), 'utf8')) as { spec: unknown };
      expect(record.spec).toEqual(s);

      const v2 = host.mode === 'v2';
      const limits = v2
        ? 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max'
        : 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us';
      const inside = await d.exec(s.id, ['/bin/sh', '-c', `${limits}; hostname`]);
      expect(inside.stdout.split('\n')).toEqual(['67108864', v2 ? '50000 100000' : '50000', s.id, '']);
      const hostInterfaces = interfaces(await readFile('/proc/net/dev', 'utf8'));
      expect(hostInterfaces.length).toBeGreaterThan(1);
      expect(interfaces((await d.exec(s.id, ['cat', '/proc/net/dev'])).stdout)).toEqual(hostInterfaces);
    });

    it('leaves no container, bundle or cgroup behind after stop', async () => {
      const d = driver();
      const s = await spec();
      await d.start(s);
      expect(await existingCgroupDirs(host, cgroupsPathOf(s.id))).not.toEqual([]);
      await d.stop(s.id, { graceMs: 5_000 });
      await expectGone(s.id);
    });

    it('fails a start clearly when the program is missing, and leaves nothing behind', async () => {
      const d = driver();
      const s = await spec({ args: ['/no/such/program'] });
      const error: unknown = await d.start(s).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(KilnError);
      expect((error as KilnError).code).toBe('runtime');
      expect((error as KilnError).message).toMatch(
        new RegExp(`^${runtime} could not start instance ${s.id}: .*/no/such/program`),
      );
      await expectGone(s.id);
      expect(await d.list()).toEqual([]);
      await expect(d.start({ ...s, args: ['/bin/sh', '-c', SERVE_SCRIPT] })).resolves.toMatchObject({
        state: 'running',
      });
    });

    it('wraps a rootfs failure with the instance it was for', async () => {
      const d = driver();
      const s = await spec({ digest: `sha256:${'ef'.repeat(32)}` });
      await expect(d.start(s)).rejects.toThrow(
        new RegExp(`^starting instance ${s.id}: no rootfs for sha256:`),
      );
      await expect(d.start(s)).rejects.toBeInstanceOf(NotFoundError);
      await expectGone(s.id);
    });

    it('runs an init as PID 1 that passes SIGTERM on, so a process that ignores it as PID 1 stops', async () => {
      // busybox sleep as PID 1 would ignore SIGTERM, and stop would wait out the whole grace.
      const d = driver({ init: '/usr/bin/tini-static' });
      const s = await d.start(await spec({ args: ['/bin/sleep', '1000'] }));
      const pid1 = await d.exec(s.id, ['/bin/cat', '/proc/1/cmdline']);
      expect(pid1.stdout.split('\0').slice(0, 3)).toEqual(['/dev/init', '--', '/bin/sleep']);
      await d.stop(s.id, { graceMs: 60_000 });
      expect(await d.inspect(s.id)).toBeUndefined();
    }, 20_000);

    it('keeps the output in logDir after the instance is stopped', async () => {
      const logDir = join(base, runtime, 'logs');
      const d = driver({ logDir });
      const s = await spec({ args: ['/bin/sh', '-c', 'echo from the log dir; exec sleep 1000'] });
      await d.start(s);
      // start() returns once the process runs, not once it has printed: wait for the line first.
      const log = join(logDir, `${s.id}.log`);
      for (let i = 0; i < 500 && (await readFile(log, 'utf8').catch(() => '')) === ''; i++) await sleep(10);
      await d.stop(s.id, { graceMs: 0 });
      expect(await readFile(log, 'utf8')).toBe('from the log dir\n');
    });

    it('refuses an empty exec and gives up on one that outlives its timeout', async () => {
      const d = driver();
      const s = await spec();
      await d.start(s);
      await expect(d.exec(s.id, [])).rejects.toBeInstanceOf(ValidationError);
      await expect(d.exec(s.id, ['sleep', '30'], { timeoutMs: 300 })).rejects.toThrow(
        /timed out after 300 ms/,
      );
      expect((await d.exec(s.id, ['/bin/sh', '-c', EXEC_SCRIPT])).exitCode).toBe(3);
    });

    it('reports an instance the runtime no longer knows (as after a reboot) as exited, and removes it', async () => {
      const d = driver();
      const s = await spec();
      await d.start(s);
      await d.close();
      const info = await pickRuntime(runtime);
      const [file = info.path, ...prefix] = info.command;
      const root = runtimeStateDir(runtime, join(base, 'runtime'));
      await execa(file, [...prefix, '--root', root, 'delete', '--force', s.id]);
      const after = driver();
      expect(await after.inspect(s.id)).toMatchObject({ id: s.id, state: 'exited' });
      await after.stop(s.id);
      await expectGone(s.id);
    });

    it('runs 100 instances that all answer HTTP, then stops them all leaving nothing behind', async () => {
      const d = driver();
      const ports = new Set<number>();
      while (ports.size < 100) ports.add(await freePort());
      const specs = await Promise.all(
        [...ports].map((port, i) => spec({ id: `${runtime}-many-${i}`, port })),
      );
      await inBatches(specs, 4, (s) => d.start(s));
      const bodies = await Promise.all(specs.map((s) => httpGet(s.port)));
      expect(new Set(bodies)).toEqual(new Set(['kiln conformance\n']));
      const listed = await d.list();
      expect(listed.filter((s) => s.state === 'running')).toHaveLength(100);
      expect(new Set(listed.map((s) => s.pid)).size).toBe(100);

      await inBatches(specs, 4, (s) => d.stop(s.id, { graceMs: 5_000 }));
      expect(await d.list()).toEqual([]);
      const info = await pickRuntime(runtime);
      const [file = info.path, ...prefix] = info.command;
      const root = runtimeStateDir(runtime, join(base, 'runtime'));
      expect((await execa(file, [...prefix, '--root', root, 'list', '--quiet'])).stdout.trim()).toBe('');
      expect(await readdir(join(base, runtime, 'instances'))).toEqual([]);
      for (const s of specs) expect(await existingCgroupDirs(host, cgroupsPathOf(s.id))).toEqual([]);
    });

    it('keeps an instance running after the kiln process that started it exits, for a new one to adopt', async () => {
      const s = await spec();
      const script = join(base, `start-${runtime}.mts`);
      await writeFile(
        script,
        `import { LocalRuntimeDriver } from ${JSON.stringify(join(import.meta.dirname, 'local.ts'))};
const spec = ${JSON.stringify(s)};
const driver = new LocalRuntimeDriver({ ...${JSON.stringify(options())}, rootfs: async () => ${JSON.stringify(rootfs)} });
const status = await driver.start(spec);
console.log(JSON.stringify(status));
process.exit(0);
`,
      );
      const child = await execa('node', ['--import', 'jiti/register', script], {
        cwd: join(import.meta.dirname, '../..'),
      });
      const started = JSON.parse(child.stdout) as InstanceStatus;
      const d = driver();
      expect(await d.list()).toEqual([started]);
      expect(await httpGet(s.port)).toBe('kiln conformance\n');
      const exits = new Promise<InstanceStatus>((resolve) => d.onExit(resolve));
      process.kill(started.pid!, 'SIGKILL');
      expect(await exits).toMatchObject({ id: s.id, state: 'exited' });
      await d.stop(s.id);
      await expectGone(s.id);
    });
  });
});
