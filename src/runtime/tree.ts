/**
 * Known state of a root filesystem: the manifest of its files (path, type, mode, owner, size and
 * sha256 of every regular file, target of every symlink), taken when an image's rootfs is unpacked
 * from digest-verified layers, and the comparison of a tree on disk with it. A quick comparison
 * trusts files whose inode change time, size and inode are those the full one saw (a write, a
 * chmod, a chown or a rename always moves the change time); a full one hashes every file.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

/** The kinds of entry a tree holds. */
export type TreeEntryType =
  'file' | 'directory' | 'symlink' | 'fifo' | 'character-device' | 'block-device' | 'socket';

/** One entry of a tree, root-relative (`usr/bin/env`). */
export interface TreeEntry {
  readonly path: string;
  readonly type: TreeEntryType;
  /** Permission bits with setuid, setgid and sticky (`0o4755`). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Regular files: size in bytes and `sha256:` of the contents. */
  readonly size?: number;
  readonly sha256?: string;
  /** Symlinks: the target as written. */
  readonly target?: string;
}

/** A difference between a tree and its manifest. */
export interface TreeDrift {
  readonly path: string;
  readonly change: 'added' | 'removed' | 'modified';
  /** What differs, such as `sha256 sha256:ab… → sha256:cd…` or `mode 0644 → 0666`. */
  readonly detail: string;
}

/** What a quick check compares: the change time, size and inode a file had when last hashed. */
export type TreeBaseline = ReadonlyMap<
  string,
  { readonly ctimeMs: number; readonly size: number; readonly ino: number }
>;

/** Options of {@link compareTree}. */
export interface CompareOptions {
  /**
   * Root-relative paths whose contents are not the image's: the runtime's mount points (`proc`,
   * `dev`, `sys`, `tmp`), whose directories it may create. The paths themselves may be added.
   */
  readonly ignore?: readonly string[];
  /** Skip hashing files whose change time, size and inode match this baseline. */
  readonly baseline?: TreeBaseline;
}

/** Every entry under `root`, sorted by path, regular files hashed. Mount points are not crossed. */
export async function walkTree(
  root: string,
  options: {
    readonly ignore?: readonly string[];
    /**
     * A tree `root` was hard-link-copied from, with its manifest: a file that is still the same
     * inode there takes the sha256 recorded for it instead of being read again.
     */
    readonly reuse?: { readonly root: string; readonly files: readonly TreeEntry[] };
  } = {},
): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const ignored = ignoreSet(options.ignore);
  const known = new Map(options.reuse?.files.map((f) => [f.path, f]));
  await walk(root, '', ignored, async (rel, abs, st) => {
    const before = st.isFile() ? known.get(rel) : undefined;
    const same =
      before?.sha256 !== undefined &&
      before.size === st.size &&
      (await lstat(path.join(options.reuse!.root, rel)).catch(() => undefined))?.ino === st.ino;
    out.push(
      same ? { ...(await entryOf(rel, abs, st, false)), sha256: before.sha256 } : await entryOf(rel, abs, st),
    );
  });
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Compares the tree under `root` with `expected` and returns every difference (empty when it is
 * exactly the image), with the baseline to pass to the next quick comparison.
 */
export async function compareTree(
  root: string,
  expected: readonly TreeEntry[],
  options: CompareOptions = {},
): Promise<{ readonly drift: TreeDrift[]; readonly baseline: TreeBaseline }> {
  const want = new Map(expected.map((e) => [e.path, e]));
  const ignored = ignoreSet(options.ignore);
  const drift: TreeDrift[] = [];
  const baseline = new Map<string, { ctimeMs: number; size: number; ino: number }>();
  const seen = new Set<string>();
  await walk(root, '', ignored, async (rel, abs, st) => {
    seen.add(rel);
    const w = want.get(rel);
    if (!w) {
      drift.push({ path: rel, change: 'added', detail: `${typeOf(st)} not in the image` });
      return;
    }
    const known = options.baseline?.get(rel);
    const trusted =
      known !== undefined && known.ctimeMs === st.ctimeMs && known.size === st.size && known.ino === st.ino;
    const have =
      trusted && w.type === 'file'
        ? { ...(await entryOf(rel, abs, st, false)), sha256: w.sha256 }
        : await entryOf(rel, abs, st);
    const detail = differences(w, have);
    if (detail) drift.push({ path: rel, change: 'modified', detail });
    else baseline.set(rel, { ctimeMs: st.ctimeMs, size: st.size, ino: st.ino });
  });
  for (const e of expected) {
    if (!seen.has(e.path) && !isIgnored(e.path, ignored)) {
      drift.push({ path: e.path, change: 'removed', detail: `${e.type} of the image is gone` });
    }
  }
  drift.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { drift, baseline };
}

