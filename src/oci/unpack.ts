/**
 * Safe unpacking of image layers into a new root filesystem directory. Every path is resolved
 * component by component with lstat inside the root, so no entry can be written outside it.
 */
import { constants as fsc } from 'node:fs';
import {
  chmod,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
  utimes,
} from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { ConflictError, IntegrityError, wrap } from '../errors/index.js';
import { sha256Digest } from './digest.js';
import { randomSuffix, syncDir } from './fsutil.js';
import { readLayer, type ReadLayerLimits } from './tar-read.js';
import type { Digest, LayerEntry } from './types.js';

/** Options for {@link unpackLayers}. */
export interface UnpackOptions {
  /** Limits applied to each layer as it is read. */
  readonly limits?: ReadLayerLimits;
  /**
   * The layers' digests, from the manifest, one per layer: a layer that hashes to anything else is
   * refused (IntegrityError naming the digest) before any of its entries is applied.
   * @default none: the layers are taken as given
   */
  readonly digests?: readonly Digest[];
  /** chown entries to the uid/gid in the tar. @default true when running as root */
  readonly preserveOwnership?: boolean;
  /** Create character and block devices (needs root); otherwise a device entry is refused. @default false */
  readonly allowDevices?: boolean;
  /**
   * An unpacked tree of the layers below `layers` to start from: it is copied with hard links
   * (`cp -al`; directories are real copies) and `layers` are applied on top. Safe because every
   * entry a layer writes replaces the file (a new inode), never writes into it, so `onto` is never
   * changed. @default an empty root
   */
  readonly onto?: string;
}

/** Most symlinks followed while resolving one path, as in Linux (`ELOOP`). */
export const MAX_SYMLINK_HOPS = 40;

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_WHITEOUT = '.wh..wh..opq';

/**
 * Applies `layers` (gzip or plain tar, lowest first) into the new directory `destDir`, handling OCI
 * whiteouts (`.wh.<name>` removes a lower entry, `.wh..wh..opq` hides a directory's lower contents).
 * Works in `destDir.tmp-<random>` and renames it into place at the end; on any error the temp
 * directory is removed and `destDir` is never created.
 *
 * Refused, with an IntegrityError naming the layer and entry: `..` and absolute paths, writing
 * through a symlink that leaves the root (a relative target climbing above it, or a target that is
 * the root itself, as `evil -> /`), hard links whose target passes through a symlink, does not
 * exist yet or is a directory, a path listed twice in one layer (but for a directory listed again),
 * device nodes unless `allowDevices`, and whatever {@link readLayer} refuses. A symlink with an
 * absolute target is followed relative to the root (`lib -> /usr/lib` means `<root>/usr/lib`), as
 * the image's runtime will see it. FIFOs are created. Modes (setuid and setgid included: images
 * ship `su` and `passwd`), owners (when `preserveOwnership`) and mtimes come from the tar.
 */
