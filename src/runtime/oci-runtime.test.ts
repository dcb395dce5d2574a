import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  assertStaticBusybox,
  hasInterpreter,
  HOST_BUSYBOX,
  makeBusyboxRootfs,
} from '../../test/support/rootfs.js';
import { KilnError, NotFoundError, UnavailableError } from '../errors/index.js';
import { existingCgroupDirs, inspectCgroups, type CgroupHost } from './cgroups.js';
import {
  assertRootForLocalRuntime,
  detectRuntimes,
  listContainers,
  pickRuntime,
  runOnce,
  runtimeStateDir,
  type RunOnceOptions,
  type RunOnceResult,
  type RuntimeName,
} from './oci-runtime.js';
import { runtimeSpec } from './spec.js';

let base: string;
let rootfs: string;
let stateDir: string;
let workDir: string;
let host: CgroupHost;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'kiln-runtime-test-'));
  rootfs = await makeBusyboxRootfs(join(base, 'rootfs'));
  stateDir = join(base, 'state');
  workDir = join(base, 'work');
  await mkdir(workDir);
  host = await inspectCgroups();
});

afterAll(async () => {
  // Whatever a failed test left running is removed before the directories go.
  for (const name of ['crun', 'runc'] as const) {
    const info = await pickRuntime(name).catch(() => undefined);
    if (info === undefined) continue;
    const ids = await listContainers({ runtime: name, stateDir }).catch(() => []);
    const [file = info.path, ...prefix] = info.command;
    for (const id of ids) {
      await execa(file, [...prefix, '--root', runtimeStateDir(name, stateDir), 'delete', '--force', id], {
        reject: false,
      });
    }
  }
  if (base !== undefined) await rm(base, { recursive: true, force: true });
});

const sh = (script: string): string[] => ['/bin/sh', '-c', script];

describe('host checks', () => {
  it('refuses to run without root, naming the fix', () => {
    expect(() => assertRootForLocalRuntime(1000)).toThrow(UnavailableError);
    expect(() => assertRootForLocalRuntime(1000)).toThrow(/needs root.*rootless.*fix: run kiln as root/);
    expect(() => assertRootForLocalRuntime(0)).not.toThrow();
  });

  it('tells a static busybox from a dynamic binary and from a non-ELF file', async () => {
    const head = (path: string): Promise<Buffer> => readFile(path).then((b) => b.subarray(0, 64 * 1024));
    expect(hasInterpreter(await head(HOST_BUSYBOX))).toBe(false);
    expect(hasInterpreter(await head(process.execPath))).toBe(true);
    expect(hasInterpreter(Buffer.from('#!/bin/sh\necho not elf\n'.repeat(10)))).toBeUndefined();
    await expect(assertStaticBusybox(join(base, 'no-such-busybox'))).rejects.toThrow(
      /fix: apt-get install busybox-static/,
    );
    await expect(assertStaticBusybox(process.execPath)).rejects.toThrow(/dynamically linked.*busybox-static/);
  });

  it('names the package to install when no runtime is found', async () => {
    const empty = join(base, 'empty-bin');
    await mkdir(empty, { recursive: true });
    expect(await detectRuntimes({ searchPath: empty })).toEqual([]);
    await expect(pickRuntime(undefined, { searchPath: empty })).rejects.toThrow(
      /no OCI runtime.*apt-get install crun/,
    );
    await expect(pickRuntime('runc', { searchPath: empty })).rejects.toThrow(UnavailableError);
    await expect(pickRuntime('runc', { searchPath: empty })).rejects.toThrow(/fix: apt-get install runc/);
    expect((await detectRuntimes()).map((r) => r.name)).toEqual(['crun', 'runc']);
  });

  it('rejects a rootfs that does not exist', async () => {
    await expect(
      runOnce({ rootfs: join(base, 'missing'), args: ['/bin/true'], stateDir, workDir }),
    ).rejects.toThrow(NotFoundError);
  });

  it('wraps crun exactly when this host needs it, and the need is real', async () => {
    const crun = await pickRuntime('crun');
    expect(crun.unmountUnifiedCgroup).toBe(host.mode === 'hybrid' && host.unifiedControllers.length > 0);
    expect(crun.command.length > 1).toBe(crun.unmountUnifiedCgroup);
    expect((await pickRuntime('runc')).command).toEqual([(await pickRuntime('runc')).path]);
    // Run crun bare on a bundle of our own: it must fail exactly when kiln applies the workaround.
    const bundle = await mkdtemp(join(base, 'bare-'));
    const id = `kiln-bare-${process.pid}`;
    try {
      const config = runtimeSpec({ rootfs, args: ['/bin/true'], cgroupsPath: id, nofileLimit: 1024 });
      await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
      const bare = await execa(
        crun.path,
        ['--root', join(base, 'bare-state'), 'run', '--bundle', bundle, id],
        {
          reject: false,
          stdin: 'ignore',
        },
      );
      if (crun.unmountUnifiedCgroup) {
        expect(bare.exitCode).not.toBe(0);
        expect(bare.stderr).toMatch(/hybrid mode not supported/);
      } else {
        expect(bare.exitCode).toBe(0);
      }
    } finally {
      await execa(crun.path, ['--root', join(base, 'bare-state'), 'delete', '--force', id], {
        reject: false,
      });
      await rm(bundle, { recursive: true, force: true });
    }
  });
});

