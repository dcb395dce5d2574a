/**
 * Deterministic layer tarballs: the same entries, in any order, always give the same bytes, so the
 * same inputs give the same image digest on any machine. Reading layers is in `tar-read.ts`.
 */
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import { ValidationError, type ValidationIssue } from '../errors/index.js';
import { sha256Digest } from './digest.js';
import { ancestors, comparePaths, normaliseEntryPath } from './paths.js';
import { MediaType, type Descriptor, type Digest, type EntryType, type LayerEntry } from './types.js';

const gzip = promisify(gzipCallback);

/**
 * The gzip level every layer is compressed with; fixed so the compressed bytes are reproducible.
 * 6, not 9: on a 110 MiB Node.js root, 9 takes 3x as long for 0.3% less.
 */
export const LAYER_GZIP_LEVEL = 6;
/** Mode given to parent directories that `buildLayer` adds because no entry named them. */
export const IMPLICIT_DIR_MODE = 0o755;

/** Largest uid, gid or device number a ustar header holds (six octal digits). */
const MAX_USTAR_ID = 0o777777;
/** Largest mtime a ustar header holds (eleven octal digits). */
const MAX_USTAR_MTIME = 0o77777777777;
/** The entry types a layer may hold. */
export const ENTRY_TYPES: ReadonlySet<EntryType> = new Set([
  'file',
  'directory',
  'symlink',
  'link',
  'character-device',
  'block-device',
  'fifo',
]);
/** File-type bits OR-ed into header modes: tar-stream replaces a mode of 0 by a default otherwise. */
const TYPE_BITS: Record<EntryType, number> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  link: 0o100000,
  'character-device': 0o020000,
  'block-device': 0o060000,
  fifo: 0o010000,
};

/** Options for {@link buildLayer}. */
export interface BuildLayerOptions {
  /** Modification time written into every header, in seconds since the epoch (`SOURCE_DATE_EPOCH`). */
  readonly mtime: number;
}

/** A layer ready to store: its gzip blob, the blob's descriptor, and the digest of the plain tar. */
export interface BuiltLayer {
  /** The gzip-compressed tar. */
  readonly blob: Buffer;
  /** `mediaType` LayerTarGzip, with the digest and size of `blob`. */
  readonly descriptor: Descriptor;
  /** sha256 of the uncompressed tar, as listed in the image config's `rootfs.diff_ids`. */
  readonly diffId: Digest;
  readonly uncompressedSize: number;
}

/**
 * Builds a reproducible gzip layer. Entries are validated (every problem reported at once),
 * de-duplicated (the last entry for a path wins), completed with missing parent directories (mode
 * 0o755, owner 0:0), and written in byte order of their paths, which puts every directory before
 * its contents. A hard link whose target is in the same layer but sorts after it is written right
 * after its target, so extractors always find the target. Headers are fixed: `mtime` from the
 * options, empty uname/gname, no atime/ctime; paths too long for ustar get a pax header.
 * Whiteouts are ordinary entries named `.wh.<name>` (or `.wh..wh..opq`).
 *
 * The tar bytes (and so `diffId`) depend only on the entries and `mtime`. The gzip bytes also
 * depend on the zlib that Node.js bundles, which is fixed for a given Node.js release.
 *
 * @example
 * const layer = await buildLayer(
 *   [{ path: 'etc/motd', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from('hi\n') }],
 *   { mtime: Number(process.env.SOURCE_DATE_EPOCH ?? 0) },
 * );
 */
export async function buildLayer(
  entries: Iterable<LayerEntry>,
  options: BuildLayerOptions,
): Promise<BuiltLayer> {
  const ordered = planEntries(entries, options.mtime);
  const tar = await packTar(ordered, options.mtime);
  const blob = await gzip(tar, { level: LAYER_GZIP_LEVEL });
  // The gzip header's OS byte depends on the platform zlib was built for; pin it to 255
  // ("unknown") so a layer built on any host has the same bytes.
  blob[9] = 0xff;
  return {
    blob,
    descriptor: { mediaType: MediaType.LayerTarGzip, digest: sha256Digest(blob), size: blob.length },
    diffId: sha256Digest(tar),
    uncompressedSize: tar.length,
  };
}

function planEntries(entries: Iterable<LayerEntry>, mtime: number): LayerEntry[] {
  const issues: ValidationIssue[] = [];
  if (!Number.isInteger(mtime) || mtime < 0 || mtime > MAX_USTAR_MTIME) {
    issues.push({
      path: 'mtime',
      message: `${mtime} is not a whole number of seconds between 0 and ${MAX_USTAR_MTIME}`,
      fix: 'pass SOURCE_DATE_EPOCH as an integer',
    });
  }
  const byPath = new Map<string, LayerEntry>();
  let i = 0;
  for (const entry of entries) {
    const clean = validateEntry(entry, `entries[${i++}]`, issues);
    if (clean) byPath.set(clean.path, clean);
  }
  for (const [path, entry] of [...byPath]) {
    for (const dir of ancestors(path)) {
      const parent = byPath.get(dir);
      if (parent === undefined) {
        byPath.set(dir, { path: dir, type: 'directory', mode: IMPLICIT_DIR_MODE, uid: 0, gid: 0 });
      } else if (parent.type !== 'directory') {
        issues.push({
          path: entry.path,
          message: `"${path}" is inside "${dir}", which is a ${parent.type}, not a directory`,
          fix: `make "${dir}" a directory or move "${path}"`,
        });
      }
    }
  }
  if (issues.length > 0) throw new ValidationError('layer entries', issues);
  return orderEntries([...byPath.values()].sort((a, b) => comparePaths(a.path, b.path)));
}

