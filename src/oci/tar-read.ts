/**
 * Reading layers defensively: a streaming reader that refuses entries that could escape the root,
 * and stops archives that would exhaust memory while they stream.
 */
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { IntegrityError } from '../errors/index.js';
import { normaliseEntryPath } from './paths.js';
import { ENTRY_TYPES } from './tar.js';
import type { EntryType, LayerEntry } from './types.js';

/** Largest single file `readLayer` accepts unless told otherwise: 1 GiB. */
export const DEFAULT_MAX_FILE_BYTES = 1024 ** 3;
/** Largest total of file contents `readLayer` accepts unless told otherwise: 8 GiB. */
export const DEFAULT_MAX_TOTAL_BYTES = 8 * 1024 ** 3;
/** Most entries `readLayer` accepts unless told otherwise. */
export const DEFAULT_MAX_ENTRIES = 1_000_000;
/**
 * Most times a gzip layer may expand beyond its compressed size unless told otherwise. Real layers
 * inflate 2-10 times; a gzip bomb (zeros) about 1,000 times.
 */
export const DEFAULT_MAX_EXPANSION_RATIO = 100;
/** A gzip layer may always inflate to this much, whatever its ratio: 64 MiB. */
export const EXPANSION_FLOOR_BYTES = 64 * 1024 ** 2;
/** Longest entry path, symlink target or hard link target, in bytes, as Linux's `PATH_MAX` allows. */
export const MAX_PATH_BYTES = 4095;
/** Longest single path component, in bytes, as Linux's `NAME_MAX` allows. */
export const MAX_NAME_BYTES = 255;
/** Largest uid or gid an entry may carry (`(uid_t)-1` is "no owner" on Linux, so it is refused). */
const MAX_ID = 0xfffffffe;

/** Limits for {@link readLayer}; a layer beyond any of them is refused while it streams. */
export interface ReadLayerLimits {
  /** @default DEFAULT_MAX_ENTRIES */
  readonly maxEntries?: number;
  /** Largest size of one entry, in bytes. @default DEFAULT_MAX_FILE_BYTES */
  readonly maxFileBytes?: number;
  /** Largest sum of entry sizes, in bytes. @default DEFAULT_MAX_TOTAL_BYTES */
  readonly maxTotalBytes?: number;
  /**
   * Most times a gzip layer may inflate beyond its compressed size, once past
   * {@link EXPANSION_FLOOR_BYTES}. @default DEFAULT_MAX_EXPANSION_RATIO
   */
  readonly maxExpansionRatio?: number;
}

/**
 * Bytes a tar may hold beyond the contents its headers declare: per entry (header, padding, pax
 * records), and once (end-of-archive blocks, record padding, read-ahead). A stream that runs past
 * this, such as gigabytes of zero blocks after the last entry, is refused as a gzip bomb.
 */
const TAR_OVERHEAD_PER_ENTRY = 8 * 1024;
const TAR_OVERHEAD_FIXED = 16 * 1024 ** 2;

/**
 * Reads a layer (gzip or plain tar, told apart by magic bytes) into entries in tar order, with
 * paths normalised (`./usr/` → `usr`). Refuses with an IntegrityError naming the entry: absolute
 * paths, `..` segments, hard links whose target is absolute or has `..`, paths and link targets
 * beyond Linux's `PATH_MAX`/`NAME_MAX`, NUL bytes, owners outside 0..2^32-2, unknown entry types,
 * zstd/xz/bzip2 compression, and anything beyond `limits`. Sizes are checked from each header
 * before its content is read and the decompressed stream is counted as it flows, so a gzip bomb is
 * stopped early, not after inflating: by the sizes its headers declare, and by its expansion ratio
 * (`maxExpansionRatio`). Symlink targets are kept as written, absolute ones included: they are
 * resolved within the root when unpacked.
 */
