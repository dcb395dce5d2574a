/**
 * Finds the host's OCI runtimes (crun, runc) and how to invoke them, including this kind of
 * host's crun workaround (see oci-runtime.ts for why crun runs under `unshare --mount`).
 */
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

import { execa } from 'execa';

import { UnavailableError } from '../errors/index.js';
import { type CgroupHost, inspectCgroups, UNIFIED_MOUNT_POINT } from './cgroups.js';

/** How long a runtime's control commands (`--version`, `state`, `kill`, `delete`) may take. */
export const CONTROL_TIMEOUT_MS = 30_000;

/** The OCI runtimes kiln can drive. */
export type RuntimeName = 'crun' | 'runc';

/** Runtimes in order of preference: crun starts faster and uses less memory than runc. */
export const RUNTIME_NAMES: readonly RuntimeName[] = ['crun', 'runc'];

/** An OCI runtime found on this host. */
export interface RuntimeInfo {
  readonly name: RuntimeName;
  /** Absolute path of the binary. */
  readonly path: string;
  /** As the binary reports it, such as `1.8.1` or `1.1.5+ds1`. */
  readonly version: string;
  /** True when this runtime must run with `/sys/fs/cgroup/unified` unmounted (crun on a hybrid host). */
  readonly unmountUnifiedCgroup: boolean;
  /** The argv prefix that invokes it, the workaround included; append the runtime's arguments. */
  readonly command: readonly string[];
}

const EXTRA_BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Where to look for runtime binaries. */
export interface DetectOptions {
  /**
   * Directories to search, joined with `:`.
   * @default `$PATH` followed by the usual bin and sbin directories (runc lives in /usr/sbin)
   */
  readonly searchPath?: string;
}

/** Lists the installed OCI runtimes with their versions, in order of preference. */
export async function detectRuntimes(options: DetectOptions = {}): Promise<RuntimeInfo[]> {
  const host = await inspectCgroups();
  const dirs = searchDirs(options.searchPath);
  const found = await Promise.all(RUNTIME_NAMES.map((name) => detectRuntime(name, host, dirs)));
  return found.filter((info): info is RuntimeInfo => info !== undefined);
}

/**
 * The runtime to use: `preferred` if given, else the first installed one. Throws an
 * UnavailableError naming the package to install when there is none.
 */
export async function pickRuntime(
  preferred?: RuntimeName,
  options: DetectOptions = {},
): Promise<RuntimeInfo> {
  const found = await detectRuntimes(options);
  const wanted = preferred === undefined ? found[0] : found.find((info) => info.name === preferred);
  if (wanted !== undefined) return wanted;
  if (preferred !== undefined) {
    throw new UnavailableError(
      `the OCI runtime ${preferred} is not installed (fix: apt-get install ${preferred})`,
    );
  }
  throw new UnavailableError(
    'no OCI runtime found: neither crun nor runc is installed (fix: apt-get install crun)',
  );
}

async function detectRuntime(
  name: RuntimeName,
  host: CgroupHost,
  dirs: readonly string[],
): Promise<RuntimeInfo | undefined> {
  const path = await findExecutable(name, dirs);
  if (path === undefined) return undefined;
  const result = await execa(path, ['--version'], { reject: false, timeout: CONTROL_TIMEOUT_MS });
  const version = /version\s+(\S+)/.exec(result.stdout)?.[1];
  if (result.exitCode !== 0 || version === undefined) return undefined;
  const unmountUnifiedCgroup =
    name === 'crun' && host.mode === 'hybrid' && host.unifiedControllers.length > 0;
  if (!unmountUnifiedCgroup) return { name, path, version, unmountUnifiedCgroup, command: [path] };
  const unshare = await findExecutable('unshare', searchDirs(undefined));
  if (unshare === undefined) {
    throw new UnavailableError(
      'crun needs unshare on this hybrid-cgroup host (fix: apt-get install util-linux)',
    );
  }
  const script = `umount ${UNIFIED_MOUNT_POINT} || exit 125; exec "$@"`;
  const command = [
    unshare,
    '--mount',
    '--propagation',
    'private',
    '/bin/sh',
    '-c',
    script,
    'kiln-crun',
    path,
  ];
  return { name, path, version, unmountUnifiedCgroup, command };
}

function searchDirs(searchPath: string | undefined): string[] {
  const dirs = searchPath?.split(delimiter) ?? [
    ...(process.env.PATH ?? '').split(delimiter),
    ...EXTRA_BIN_DIRS,
  ];
  return [...new Set(dirs.filter((d) => d !== ''))];
}

async function findExecutable(name: string, dirs: readonly string[]): Promise<string | undefined> {
  for (const dir of dirs) {
    const candidate = join(dir, name);
    const executable = await access(candidate, fsConstants.X_OK)
      .then(() => true)
      .catch(() => false);
    if (executable) return candidate;
  }
  return undefined;
}