describe.each(['crun', 'runc'] as const)('runOnce under %s', (runtime: RuntimeName) => {
  const run = (options: Partial<RunOnceOptions>): Promise<RunOnceResult> =>
    runOnce({ runtime, rootfs, args: ['/bin/true'], stateDir, workDir, timeoutMs: 30_000, ...options });

  async function expectNoTrace(containerId: string): Promise<void> {
    expect(await listContainers({ runtime, stateDir })).toEqual([]);
    expect(await readdir(workDir)).toEqual([]);
    expect(await existingCgroupDirs(host, containerId)).toEqual([]);
  }

  it('is installed and reports its version', async () => {
    const info = await pickRuntime(runtime);
    expect(info.name).toBe(runtime);
    expect(info.version).toMatch(/^\d+\.\d+/);
  });

  it('prints hello and leaves no container, bundle or cgroup behind', async () => {
    const result = await run({ args: ['echo', 'hello'] });
    expect(result).toMatchObject({ exitCode: 0, stdout: 'hello\n', stderr: '', timedOut: false, runtime });
    expect(result.containerId).toMatch(/^kiln-[0-9a-f]{12}$/);
    expect(result.durationMs).toBeGreaterThan(0);
    await expectNoTrace(result.containerId);
  });

  it('propagates the exit code and stderr', async () => {
    const result = await run({ args: sh('echo oops >&2; exit 7') });
    expect(result).toMatchObject({ exitCode: 7, stdout: '', stderr: 'oops\n' });
  });

  it('sets the environment, the working directory and the user', async () => {
    const result = await run({
      args: sh('echo "$GREETING|$PATH"; pwd; id -u; id -g'),
      env: { GREETING: 'hi there' },
      cwd: '/tmp',
      user: { uid: 65534, gid: 65534 },
    });
    expect(result.stdout).toBe(
      'hi there|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/tmp\n65534\n65534\n',
    );
  });

  it('feeds stdin', async () => {
    expect((await run({ args: ['cat'], stdin: 'line one\nline two\n' })).stdout).toBe('line one\nline two\n');
  });

  it('keeps / read-only while /tmp is a writable tmpfs', async () => {
    const result = await run({
      args: sh(
        'touch /made-here 2>&1; echo "root=$?"; echo x > /tmp/f && cat /tmp/f; grep " /tmp " /proc/mounts',
      ),
    });
    expect(result.stdout).toMatch(/Read-only file system\nroot=1\nx\ntmpfs \/tmp tmpfs /);
    await expect(stat(join(rootfs, 'made-here'))).rejects.toThrow(/ENOENT/);
  });

  it('lets the process write the root when readonlyRootfs is false', async () => {
    const marker = `made-by-${runtime}`;
    try {
      const result = await run({ args: ['touch', `/${marker}`], readonlyRootfs: false });
      expect(result.exitCode).toBe(0);
      expect((await stat(join(rootfs, marker))).isFile()).toBe(true);
    } finally {
      await rm(join(rootfs, marker), { force: true });
    }
  });

  it('runs as pid 1 of its own pid namespace, with the given hostname', async () => {
    const result = await run({ args: sh('echo $$; hostname; ps -o pid | wc -l'), hostname: 'box-1' });
    const [pid, hostname, psLines] = result.stdout.trim().split('\n');
    expect(pid).toBe('1');
    expect(hostname).toBe('box-1');
    // The header, sh, ps and wc: none of the host's processes.
    expect(Number(psLines)).toBeLessThanOrEqual(4);
  });

  it('gets an empty network namespace unless hostNetwork', async () => {
    const interfaces = (procNetDev: string): string[] =>
      procNetDev
        .split('\n')
        .slice(2)
        .map((l) => l.split(':')[0]!.trim())
        .filter((n) => n !== '')
        .sort();
    const isolated = await run({ args: ['cat', '/proc/net/dev'] });
    expect(interfaces(isolated.stdout)).toEqual(['lo']);
    const shared = await run({ args: ['cat', '/proc/net/dev'], hostNetwork: true });
    const hostInterfaces = interfaces(await readFile('/proc/net/dev', 'utf8'));
    expect(hostInterfaces.length).toBeGreaterThan(1);
    expect(interfaces(shared.stdout)).toEqual(hostInterfaces);
  });

  it('applies the memory and CPU limits in its cgroup', async () => {
    const v2 = host.mode === 'v2';
    const files = v2
      ? ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/cpu.max']
      : ['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us'];
    const result = await run({ args: ['cat', ...files], memoryBytes: 64 * 1024 * 1024, cpus: 0.5 });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(v2 ? '67108864\n50000 100000\n' : '67108864\n50000\n');
    await expectNoTrace(result.containerId);
  });

  it('binds host paths, writable or read-only', async () => {
    const data = await mkdtemp(join(base, 'data-'));
    const resolv = join(base, `resolv-${runtime}.conf`);
    await writeFile(resolv, 'nameserver 127.0.0.53\n');
    const result = await run({
      args: sh(
        'echo saved > /root/out; cat /etc/resolv.conf; { echo x > /etc/resolv.conf; } 2>&1; echo "rc=$?"',
      ),
      mounts: [
        { source: data, destination: '/root' },
        { source: resolv, destination: '/etc/resolv.conf', readonly: true },
      ],
    });
    expect(result.stdout).toMatch(/^nameserver 127\.0\.0\.53\n.*Read-only file system\nrc=1\n$/s);
    expect(await readFile(join(data, 'out'), 'utf8')).toBe('saved\n');
    expect(await readFile(resolv, 'utf8')).toBe('nameserver 127.0.0.53\n');
  });

  it('kills a container that outlives its timeout and removes every trace of it', async () => {
    const result = await run({ args: ['sleep', '100'], timeoutMs: 1_000 });
    expect(result).toMatchObject({ timedOut: true, exitCode: 137 });
    expect(result.durationMs).toBeGreaterThanOrEqual(1_000);
    expect(result.durationMs).toBeLessThan(15_000);
    await expectNoTrace(result.containerId);
  });

  it('fails clearly when the program does not exist, and still cleans up', async () => {
    const error: unknown = await run({ args: ['/no/such/program'] }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).code).toBe('runtime');
    expect((error as KilnError).message).toMatch(
      new RegExp(`^${runtime} could not run container kiln-[0-9a-f]+: `),
    );
    expect((error as KilnError).message).toMatch(/\/no\/such\/program/);
    const id = /container (kiln-[0-9a-f]+)/.exec((error as KilnError).message)![1]!;
    await expectNoTrace(id);
  });

  it('runs several containers in parallel, each in its own namespace and cgroup', async () => {
    const results = await Promise.all(
      [0, 1, 2, 3].map((i) => run({ args: sh(`echo ${i}:$$:$(hostname)`), hostname: `par-${i}` })),
    );
    expect(results.map((r) => r.stdout)).toEqual([
      '0:1:par-0\n',
      '1:1:par-1\n',
      '2:1:par-2\n',
      '3:1:par-3\n',
    ]);
    expect(new Set(results.map((r) => r.containerId)).size).toBe(4);
    for (const r of results) await expectNoTrace(r.containerId);
  });
});