function validateEntry(entry: LayerEntry, at: string, issues: ValidationIssue[]): LayerEntry | undefined {
  const before = issues.length;
  const norm = normaliseEntryPath(entry.path);
  if (!norm.ok)
    issues.push({
      path: at,
      message: `path "${entry.path}" ${norm.problem}`,
      fix: 'use a path relative to the image root',
    });
  else if (norm.path === '') issues.push({ path: at, message: 'the image root itself cannot be an entry' });
  if (!ENTRY_TYPES.has(entry.type))
    issues.push({ path: at, message: `unknown entry type "${String(entry.type)}"` });
  if (!Number.isInteger(entry.mode) || entry.mode < 0 || entry.mode > 0o7777) {
    issues.push({
      path: at,
      message: `mode ${entry.mode} is not within 0o0000..0o7777`,
      fix: 'give permission bits only, e.g. 0o755',
    });
  }
  for (const key of ['uid', 'gid'] as const) {
    if (!Number.isInteger(entry[key]) || entry[key] < 0 || entry[key] > MAX_USTAR_ID) {
      issues.push({ path: at, message: `${key} ${entry[key]} is not within 0..${MAX_USTAR_ID}` });
    }
  }
  if (entry.content !== undefined && entry.type !== 'file') {
    issues.push({
      path: at,
      message: `a ${entry.type} cannot have content`,
      fix: 'drop content or use type "file"',
    });
  }
  let linkname = entry.linkname;
  if (entry.type === 'symlink' && (!linkname || linkname.includes('\0'))) {
    issues.push({ path: at, message: 'a symlink needs a non-empty linkname' });
  }
  if (entry.type === 'link') {
    const target = normaliseEntryPath(linkname ?? '');
    if (!target.ok || target.path === '') {
      issues.push({
        path: at,
        message: `hard link target "${linkname ?? ''}" ${target.ok ? 'is empty' : target.problem}`,
        fix: 'name the target relative to the image root, e.g. "usr/bin/perl"',
      });
    } else {
      linkname = target.path;
      if (norm.ok && target.path === norm.path)
        issues.push({ path: at, message: 'a hard link cannot point at itself' });
    }
  }
  if (entry.type === 'character-device' || entry.type === 'block-device') {
    for (const key of ['devmajor', 'devminor'] as const) {
      const n = entry[key] ?? 0;
      if (!Number.isInteger(n) || n < 0 || n > MAX_USTAR_ID)
        issues.push({ path: at, message: `${key} ${n} is not within 0..${MAX_USTAR_ID}` });
    }
  }
  if (issues.length > before || !norm.ok) return undefined;
  return { ...entry, path: norm.path, linkname };
}

/** Sorted order, except that a hard link never precedes a target that is in the same layer. */
function orderEntries(sorted: LayerEntry[]): LayerEntry[] {
  const paths = new Set(sorted.map((e) => e.path));
  const written = new Set<string>();
  const waiting = new Map<string, LayerEntry[]>();
  const out: LayerEntry[] = [];
  const emit = (entry: LayerEntry): void => {
    out.push(entry);
    written.add(entry.path);
    const links = waiting.get(entry.path);
    waiting.delete(entry.path);
    for (const link of links ?? []) emit(link);
  };
  for (const entry of sorted) {
    const target = entry.type === 'link' ? entry.linkname! : undefined;
    if (target !== undefined && paths.has(target) && !written.has(target)) {
      waiting.set(target, [...(waiting.get(target) ?? []), entry]);
    } else {
      emit(entry);
    }
  }
  // Links left waiting form a cycle of links to links; refuse rather than write an unreadable tar.
  if (waiting.size > 0) {
    throw new ValidationError('layer entries', [
      ...[...waiting.values()]
        .flat()
        .map((e) => ({ path: e.path, message: `hard link to "${e.linkname}" is part of a cycle of links` })),
    ]);
  }
  return out;
}

async function packTar(entries: readonly LayerEntry[], mtime: number): Promise<Buffer> {
  const packer = pack();
  const chunks: Buffer[] = [];
  const finished = new Promise<void>((resolve, reject) => {
    packer.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    packer.on('end', () => resolve());
    packer.on('error', reject);
  });
  for (const entry of entries) {
    const header = tarHeader(entry, mtime);
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (entry.type === 'file') packer.entry(header, entry.content ?? Buffer.alloc(0), done);
      else packer.entry(header, done);
    });
  }
  packer.finalize();
  await finished;
  return Buffer.concat(chunks);
}

function tarHeader(entry: LayerEntry, mtime: number): Header {
  const isDevice = entry.type === 'character-device' || entry.type === 'block-device';
  return {
    name: entry.type === 'directory' ? `${entry.path}/` : entry.path,
    type: entry.type,
    mode: entry.mode | TYPE_BITS[entry.type],
    uid: entry.uid,
    gid: entry.gid,
    uname: '',
    gname: '',
    mtime: new Date(mtime * 1000),
    size: entry.type === 'file' ? (entry.content?.length ?? 0) : 0,
    linkname: entry.type === 'symlink' || entry.type === 'link' ? entry.linkname! : '',
    devmajor: isDevice ? (entry.devmajor ?? 0) : 0,
    devminor: isDevice ? (entry.devminor ?? 0) : 0,
  };
}