export async function unpackLayers(
  layers: readonly Buffer[],
  destDir: string,
  options: UnpackOptions = {},
): Promise<void> {
  if (options.digests !== undefined && options.digests.length !== layers.length) {
    throw new IntegrityError(
      `unpacking: ${layers.length} layers were given with ${options.digests.length} digests; give one digest per layer`,
    );
  }
  const dest = resolve(destDir);
  if (await lstat(dest).catch(() => undefined)) {
    throw new ConflictError(`${dest} already exists; unpack into a new directory`);
  }
  await mkdir(dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${randomSuffix()}`;
  if (options.onto === undefined) await mkdir(tmp, { mode: 0o755 });
  else await execa('cp', ['-al', '--', resolve(options.onto), tmp]);
  try {
    const unpacker = new Unpacker(tmp, {
      preserveOwnership: options.preserveOwnership ?? process.getuid?.() === 0,
      allowDevices: options.allowDevices ?? false,
    });
    for (const [i, layer] of layers.entries()) {
      const actual = sha256Digest(layer);
      const context = `unpacking layer ${i} (${actual})`;
      const expected = options.digests?.[i];
      if (expected !== undefined && expected !== actual) {
        throw new IntegrityError(
          `unpacking layer ${i}: its content hashes to ${actual}, not its digest ${expected}; the layer is damaged or was tampered with`,
        );
      }
      let entries: LayerEntry[];
      try {
        entries = await readLayer(layer, options.limits);
      } catch (err) {
        throw wrap(context, err);
      }
      await unpacker.applyLayer(entries, context);
    }
    await unpacker.finish();
    await rename(tmp, dest);
    await syncDir(dirname(dest));
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

interface DirMeta {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtime?: number;
}

const IMPLICIT_DIR: DirMeta = { mode: 0o755, uid: 0, gid: 0 };

class Unpacker {
  /** Final attributes of directories, applied at the end: children change a directory's mtime, and
   * a read-only directory could not take children when not root. */
  private readonly dirs = new Map<string, DirMeta>();
  /** Paths (and their ancestors) written by the current layer, which its whiteouts must spare. */
  private touched = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly opts: { readonly preserveOwnership: boolean; readonly allowDevices: boolean },
  ) {}

  async applyLayer(entries: readonly LayerEntry[], context: string): Promise<void> {
    this.touched = new Set();
    // The image spec forbids duplicates: one path shown to a scanner, another applied.
    const seen = new Map<string, LayerEntry['type']>();
    for (const entry of entries) {
      try {
        const before = seen.get(entry.path);
        if (before !== undefined && (before !== 'directory' || entry.type !== 'directory')) {
          throw new IntegrityError(
            `"${entry.path}" appears more than once in the layer (a ${before}, then a ${entry.type}); a layer lists each path once`,
          );
        }
        seen.set(entry.path, entry.type);
        await this.applyEntry(entry);
      } catch (err) {
        throw wrap(`${context}: entry "${entry.path}"`, this.explain(err));
      }
    }
  }

  /** A system error a hostile entry can provoke, as an IntegrityError that says what to do. */
  private explain(err: unknown): unknown {
    if ((err as NodeJS.ErrnoException).code === 'ENAMETOOLONG') {
      return new IntegrityError(
        `the path is too long to create under ${this.root} (ENAMETOOLONG): unpack into a directory with a shorter path`,
        { cause: err },
      );
    }
    return err;
  }

  async finish(): Promise<void> {
    const deepestFirst = [...this.dirs].sort((a, b) => b[0].length - a[0].length);
    for (const [path, meta] of deepestFirst) {
      const st = await lstat(path).catch(() => undefined);
      if (!st?.isDirectory()) continue;
      if (this.opts.preserveOwnership) await lchown(path, meta.uid, meta.gid);
      await chmod(path, meta.mode);
      if (meta.mtime !== undefined) await utimes(path, meta.mtime, meta.mtime);
    }
  }

  private async applyEntry(entry: LayerEntry): Promise<void> {
    const parts = entry.path.split('/');
    const name = parts.pop()!;
    if (name === OPAQUE_WHITEOUT) {
      const dir = await this.walk(this.root, parts, false, 0);
      if (dir !== undefined) await this.hideLowerContents(dir);
      return;
    }
    if (name.startsWith(WHITEOUT_PREFIX)) {
      const victim = name.slice(WHITEOUT_PREFIX.length);
      if (victim === '' || victim === '.' || victim === '..' || victim.startsWith(WHITEOUT_PREFIX)) {
        throw new IntegrityError(`unsupported whiteout "${name}"`);
      }
      const dir = await this.walk(this.root, parts, false, 0);
      const path = dir === undefined ? undefined : join(dir, victim);
      if (path !== undefined && !this.touched.has(path)) await rm(path, { recursive: true, force: true });
      return;
    }
    const parent = (await this.walk(this.root, parts, true, 0))!;
    const path = join(parent, name);
    this.touch(path);
    switch (entry.type) {
      case 'directory':
        return this.makeDirectory(path, entry);
      case 'file':
        return this.writeFile(path, entry);
      case 'symlink':
        await this.clear(path);
        await symlink(entry.linkname!, path);
        if (this.opts.preserveOwnership) await lchown(path, entry.uid, entry.gid);
        if (entry.mtime !== undefined) await lutimes(path, entry.mtime, entry.mtime);
        return;
      case 'link':
        return this.hardLink(path, entry);
      case 'fifo':
        await this.clear(path);
        await execa('mkfifo', [path]);
        return this.setMeta(path, entry);
      case 'character-device':
      case 'block-device':
        if (!this.opts.allowDevices) {
          throw new IntegrityError(
            `${entry.type} refused (set allowDevices to create device nodes, which needs root)`,
          );
        }
        await this.clear(path);
        await execa('mknod', [
          path,
          entry.type === 'block-device' ? 'b' : 'c',
          String(entry.devmajor ?? 0),
          String(entry.devminor ?? 0),
        ]);
        return this.setMeta(path, entry);
    }
  }

  /**
   * Resolves directory `parts` from `start` inside the root, following symlinks with root-relative
   * semantics and refusing any that leave it. Missing directories are created when `create` (never
   * through a symlink, whose target must exist); otherwise undefined is returned.
   */
  private async walk(
    start: string,
    parts: readonly string[],
    create: boolean,
    hops: number,
    via?: string,
  ): Promise<string | undefined> {
    let cur = start;
    for (const part of parts) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        // Entry paths never hold "..", so this comes from a symlink's target.
        if (cur === this.root) throw new IntegrityError(`symlink ${via ?? ''} climbs above the image root`);
        cur = dirname(cur);
        continue;
      }
      const next = join(cur, part);
      const st = await lstat(next).catch(() => undefined);
      if (st === undefined) {
        if (!create) return undefined;
        await mkdir(next, { mode: 0o700 });
        this.dirs.set(next, IMPLICIT_DIR);
        this.touch(next);
        cur = next;
      } else if (st.isSymbolicLink()) {
        if (hops >= MAX_SYMLINK_HOPS)
          throw new IntegrityError(`more than ${MAX_SYMLINK_HOPS} symlinks on the path`);
        const target = await readlink(next);
        const via = this.relative(next);
        const base = target.startsWith('/') ? this.root : cur;
        const resolved = await this.walk(base, target.split('/'), false, hops + 1, `"${via}" -> "${target}"`);
        if (resolved === this.root) {
          throw new IntegrityError(
            `symlink "${via}" -> "${target}" points at the image root; refusing to write through it`,
          );
        }
        if (resolved === undefined) {
          if (!create) return undefined;
          throw new IntegrityError(`symlink "${via}" -> "${target}" on the path points at nothing`);
        }
        cur = resolved;
      } else if (st.isDirectory()) {
        cur = next;
      } else {
        throw new IntegrityError(`"${this.relative(next)}" is not a directory`);
      }
    }
    return cur;
  }

  private async makeDirectory(path: string, entry: LayerEntry): Promise<void> {
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isDirectory()) {
      await this.clear(path);
      await mkdir(path, { mode: 0o700 });
    }
    this.dirs.set(path, { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime });
  }

  private async writeFile(path: string, entry: LayerEntry): Promise<void> {
    await this.clear(path);
    const fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      await fh.writeFile(entry.content ?? Buffer.alloc(0));
    } finally {
      await fh.close();
    }
    await this.setMeta(path, entry);
  }

  private async hardLink(path: string, entry: LayerEntry): Promise<void> {
    // The target is walked without following any symlink: a link made through one could
    // name a file outside the root.
    let source = this.root;
    const parts = entry.linkname!.split('/');
    for (const [i, part] of parts.entries()) {
      source = join(source, part);
      const st = await lstat(source).catch(() => undefined);
      const shown = parts.slice(0, i + 1).join('/');
      if (st === undefined) throw new IntegrityError(`hard link target "${entry.linkname}" does not exist`);
      if (i < parts.length - 1 && st.isSymbolicLink()) {
        throw new IntegrityError(`hard link target "${entry.linkname}" passes through symlink "${shown}"`);
      }
      if (i < parts.length - 1 && !st.isDirectory())
        throw new IntegrityError(`hard link target "${entry.linkname}": "${shown}" is not a directory`);
      if (i === parts.length - 1 && st.isDirectory())
        throw new IntegrityError(`hard link target "${entry.linkname}" is a directory`);
    }
    if (source === path) return;
    await this.clear(path);
    await link(source, path);
  }

  private async setMeta(path: string, entry: LayerEntry): Promise<void> {
    // chown first: it clears setuid/setgid bits, which chmod then sets as the tar says.
    if (this.opts.preserveOwnership) await lchown(path, entry.uid, entry.gid);
    await chmod(path, entry.mode);
    if (entry.mtime !== undefined) await utimes(path, entry.mtime, entry.mtime);
  }

  /** Removes whatever is at `path` (never following a symlink there). */
  private async clear(path: string): Promise<void> {
    await rm(path, { recursive: true, force: true });
  }

  /** Removes the contents of `dir` that lower layers put there, keeping what this layer wrote. */
  private async hideLowerContents(dir: string): Promise<void> {
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if (!this.touched.has(path)) await rm(path, { recursive: true, force: true });
      else if ((await lstat(path)).isDirectory()) await this.hideLowerContents(path);
    }
  }

  private touch(path: string): void {
    for (let p = path; p !== this.root && p.startsWith(this.root); p = dirname(p)) this.touched.add(p);
  }

  private relative(path: string): string {
    return path.slice(this.root.length + 1);
  }
}
