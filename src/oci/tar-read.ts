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

/** Limits for {@link readLayer}; a layer beyond any of them is refused while it streams. */
export interface ReadLayerLimits {
  /** @default DEFAULT_MAX_ENTRIES */
  readonly maxEntries?: number;
  /** Largest size of one entry, in bytes. @default DEFAULT_MAX_FILE_BYTES */
  readonly maxFileBytes?: number;
  /** Largest sum of entry sizes, in bytes. @default DEFAULT_MAX_TOTAL_BYTES */
  readonly maxTotalBytes?: number;
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
 * paths, `..` segments, hard links whose target is absolute or has `..`, unknown entry types, and
 * anything beyond `limits`. Sizes are checked from each header before its content is read and the
 * decompressed stream is counted as it flows, so a gzip bomb is stopped early, not after inflating.
 * Symlink targets are kept as written, absolute ones included: they are resolved within the root
 * when unpacked.
 */
export async function readLayer(blob: Buffer, limits: ReadLayerLimits = {}): Promise<LayerEntry[]> {
  const maxEntries = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const maxFileBytes = limits.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const maxTotalBytes = limits.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
  // What the headers read so far account for; the decompressed stream may not run far past it.
  let declared = 0;
  let entries = 0;
  const allowed = (): number => declared + (entries + 1) * TAR_OVERHEAD_PER_ENTRY + TAR_OVERHEAD_FIXED;

  const input = Readable.from([blob], { objectMode: false });
  const source = sniffCompression(blob) === 'gzip' ? input.pipe(createGunzip()) : input;
  const tar = extract();
  const pump = (async () => {
    let seen = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      seen += chunk.length;
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

function sniffCompression(blob: Buffer): 'gzip' | 'tar' {
  if (blob[0] === 0x1f && blob[1] === 0x8b) return 'gzip';
  if (blob.readUInt32BE(0) === 0x28b52ffd) {
    throw new IntegrityError(
      'layer is zstd-compressed, which kiln does not read; use gzip or plain tar layers',
    );
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
    linkname = target.path;
  } else if (type === 'symlink') {
    if (!header.linkname) throw new IntegrityError(`entry "${raw}": symlink has no target`);
    linkname = header.linkname;
  }
  const device = type === 'character-device' || type === 'block-device';
  return {
    path: norm.path,
    type: type as EntryType,
    mode: header.mode & 0o7777,
    uid: header.uid,
    gid: header.gid,
    ...(linkname !== undefined ? { linkname } : {}),
    ...(device ? { devmajor: header.devmajor, devminor: header.devminor } : {}),
    mtime: Math.floor(header.mtime.getTime() / 1000),
  };
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