export async function readLayer(blob: Buffer, limits: ReadLayerLimits = {}): Promise<LayerEntry[]> {
  const maxEntries = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const maxFileBytes = limits.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const maxTotalBytes = limits.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
  const maxRatio = limits.maxExpansionRatio ?? DEFAULT_MAX_EXPANSION_RATIO;
  // What the headers read so far account for; the decompressed stream may not run far past it.
  let declared = 0;
  let entries = 0;
  const allowed = (): number => declared + (entries + 1) * TAR_OVERHEAD_PER_ENTRY + TAR_OVERHEAD_FIXED;

  const gzip = sniffCompression(blob) === 'gzip';
  const maxInflated = gzip ? Math.max(EXPANSION_FLOOR_BYTES, maxRatio * blob.length) : Infinity;
  const input = Readable.from([blob], { objectMode: false });
  const source = gzip ? input.pipe(createGunzip()) : input;
  const tar = extract();
  const pump = (async () => {
    let seen = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      seen += chunk.length;
      if (seen > maxInflated) {
        throw new IntegrityError(
          `layer inflates to more than ${maxInflated} bytes, over ${maxRatio} times its ${blob.length} compressed bytes; ` +
            'refusing it as a possible gzip bomb (raise limits.maxExpansionRatio if the layer really is this compressible)',
        );
      }
      if (seen > allowed()) {
        throw new IntegrityError(
          `layer expands to more than ${allowed()} bytes of tar, more than its ${entries} entries account for; refusing it as a possible gzip bomb`,
        );
      }
      if (!tar.write(chunk)) await drainOrClose(tar);
      if (tar.destroying) return;
    }
    tar.end(undefined);
  })();
  pump.catch((err: unknown) => tar.destroy(err as Error));

  const out: LayerEntry[] = [];
  try {
    for await (const stream of tar) {
      const header = stream.header;
      const raw = header.name;
      if (++entries > maxEntries) {
        throw new IntegrityError(`entry "${raw}": layer has more than ${maxEntries} entries`);
      }
      if (!Number.isSafeInteger(header.size) || header.size < 0) {
        throw new IntegrityError(`entry "${raw}": size field ${String(header.size)} is not a byte count`);
      }
      // tar-stream never ends the content stream of a directory that claims a size: refuse it
      // here, or reading it would wait forever.
      if (header.type === 'directory' && header.size > 0) {
        throw new IntegrityError(
          `entry "${raw}": a directory with a size of ${header.size} bytes; only files carry content`,
        );
      }
      if (header.size > maxFileBytes) {
        throw new IntegrityError(
          `entry "${raw}": size ${header.size} bytes exceeds the per-file limit of ${maxFileBytes} bytes`,
        );
      }
      declared += header.size;
      if (declared > maxTotalBytes) {
        throw new IntegrityError(
          `entry "${raw}": contents total more than the limit of ${maxTotalBytes} bytes`,
        );
      }
      const entry = toEntry(header);
      const content = await readAll(stream);
      if (entry === undefined) continue;
      out.push(entry.type === 'file' ? { ...entry, content } : entry);
    }
    await pump;
  } catch (err) {
    source.destroy();
    tar.destroy(err as Error);
    await pump.catch(() => undefined);
    if (err instanceof IntegrityError) throw err;
    throw new IntegrityError(`layer is not a readable tar archive: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return out;
}

// Magic numbers of the compressions kiln does not read, so such a layer gets a clear refusal.
const UNREAD_COMPRESSIONS: readonly [string, Buffer][] = [
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['bzip2', Buffer.from('BZh', 'latin1')],
];

function sniffCompression(blob: Buffer): 'gzip' | 'tar' {
  if (blob.length === 0) throw new IntegrityError('layer is empty (0 bytes), not a tar archive');
  if (blob[0] === 0x1f && blob[1] === 0x8b) return 'gzip';
  for (const [name, magic] of UNREAD_COMPRESSIONS) {
    if (blob.subarray(0, magic.length).equals(magic)) {
      throw new IntegrityError(
        `layer is ${name}-compressed, which kiln does not read; use gzip or plain tar layers`,
      );
    }
  }
  return 'tar';
}

function toEntry(header: Header): LayerEntry | undefined {
  const raw = header.name;
  const type = header.type === 'contiguous-file' ? 'file' : header.type;
  if (!ENTRY_TYPES.has(type as EntryType)) {
    throw new IntegrityError(`entry "${raw}": unsupported entry type "${String(header.type)}"`);
  }
  const norm = normaliseEntryPath(raw);
  if (!norm.ok) throw new IntegrityError(`entry "${raw}": path ${norm.problem}`);
  checkPathLength(raw, norm.path, 'path');
  // The root directory's own entry ("./") carries nothing kiln applies.
  if (norm.path === '') {
    if (type === 'directory') return undefined;
    throw new IntegrityError(`entry "${raw}": a ${type} cannot replace the image root`);
  }
  let linkname: string | undefined;
  if (type === 'link') {
    const target = normaliseEntryPath(header.linkname ?? '');
    if (!target.ok)
      throw new IntegrityError(`entry "${raw}": hard link target "${header.linkname}" ${target.problem}`);
    if (target.path === '') throw new IntegrityError(`entry "${raw}": hard link has no target`);
    checkPathLength(raw, target.path, 'hard link target');
    linkname = target.path;
  } else if (type === 'symlink') {
    if (!header.linkname) throw new IntegrityError(`entry "${raw}": symlink has no target`);
    if (header.linkname.includes('\0'))
      throw new IntegrityError(`entry "${raw}": symlink target contains a NUL byte`);
    checkPathLength(raw, header.linkname, 'symlink target');
    linkname = header.linkname;
  }
  for (const [field, id] of [
    ['uid', header.uid],
    ['gid', header.gid],
  ] as const) {
    if (!Number.isSafeInteger(id) || id < 0 || id > MAX_ID) {
      throw new IntegrityError(`entry "${raw}": ${field} ${String(id)} is out of range (0 to ${MAX_ID})`);
    }
  }
  const mtime = Math.floor(header.mtime.getTime() / 1000);
  const device = type === 'character-device' || type === 'block-device';
  return {
    path: norm.path,
    type: type as EntryType,
    mode: header.mode & 0o7777,
    uid: header.uid,
    gid: header.gid,
    ...(linkname !== undefined ? { linkname } : {}),
    ...(device ? { devmajor: header.devmajor, devminor: header.devminor } : {}),
    ...(Number.isFinite(mtime) ? { mtime } : {}),
  };
}

/** Refuses a path (or link target) that no Linux filesystem could hold. */
function checkPathLength(raw: string, path: string, what: string): void {
  const shown = raw.length > 80 ? `${raw.slice(0, 80)}…` : raw;
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) {
    throw new IntegrityError(`entry "${shown}": ${what} is longer than ${MAX_PATH_BYTES} bytes`);
  }
  if (path.split('/').some((part) => Buffer.byteLength(part) > MAX_NAME_BYTES)) {
    throw new IntegrityError(`entry "${shown}": ${what} has a component longer than ${MAX_NAME_BYTES} bytes`);
  }
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function drainOrClose(stream: ReturnType<typeof extract>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
