/**
 * Synthesis of OCI runtime-spec `config.json` documents (runtime-spec 1.0.2) for kiln's local
 * runtime. Pure: the same options always give the same document, keys in a fixed order.
 *
 * The hardening mirrors what runc's `runc spec` and Docker apply by default: runc's masked and
 * read-only paths, Docker's default capability set, no new privileges, all devices denied except
 * the ones every runtime adds itself (null, zero, full, random, urandom, tty, ptmx).
 */
import { isAbsolute } from 'node:path';

import { ValidationError, type ValidationIssue } from '../errors/index.js';

/** The runtime-spec version written into every `config.json`. */
export const OCI_RUNTIME_SPEC_VERSION = '1.0.2';

/** Hostname given to a container when none is asked for. */
export const DEFAULT_HOSTNAME = 'kiln';

/** `PATH` set in a container unless `env` gives its own. */
export const DEFAULT_PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Size of the tmpfs mounted at `/tmp`, in bytes (64 MiB). */
export const DEFAULT_TMP_SIZE_BYTES = 64 * 1024 * 1024;

/** Soft and hard `RLIMIT_NOFILE` of the container's processes. */
export const DEFAULT_NOFILE_LIMIT = 65_536;

/** The CFS period used to turn a CPU count into a quota, in microseconds (100 ms). */
export const CPU_PERIOD_US = 100_000;

/** Docker's default capability set (moby `oci/caps/defaults.go`), sorted. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_AUDIT_WRITE',
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_MKNOD',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_RAW',
  'CAP_SETFCAP',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
];

/** Paths hidden from the container, as in runc's default spec. */
export const MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/proc/scsi',
];

/** Paths made read-only in the container, as in runc's default spec. */
export const READONLY_PATHS: readonly string[] = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

/** A host file or directory bind-mounted into the container. */
export interface BindMount {
  /** Absolute host path. */
  readonly source: string;
  /**
   * Absolute path inside the container. It should exist in the image: with a writable root the
   * runtime creates a missing one inside the (shared) rootfs.
   */
  readonly destination: string;
  /** @default false */
  readonly readonly?: boolean;
}

/** The user a container's process runs as. */
export interface ProcessUser {
  readonly uid: number;
  readonly gid: number;
}

/** Everything {@link runtimeSpec} needs to describe one container. */
export interface RuntimeSpecOptions {
  /** Absolute path of the root filesystem directory; it is used in place, never copied. */
  readonly rootfs: string;
  /** The process to run: `args[0]` is the executable, resolved through `PATH` inside the container. */
  readonly args: readonly string[];
  /** @default true (images are shared by every instance and must not change) */
  readonly readonlyRootfs?: boolean;
  /** Extra environment; `PATH` defaults to {@link DEFAULT_PATH_ENV}. @default {} */
  readonly env?: Readonly<Record<string, string>>;
  /** Absolute working directory. @default '/' */
  readonly cwd?: string;
  /** @default { uid: 0, gid: 0 } */
  readonly user?: ProcessUser;
  /** @default DEFAULT_HOSTNAME */
  readonly hostname?: string;
  /** Share the host's network namespace instead of getting an empty one. @default false */
  readonly hostNetwork?: boolean;
  /** Bind mounts added after the standard ones, such as a writable data dir. @default [] */
  readonly mounts?: readonly BindMount[];
  /** Memory limit in bytes. @default no limit */
  readonly memoryBytes?: number;
  /** CPU limit as a number of CPUs, fractions allowed (`0.5`). @default no limit */
  readonly cpus?: number;
  /** @default DEFAULT_TMP_SIZE_BYTES */
  readonly tmpSizeBytes?: number;
  /**
   * Soft and hard `RLIMIT_NOFILE`. Above the runtime's own hard limit it needs CAP_SYS_RESOURCE.
   * @default DEFAULT_NOFILE_LIMIT (runOnce lowers it to its own hard limit when that is lower)
   */
  readonly nofileLimit?: number;
  /** `linux.cgroupsPath`; relative paths are placed by the runtime. @default chosen by the runtime */
  readonly cgroupsPath?: string;
}

/**
 * Builds an OCI runtime-spec `config.json` object for one container. Throws a ValidationError
 * listing every bad option at once.
 *
 * @example
 * const config = runtimeSpec({ rootfs: '/var/lib/kiln/rootfs/abc', args: ['/bin/sh', '-c', 'echo hi'], memoryBytes: 64 * 1024 * 1024, cpus: 0.5 });
 * await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
 */
