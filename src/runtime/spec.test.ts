import { describe, expect, it } from 'vitest';

import { ValidationError } from '../errors/index.js';
import {
  DEFAULT_CAPABILITIES,
  DEFAULT_HOSTNAME,
  DEFAULT_NOFILE_LIMIT,
  DEFAULT_PATH_ENV,
  DEFAULT_TMP_SIZE_BYTES,
  MASKED_PATHS,
  READONLY_PATHS,
  runtimeSpec,
  type RuntimeSpecOptions,
} from './spec.js';

interface Mount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}
interface Spec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<string, string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: Mount[];
  linux: {
    cgroupsPath?: string;
    resources: { memory?: { limit: number }; cpu?: { quota: number; period: number }; devices: unknown[] };
    namespaces: { type: string }[];
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

const base: RuntimeSpecOptions = { rootfs: '/var/lib/kiln/rootfs/abc', args: ['/bin/sh', '-c', 'true'] };
const spec = (extra: Partial<RuntimeSpecOptions> = {}): Spec => runtimeSpec({ ...base, ...extra }) as Spec;

describe('runtimeSpec', () => {
  it('writes the defaults of a hardened, read-only container', () => {
    const s = spec();
    expect(s.ociVersion).toBe('1.0.2');
    expect(s.process).toMatchObject({
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/bin/sh', '-c', 'true'],
      env: [`PATH=${DEFAULT_PATH_ENV}`],
      cwd: '/',
      noNewPrivileges: true,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: DEFAULT_NOFILE_LIMIT, soft: DEFAULT_NOFILE_LIMIT }],
    });
    expect(s.root).toEqual({ path: '/var/lib/kiln/rootfs/abc', readonly: true });
    expect(s.hostname).toBe(DEFAULT_HOSTNAME);
    expect(s.linux.maskedPaths).toEqual(MASKED_PATHS);
    expect(s.linux.readonlyPaths).toEqual(READONLY_PATHS);
    expect(s.linux.resources).toEqual({ devices: [{ allow: false, access: 'rwm' }] });
    expect(s.linux.cgroupsPath).toBeUndefined();
    for (const set of ['bounding', 'effective', 'permitted']) {
      expect(s.process.capabilities[set]).toEqual(DEFAULT_CAPABILITIES);
    }
    expect(s.process.capabilities['ambient']).toBeUndefined();
    expect(DEFAULT_CAPABILITIES).not.toContain('CAP_SYS_ADMIN');
  });

  it('is deterministic: equal options give byte-identical JSON, env sorted', () => {
    const a = JSON.stringify(runtimeSpec({ ...base, env: { B: '2', A: '1' } }));
    const b = JSON.stringify(runtimeSpec({ ...base, env: { A: '1', B: '2' } }));
    expect(a).toBe(b);
    expect(spec({ env: { B: '2', A: '1', PATH: '/bin' } }).process.env).toEqual(['A=1', 'B=2', 'PATH=/bin']);
  });

  it.each([
    { name: 'no limits', memoryBytes: undefined, cpus: undefined, memory: undefined, cpu: undefined },
    {
      name: '64 MiB',
      memoryBytes: 67_108_864,
      cpus: undefined,
      memory: { limit: 67_108_864 },
      cpu: undefined,
    },
    {
      name: 'one CPU',
      memoryBytes: undefined,
      cpus: 1,
      memory: undefined,
      cpu: { quota: 100_000, period: 100_000 },
    },
    {
      name: 'half a CPU',
      memoryBytes: 1 << 30,
      cpus: 0.5,
      memory: { limit: 1 << 30 },
      cpu: { quota: 50_000, period: 100_000 },
    },
    {
      name: '2.25 CPUs',
      memoryBytes: undefined,
      cpus: 2.25,
      memory: undefined,
      cpu: { quota: 225_000, period: 100_000 },
    },
    {
      name: 'the smallest quota',
      memoryBytes: undefined,
      cpus: 0.01,
      memory: undefined,
      cpu: { quota: 1000, period: 100_000 },
    },
  ])('limits: $name', ({ memoryBytes, cpus, memory, cpu }) => {
    const { resources } = spec({ memoryBytes, cpus }).linux;
    expect(resources.memory).toEqual(memory);
    expect(resources.cpu).toEqual(cpu);
  });

  it.each([
    { hostNetwork: undefined, expected: ['pid', 'network', 'ipc', 'uts', 'mount'] },
    { hostNetwork: false, expected: ['pid', 'network', 'ipc', 'uts', 'mount'] },
    { hostNetwork: true, expected: ['pid', 'ipc', 'uts', 'mount'] },
  ])('namespaces with hostNetwork=$hostNetwork', ({ hostNetwork, expected }) => {
    expect(spec({ hostNetwork }).linux.namespaces.map((n) => n.type)).toEqual(expected);
  });

  it.each([
    { readonlyRootfs: undefined, readonly: true },
    { readonlyRootfs: true, readonly: true },
    { readonlyRootfs: false, readonly: false },
  ])('root readonly=$readonly when readonlyRootfs=$readonlyRootfs', ({ readonlyRootfs, readonly }) => {
    expect(spec({ readonlyRootfs }).root.readonly).toBe(readonly);
  });

  it('mounts proc, dev, sysfs read-only, the cgroup read-only and a sized tmpfs at /tmp, then binds', () => {
    const mounts = spec({
      tmpSizeBytes: 1 << 20,
      mounts: [
        { source: '/srv/data', destination: '/data' },
        { source: '/etc/resolv.conf', destination: '/etc/resolv.conf', readonly: true },
      ],
    }).mounts;
    expect(mounts.map((m) => [m.destination, m.type])).toEqual([
      ['/proc', 'proc'],
      ['/dev', 'tmpfs'],
      ['/dev/pts', 'devpts'],
      ['/dev/shm', 'tmpfs'],
      ['/dev/mqueue', 'mqueue'],
      ['/sys', 'sysfs'],
      ['/sys/fs/cgroup', 'cgroup'],
      ['/tmp', 'tmpfs'],
      ['/data', 'bind'],
      ['/etc/resolv.conf', 'bind'],
    ]);
    const at = (d: string): Mount => mounts.find((m) => m.destination === d)!;
    expect(at('/sys').options).toContain('ro');
    expect(at('/sys/fs/cgroup').options).toContain('ro');
    expect(at('/tmp').options).toEqual(['nosuid', 'nodev', 'mode=1777', `size=${1 << 20}`]);
    expect(at('/data')).toEqual({
      destination: '/data',
      type: 'bind',
      source: '/srv/data',
      options: ['rbind', 'rprivate', 'nosuid', 'nodev', 'rw'],
    });
    expect(at('/etc/resolv.conf').options).toContain('ro');
    expect(spec().mounts.find((m) => m.destination === '/tmp')!.options).toContain(
      `size=${DEFAULT_TMP_SIZE_BYTES}`,
    );
  });

  it('passes the process, hostname and cgroup path through', () => {
    const s = spec({
      cwd: '/srv',
      user: { uid: 1000, gid: 100 },
      hostname: 'web-1',
      cgroupsPath: 'kiln-1',
      nofileLimit: 4096,
    });
    expect(s.process.cwd).toBe('/srv');
    expect(s.process.user).toEqual({ uid: 1000, gid: 100 });
    expect(s.hostname).toBe('web-1');
    expect(s.linux.cgroupsPath).toBe('kiln-1');
    expect(s.process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }]);
  });

  it('reports every invalid option at once, with its path', () => {
    let caught: unknown;
    try {
      runtimeSpec({
        rootfs: 'relative/rootfs',
        args: [],
        cwd: 'srv',
        env: { 'A=B': 'x' },
        user: { uid: -1, gid: 0.5 },
        mounts: [{ source: 'data', destination: '/data' }],
        memoryBytes: 0,
        cpus: 0.001,
        hostname: 'not a hostname',
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).issues.map((i) => i.path)).toEqual([
      'rootfs',
      'args',
      'cwd',
      'env.A=B',
      'user.uid',
      'user.gid',
      'mounts[0].source',
      'memoryBytes',
      'cpus',
      'hostname',
    ]);
  });
});