/** The differences of entry list `actual` from `expected` (both as {@link walkTree} lists them), by path. */
export function compareEntries(expected: readonly TreeEntry[], actual: readonly TreeEntry[]): TreeDrift[] {
  const have = new Map(actual.map((e) => [e.path, e]));
  const drift: TreeDrift[] = [];
  for (const w of expected) {
    const h = have.get(w.path);
    have.delete(w.path);
    if (!h) drift.push({ path: w.path, change: 'removed', detail: `${w.type} is missing` });
    else {
      const detail = differences(w, h);
      if (detail) drift.push({ path: w.path, change: 'modified', detail });
    }
  }
  for (const h of have.values())
    drift.push({ path: h.path, change: 'added', detail: `${h.type} not listed` });
  return drift.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** One line per difference, at most `max`, for events and errors. */
export function describeDrift(drift: readonly TreeDrift[], max = 5): string {
  const lines = drift.slice(0, max).map((d) => `/${d.path} ${d.change} (${d.detail})`);
  if (drift.length > max) lines.push(`and ${drift.length - max} more`);
  return lines.join('; ');
}

type Visit = (rel: string, abs: string, st: Stats) => Promise<void>;

async function walk(root: string, rel: string, ignored: ReadonlySet<string>, visit: Visit): Promise<void> {
  const dir = rel === '' ? root : path.join(root, rel);
  const names = (await readdir(dir)).sort();
  for (const name of names) {
    const childRel = rel === '' ? name : `${rel}/${name}`;
    const abs = path.join(root, childRel);
    const st = await lstat(abs).catch(() => undefined);
    if (!st) continue; // gone between readdir and lstat: the next check sees it
    // The mount point itself is the image's (or made by the runtime), its contents never are.
    if (ignored.has(childRel)) continue;
    await visit(childRel, abs, st);
    if (st.isDirectory()) await walk(root, childRel, ignored, visit);
  }
}

async function entryOf(rel: string, abs: string, st: Stats, hash = true): Promise<TreeEntry> {
  const base = { path: rel, type: typeOf(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  if (st.isFile()) {
    return { ...base, size: st.size, ...(hash ? { sha256: await sha256File(abs) } : {}) };
  }
  if (st.isSymbolicLink()) return { ...base, target: await readlink(abs) };
  return base;
}

function differences(want: TreeEntry, have: TreeEntry): string | undefined {
  const out: string[] = [];
  if (want.type !== have.type) return `type ${want.type} → ${have.type}`;
  if (want.type !== 'symlink' && want.mode !== have.mode) {
    out.push(`mode ${want.mode.toString(8).padStart(4, '0')} → ${have.mode.toString(8).padStart(4, '0')}`);
  }
  if (want.uid !== have.uid || want.gid !== have.gid)
    out.push(`owner ${want.uid}:${want.gid} → ${have.uid}:${have.gid}`);
  if (want.size !== have.size) out.push(`size ${want.size} → ${have.size}`);
  else if (want.sha256 !== have.sha256)
    out.push(`sha256 ${want.sha256?.slice(0, 19)}… → ${have.sha256?.slice(0, 19)}…`);
  if (want.target !== have.target) out.push(`target ${want.target} → ${have.target}`);
  return out.length ? out.join(', ') : undefined;
}

function typeOf(st: Stats): TreeEntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'character-device';
  if (st.isBlockDevice()) return 'block-device';
  return 'socket';
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return `sha256:${hash.digest('hex')}`;
}

function ignoreSet(paths: readonly string[] = []): ReadonlySet<string> {
  return new Set(paths.map((p) => p.replace(/^\/+|\/+$/g, '')));
}

function isIgnored(rel: string, ignored: ReadonlySet<string>): boolean {
  for (const p of ignored) if (rel === p || rel.startsWith(`${p}/`)) return true;
  return false;
}
