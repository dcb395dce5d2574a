/**
 * Test fixture: a tiny root filesystem made from the host's static busybox, built without network.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { UnavailableError } from '../../src/errors/index.js';

/** Where Debian's `busybox-static` package installs the binary. */
export const HOST_BUSYBOX = '/bin/busybox';

const FIX = 'apt-get install busybox-static';
const PT_INTERP = 3;

/**
 * Lays out a minimal rootfs in `dir` (which may already exist) and returns `dir`: `bin/busybox`
 * copied from the host with every applet as a `bin/<applet>` symlink, `etc/passwd`, `etc/group`,
 * an empty `etc/resolv.conf` (a bind-mount target) and the `tmp`, `proc`, `dev`, `sys`, `root`
 * mount points. Throws an UnavailableError naming `apt-get install busybox-static` when the host
 * has no static busybox, so tests fail rather than skip.
 *
 * @example
 * const rootfs = await makeBusyboxRootfs(await mkdtemp(join(tmpdir(), 'rootfs-')));
 */
export async function makeBusyboxRootfs(dir: string): Promise<string> {
  await assertStaticBusybox(HOST_BUSYBOX);
  for (const sub of ['bin', 'etc', 'tmp', 'proc', 'dev', 'sys', 'root']) {
    await mkdir(join(dir, sub), { recursive: true });
  }
  await chmod(join(dir, 'tmp'), 0o1777);
  await copyFile(HOST_BUSYBOX, join(dir, 'bin', 'busybox'));
  await chmod(join(dir, 'bin', 'busybox'), 0o755);
  for (const applet of await applets(HOST_BUSYBOX)) {
    if (applet !== 'busybox') await symlink('busybox', join(dir, 'bin', applet));
  }
  await writeFile(
    join(dir, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await writeFile(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(dir, 'etc', 'resolv.conf'), '');
  return dir;
}

/** Throws unless `path` is an ELF executable without a program interpreter (statically linked). */
export async function assertStaticBusybox(path: string): Promise<void> {
  const missing = (why: string): UnavailableError =>
    new UnavailableError(`the test rootfs needs a static busybox at ${path}, but ${why} (fix: ${FIX})`);
  let header: Buffer;
  try {
    header = await readHead(path, 64 * 1024);
  } catch {
    throw missing('there is none');
  }
  const interp = hasInterpreter(header);
  if (interp === undefined) throw missing('it is not an ELF executable');
  if (interp) throw missing('it is dynamically linked (the busybox package, not busybox-static)');
}

/**
 * Whether an ELF image has a PT_INTERP program header (that is, is dynamically linked); undefined
 * when `head` is not a readable ELF header.
 */
export function hasInterpreter(head: Buffer): boolean | undefined {
  if (head.length < 52 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = head[4] === 2;
  const le = head[5] === 1;
  const u16 = (at: number): number => (le ? head.readUInt16LE(at) : head.readUInt16BE(at));
  const u32 = (at: number): number => (le ? head.readUInt32LE(at) : head.readUInt32BE(at));
  const phoff = is64 ? Number(le ? head.readBigUInt64LE(0x20) : head.readBigUInt64BE(0x20)) : u32(0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  if (phoff + phentsize * phnum > head.length) return undefined;
  for (let i = 0; i < phnum; i++) {
    if (u32(phoff + i * phentsize) === PT_INTERP) return true;
  }
  return false;
}

async function readHead(path: string, bytes: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await file.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

async function applets(busybox: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)(busybox, ['--list']);
  return stdout.split('\n').filter((name) => name !== '' && !name.includes('/'));
}
