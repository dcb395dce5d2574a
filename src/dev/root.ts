/**
 * The root filesystem of a dev instance: the base image's shared read-only rootfs, with the app's
 * folder bound at `app.dest`. A bind mount needs its target to exist, the shared rootfs must never
 * change (every instance of the base digest uses it, and a runtime creates a missing mount point
 * inside it), and there is no overlay here. So when the base has no `app.dest`, the dev instance's
 * root is a small **skeleton**: a directory holding an empty mount point for each entry of the
 * base's root (and of each ancestor of `app.dest` the base has), each bound read-only from the
 * base, its symlinks copied, and the missing part of `app.dest` made as empty directories. Nothing
 * is copied, the base is never written, and the skeleton is a few empty directories, made in
 * microseconds and removed with the dev session.
 */
import { lstat, mkdir, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../errors/index.js';
import type { BindMount } from '../runtime/index.js';

/** Directories at the root the runtime mounts its own file systems on: made empty, never bound. */
export const RUNTIME_MOUNT_POINTS: readonly string[] = ['dev', 'proc', 'sys', 'tmp'];

/** One entry of a directory of the base rootfs. */
export interface BaseEntry {
  readonly name: string;
  readonly type: 'directory' | 'file' | 'symlink' | 'other';
  /** A symlink's target. */
  readonly target?: string;
}

/** One thing made in the skeleton, at a path relative to it. */
export type SkeletonEntry =
  | { readonly kind: 'directory' | 'file'; readonly path: string }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string };

/** How a dev instance's root is put together. */
export interface DevRootPlan {
  /** False when the base has `app.dest` already: its rootfs is used as it is, with one mount. */
  readonly skeleton: boolean;
  /** What to make in the skeleton, parents first. */
  readonly entries: readonly SkeletonEntry[];
  /** The bind mounts, the app's last (read-only). */
  readonly mounts: readonly BindMount[];
}

/** What {@link planDevRoot} needs. */
export interface DevRootInput {
  /** The base image's unpacked rootfs on the host. */
  readonly baseRootfs: string;
  /** The app's folder on the host. */
  readonly appDir: string;
  /** Where the app goes in the instance (`app.dest`), absolute. */
  readonly dest: string;
  /** The base's listing of its root (`''`) and of every directory on the way to `dest` it has. */
  readonly listings: ReadonlyMap<string, readonly BaseEntry[]>;
  /** The config file, for errors. */
  readonly file?: string;
}

/** The directories {@link planDevRoot} needs listed: the root and each ancestor of `dest`. */
export function ancestorsOf(dest: string): string[] {
  const parts = partsOf(dest);
  return parts.map((_, i) => parts.slice(0, i).join('/'));
}

/**
 * Plans a dev instance's root: pure, from the listings of the base's directories on the way to
 * `dest`. A `dest` that passes through a file or a symlink of the base is refused.
 *
 * @example
 * planDevRoot({ baseRootfs: '/r', appDir: '/src/app', dest: '/app', listings: new Map([['', [{ name: 'usr', type: 'directory' }]]]) });
 * // { skeleton: true, entries: [usr/, app/], mounts: [/r/usr → /usr (ro), /src/app → /app (ro)] }
 */
