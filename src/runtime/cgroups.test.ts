import { mkdir, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  cgroupCandidates,
  cgroupModeOf,
  existingCgroupDirs,
  inspectCgroups,
  parseCgroupMounts,
  parseOwnCgroupPaths,
  removeCgroupDirs,
  type CgroupHost,
} from './cgroups.js';

describe('cgroup host detection', () => {
  const line = (id: number, point: string, fs: string, opts: string): string =>
    `${id} 23 0:${id} / ${point} rw,relatime - ${fs} ${fs} ${opts}`;
  const hybrid = [
    line(31, '/sys/fs/cgroup', 'tmpfs', 'rw,mode=755'),
    line(35, '/sys/fs/cgroup/memory', 'cgroup', 'rw,memory'),
    line(41, '/sys/fs/cgroup/unified', 'cgroup2', 'rw'),
  ].join('\n');
  const v1 = [
    line(31, '/sys/fs/cgroup', 'tmpfs', 'rw'),
    line(35, '/sys/fs/cgroup/memory', 'cgroup', 'rw,memory'),
  ].join('\n');
  const v2 = [line(30, '/proc', 'proc', 'rw'), line(31, '/sys/fs/cgroup', 'cgroup2', 'rw,nsdelegate')].join(
    '\n',
  );

  it.each([
    { name: 'hybrid', text: hybrid, mode: 'hybrid', count: 2 },
    { name: 'v1', text: v1, mode: 'v1', count: 1 },
    { name: 'v2', text: v2, mode: 'v2', count: 1 },
  ])('classifies a $name host', ({ text, mode, count }) => {
    const mounts = parseCgroupMounts(text);
    expect(mounts).toHaveLength(count);
    expect(cgroupModeOf(mounts)).toBe(mode);
  });

  it('reads own cgroup paths and lists each place a relative cgroup may be created', () => {
    const own = parseOwnCgroupPaths('4:memory:/process_api/7b\n1:cpu:/\n0::/\n');
    expect(own).toEqual(['/', '/process_api/7b']);
    const host: CgroupHost = {
      mode: 'hybrid',
      mounts: parseCgroupMounts(hybrid),
      ownPaths: own,
      unifiedControllers: [],
    };
    expect(cgroupCandidates(host, 'kiln-1')).toEqual([
      '/sys/fs/cgroup/memory/kiln-1',
      '/sys/fs/cgroup/memory/process_api/7b/kiln-1',
      '/sys/fs/cgroup/unified/kiln-1',
      '/sys/fs/cgroup/unified/process_api/7b/kiln-1',
    ]);
  });
});

describe('removeCgroupDirs', () => {
  it('removes the cgroup directories a runtime left behind, and only those', async () => {
    const host = await inspectCgroups();
    const mount = host.mounts.find((m) => m.mountPoint.endsWith('/memory')) ?? host.mounts[0]!;
    const name = `kiln-sweep-test-${process.pid}`;
    const dirs = [join(mount.mountPoint, name), join(mount.mountPoint, host.ownPaths.at(-1)!, name)];
    const other = join(mount.mountPoint, `${name}-other`);
    try {
      for (const dir of [...dirs, other]) await mkdir(dir, { recursive: true });
      expect(await existingCgroupDirs(host, name)).toEqual([...new Set(dirs)].sort());
      expect(await removeCgroupDirs(host, name)).toEqual([...new Set(dirs)].sort());
      expect(await existingCgroupDirs(host, name)).toEqual([]);
      expect((await stat(other)).isDirectory()).toBe(true);
    } finally {
      for (const dir of [...dirs, other]) await rmdir(dir).catch(() => undefined);
    }
  });
});