export function runtimeSpec(options: RuntimeSpecOptions): object {
  validate(options);
  const user = options.user ?? { uid: 0, gid: 0 };
  return {
    ociVersion: OCI_RUNTIME_SPEC_VERSION,
    process: {
      terminal: false,
      user: { uid: user.uid, gid: user.gid },
      args: [...options.args],
      env: envList(options.env ?? {}),
      cwd: options.cwd ?? '/',
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
      rlimits: [
        {
          type: 'RLIMIT_NOFILE',
          hard: options.nofileLimit ?? DEFAULT_NOFILE_LIMIT,
          soft: options.nofileLimit ?? DEFAULT_NOFILE_LIMIT,
        },
      ],
      noNewPrivileges: true,
    },
    root: { path: options.rootfs, readonly: options.readonlyRootfs ?? true },
    hostname: options.hostname ?? DEFAULT_HOSTNAME,
    mounts: [
      ...standardMounts(options.tmpSizeBytes ?? DEFAULT_TMP_SIZE_BYTES),
      ...(options.mounts ?? []).map(bind),
    ],
    linux: {
      ...(options.cgroupsPath === undefined ? {} : { cgroupsPath: options.cgroupsPath }),
      resources: resources(options),
      namespaces: namespaces(options.hostNetwork ?? false),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}

/** The cgroup CPU quota for a CPU count: `{ quota, period }` in microseconds per period. */
export function cpuQuota(cpus: number): { readonly quota: number; readonly period: number } {
  return { quota: Math.round(cpus * CPU_PERIOD_US), period: CPU_PERIOD_US };
}

function envList(env: Readonly<Record<string, string>>): string[] {
  const merged: Record<string, string> = { PATH: DEFAULT_PATH_ENV, ...env };
  return Object.keys(merged)
    .sort()
    .map((key) => `${key}=${merged[key]}`);
}

function standardMounts(tmpSizeBytes: number): object[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    // The container's own cgroup, read-only, so a process can read its limits (as `runc spec` does).
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
    {
      destination: '/tmp',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'nodev', 'mode=1777', `size=${tmpSizeBytes}`],
    },
  ];
}

function bind(mount: BindMount): object {
  return {
    destination: mount.destination,
    type: 'bind',
    source: mount.source,
    options: ['rbind', 'rprivate', 'nosuid', 'nodev', mount.readonly === true ? 'ro' : 'rw'],
  };
}

function resources(options: RuntimeSpecOptions): object {
  return {
    devices: [{ allow: false, access: 'rwm' }],
    ...(options.memoryBytes === undefined ? {} : { memory: { limit: options.memoryBytes } }),
    ...(options.cpus === undefined ? {} : { cpu: cpuQuota(options.cpus) }),
  };
}

function namespaces(hostNetwork: boolean): object[] {
  const types = hostNetwork ? ['pid', 'ipc', 'uts', 'mount'] : ['pid', 'network', 'ipc', 'uts', 'mount'];
  return types.map((type) => ({ type }));
}

function validate(options: RuntimeSpecOptions): void {
  const issues: ValidationIssue[] = [];
  const absolute = (path: string, value: string): void => {
    if (!isAbsolute(value)) issues.push({ path, message: `must be an absolute path, got '${value}'` });
  };
  absolute('rootfs', options.rootfs);
  if (options.args.length === 0 || options.args[0] === '') {
    issues.push({
      path: 'args',
      message: 'must name a program to run',
      fix: "give args such as ['/bin/sh', '-c', '…']",
    });
  }
  if (options.cwd !== undefined) absolute('cwd', options.cwd);
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (key === '' || key.includes('=') || key.includes('\0') || value.includes('\0')) {
      issues.push({ path: `env.${key}`, message: 'names must be non-empty without "=", values without NUL' });
    }
  }
  if (options.user !== undefined) {
    for (const id of ['uid', 'gid'] as const) {
      if (!isId(options.user[id]))
        issues.push({ path: `user.${id}`, message: 'must be an integer in 0..2^32-2' });
    }
  }
  (options.mounts ?? []).forEach((mount, i) => {
    absolute(`mounts[${i}].source`, mount.source);
    absolute(`mounts[${i}].destination`, mount.destination);
  });
  positiveInteger(issues, 'memoryBytes', options.memoryBytes);
  positiveInteger(issues, 'tmpSizeBytes', options.tmpSizeBytes);
  positiveInteger(issues, 'nofileLimit', options.nofileLimit);
  if (
    options.cpus !== undefined &&
    !(Number.isFinite(options.cpus) && cpuQuota(options.cpus).quota >= 1000)
  ) {
    issues.push({ path: 'cpus', message: `must be at least 0.01, got ${options.cpus}` });
  }
  if (options.hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(options.hostname)) {
    issues.push({ path: 'hostname', message: `'${options.hostname}' is not a valid hostname` });
  }
  if (issues.length > 0) throw new ValidationError('runtime spec', issues);
}

function positiveInteger(issues: ValidationIssue[], path: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) {
    issues.push({ path, message: `must be a positive integer, got ${value}` });
  }
}

function isId(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < 2 ** 32 - 1;
}