export function planDevRoot(input: DevRootInput): DevRootPlan {
  const parts = partsOf(input.dest);
  const app: BindMount = { source: input.appDir, destination: `/${parts.join('/')}`, readonly: true };
  // The first part of dest the base lacks (parts.length when it has all of it).
  let missing = 0;
  for (; missing < parts.length; missing++) {
    const dir = parts.slice(0, missing).join('/');
    const entry = input.listings.get(dir)?.find((e) => e.name === parts[missing]);
    if (entry === undefined) break;
    if (entry.type !== 'directory') {
      const at = `/${parts.slice(0, missing + 1).join('/')}`;
      throw new ValidationError(input.file, [
        {
          path: 'app.dest',
          message: `${input.dest} goes through ${at}, which is a ${entry.type} in the base image, not a directory`,
          fix: 'choose an app.dest whose parents are directories in the base image (or new), such as /app',
        },
      ]);
    }
  }
  if (missing === parts.length) return { skeleton: false, entries: [], mounts: [app] };

  const entries: SkeletonEntry[] = [];
  const mounts: BindMount[] = [];
  for (let level = 0; level <= missing; level++) {
    const dir = parts.slice(0, level).join('/');
    const listing = [...(input.listings.get(dir) ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of listing) {
      if (level < missing && e.name === parts[level]) continue; // laid out at the next level
      const rel = dir === '' ? e.name : `${dir}/${e.name}`;
      const bound: BindMount = {
        source: path.join(input.baseRootfs, rel),
        destination: `/${rel}`,
        readonly: true,
      };
      if (e.type === 'directory') {
        entries.push({ kind: 'directory', path: rel });
        if (!(level === 0 && RUNTIME_MOUNT_POINTS.includes(e.name))) mounts.push(bound);
      } else if (e.type === 'file') {
        entries.push({ kind: 'file', path: rel });
        mounts.push(bound);
      } else if (e.type === 'symlink' && e.target !== undefined) {
        entries.push({ kind: 'symlink', path: rel, target: e.target });
      }
    }
    if (level < missing) entries.push({ kind: 'directory', path: parts.slice(0, level + 1).join('/') });
  }
  for (let i = missing; i < parts.length; i++)
    entries.push({ kind: 'directory', path: parts.slice(0, i + 1).join('/') });
  for (const name of RUNTIME_MOUNT_POINTS) {
    if (!entries.some((e) => e.path === name)) entries.push({ kind: 'directory', path: name });
  }
  return { skeleton: true, entries, mounts: [...mounts, app] };
}

/** What a prepared dev root is: the rootfs to run and the mounts to give the instance. */
export interface DevRoot {
  readonly rootfs: string;
  readonly mounts: readonly BindMount[];
}

/**
 * Reads the base's directories on the way to `dest`, plans the root, and makes the skeleton (when
 * one is needed) at `skeletonDir`: in a temporary directory renamed into place, so a crash never
 * leaves a half-made root that a later start would use.
 */
export async function prepareDevRoot(
  input: Omit<DevRootInput, 'listings'> & { readonly skeletonDir: string },
): Promise<DevRoot> {
  const listings = new Map<string, BaseEntry[]>();
  for (const dir of ancestorsOf(input.dest)) {
    const listing = await listDir(path.join(input.baseRootfs, dir));
    if (listing === undefined) break;
    listings.set(dir, listing);
  }
  const plan = planDevRoot({ ...input, listings });
  if (!plan.skeleton) return { rootfs: input.baseRootfs, mounts: plan.mounts };
  const tmp = `${input.skeletonDir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true, mode: 0o755 });
  for (const e of plan.entries) {
    const at = path.join(tmp, e.path);
    if (e.kind === 'directory') await mkdir(at, { mode: 0o755 });
    else if (e.kind === 'symlink') await symlink(e.target, at);
    else await writeFile(at, '', { mode: 0o644 });
  }
  await rm(input.skeletonDir, { recursive: true, force: true });
  await rename(tmp, input.skeletonDir);
  return { rootfs: input.skeletonDir, mounts: plan.mounts };
}

async function listDir(dir: string): Promise<BaseEntry[] | undefined> {
  const info = await lstat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return undefined;
  const out: BaseEntry[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    if (d.isDirectory()) out.push({ name: d.name, type: 'directory' });
    else if (d.isFile()) out.push({ name: d.name, type: 'file' });
    else if (d.isSymbolicLink())
      out.push({ name: d.name, type: 'symlink', target: await readlink(path.join(dir, d.name)) });
    else out.push({ name: d.name, type: 'other' });
  }
  return out;
}

function partsOf(dest: string): string[] {
  const parts = dest.split('/').filter((p) => p !== '' && p !== '.');
  if (!dest.startsWith('/') || parts.length === 0 || parts.includes('..')) {
    throw new ValidationError(undefined, [
      {
        path: 'app.dest',
        message: `"${dest}" must be an absolute path below /, without ".."`,
        fix: 'use a path such as /app',
      },
    ]);
  }
  return parts;
}
