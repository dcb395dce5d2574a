/**
 * What the host's cgroup setup looks like, read from `/proc/self/mountinfo` and
 * `/proc/self/cgroup`, and the sweep that removes a container's cgroup directories if its runtime
 * left any behind.
 */
import { readFile, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Where cgroup filesystems are mounted on every mainstream distribution. */
export const CGROUP_ROOT = '/sys/fs/cgroup';

/** The cgroup v2 mount point of a hybrid (v1 + v2) host. */
export const UNIFIED_MOUNT_POINT = `${CGROUP_ROOT}/unified`;

/**
 * `v2`: one unified hierarchy at {@link CGROUP_ROOT}; `v1`: only per-controller hierarchies;
 * `hybrid`: v1 hierarchies plus a v2 one at {@link UNIFIED_MOUNT_POINT} (systemd's hybrid layout).
 */
export type CgroupMode = 'v1' | 'hybrid' | 'v2';

/** One mounted cgroup hierarchy. */
export interface CgroupMount {
  readonly mountPoint: string;
  readonly fsType: 'cgroup' | 'cgroup2';
}

/** The host's cgroup layout as this process sees it. */
export interface CgroupHost {
  readonly mode: CgroupMode;
  readonly mounts: readonly CgroupMount[];
  /** This process's cgroup paths, one per hierarchy, deduplicated (`/`, `/system.slice/x`, …). */
  readonly ownPaths: readonly string[];
  /** Controllers enabled in the v2 hierarchy of a hybrid host (`cgroup.controllers`); else empty. */
  readonly unifiedControllers: readonly string[];
}

/** Reads the host's cgroup layout. */
export async function inspectCgroups(): Promise<CgroupHost> {
  const mounts = parseCgroupMounts(await readFile('/proc/self/mountinfo', 'utf8'));
  const mode = cgroupModeOf(mounts);
  const ownPaths = parseOwnCgroupPaths(await readFile('/proc/self/cgroup', 'utf8'));
  const unifiedControllers =
    mode === 'hybrid'
      ? await readFile(join(UNIFIED_MOUNT_POINT, 'cgroup.controllers'), 'utf8').catch(() => '')
      : '';
  return {
    mode,
    mounts,
    ownPaths,
    unifiedControllers: unifiedControllers.split(/\s+/).filter((c) => c !== ''),
  };
}

/** The cgroup and cgroup2 mounts listed in a `/proc/<pid>/mountinfo` text, in order. */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    // Fields: id parent major:minor root mount-point options [optional…] - fstype source super-options
    const [before, after] = line.split(' - ');
    if (before === undefined || after === undefined) continue;
    const mountPoint = unescapeMountinfo(before.split(' ')[4] ?? '');
    const fsType = after.split(' ')[0];
    if (fsType === 'cgroup' || fsType === 'cgroup2') mounts.push({ mountPoint, fsType });
  }
  return mounts;
}

/** Classifies a host by its cgroup mounts. */
export function cgroupModeOf(mounts: readonly CgroupMount[]): CgroupMode {
  if (mounts.some((m) => m.fsType === 'cgroup2' && m.mountPoint === CGROUP_ROOT)) return 'v2';
  if (mounts.some((m) => m.fsType === 'cgroup2' && m.mountPoint === UNIFIED_MOUNT_POINT)) return 'hybrid';
  return 'v1';
}

/** The distinct cgroup paths in a `/proc/<pid>/cgroup` text (`4:memory:/a/b` gives `/a/b`). */
export function parseOwnCgroupPaths(procCgroup: string): string[] {
  const paths = new Set<string>();
  for (const line of procCgroup.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    if (path.startsWith('/')) paths.add(path);
  }
  return [...paths].sort();
}

/**
 * Every place a runtime may have created the cgroup `cgroupsPath`: under each hierarchy's root and
 * under this process's own cgroup in it, since runc places a relative path below the caller's
 * cgroup while crun places it below the root.
 */
export function cgroupCandidates(host: CgroupHost, cgroupsPath: string): string[] {
  const candidates = new Set<string>();
  for (const mount of host.mounts) {
    candidates.add(join(mount.mountPoint, cgroupsPath));
    for (const own of host.ownPaths) candidates.add(join(mount.mountPoint, own, cgroupsPath));
  }
  return [...candidates].sort();
}

/** The candidate directories of `cgroupsPath` that exist now. */
export async function existingCgroupDirs(host: CgroupHost, cgroupsPath: string): Promise<string[]> {
  const found: string[] = [];
  for (const dir of cgroupCandidates(host, cgroupsPath)) {
    const isDirectory = await stat(dir)
      .then((s) => s.isDirectory())
      .catch(() => false);
    if (isDirectory) found.push(dir);
  }
  return found;
}

/**
 * Removes the cgroup directories of `cgroupsPath` that a runtime left behind, and returns them.
 * A cgroup can only be removed once its last process is gone, so busy ones are retried briefly.
 */
export async function removeCgroupDirs(host: CgroupHost, cgroupsPath: string): Promise<string[]> {
  const left = await existingCgroupDirs(host, cgroupsPath);
  for (const dir of left) {
    for (let attempt = 0; ; attempt++) {
      try {
        // cgroupfs directories are removed with rmdir(2) even though they list control files.
        await rmdir(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || attempt >= 20) throw err;
        await sleep(100);
      }
    }
  }
  return left;
}

function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
