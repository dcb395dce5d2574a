/**
 * Checking stored blobs against their digests without reading them into memory: each file is
 * hashed as a stream. A {@link BlobChecker} remembers the files it found intact, so deploying the
 * same big image again does not hash every layer again, in a way no write to a file can fool.
 */
import { createHash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { IntegrityError, NotFoundError, wrap } from '../errors/index.js';
import type { OciStore } from './layout.js';
import type { Descriptor, Digest } from './types.js';

/**
 * A file whose status changed less than this before its check began is hashed again next time
 * rather than remembered: file times tick in steps of a few milliseconds, so a write just after
 * the check could leave them as they were (git's "racily clean" entries).
 */
export const DEFAULT_RACY_MARGIN_MS = 2000;

/** Options for {@link BlobChecker}. */
export interface BlobCheckerOptions {
  /** Remember intact files by identity and skip hashing them again. @default true */
  readonly remember?: boolean;
  /** See {@link DEFAULT_RACY_MARGIN_MS}. @default DEFAULT_RACY_MARGIN_MS */
  readonly racyMarginMs?: number;
  /** The wall clock, in milliseconds. @default Date.now */
  readonly clock?: () => number;
}

/** What a {@link BlobChecker.check} did. */
export interface BlobCheck {
  /** False when the file was known intact and not read. */
  readonly hashed: boolean;
  readonly bytes: number;
}

/**
 * Checks blobs of an {@link OciStore} against their descriptors: present, of the stated size, and
 * hashing to the digest, else a NotFoundError or an IntegrityError naming the blob and its file.
 *
 * A file found intact is remembered by its identity: device, inode, size, and its modification
 * and status-change times in nanoseconds. Any write to the file, and any `utimes` that would set
 * its modification time back, moves the status-change time, which no program can set; a file
 * replaced by another has another inode. So a remembered file is hashed again after any change
 * made through the file system. What it cannot see is damage beneath the file system (a failing
 * disk) or a clock set back; the blob is hashed in full again whenever it is read for use
 * (`OciStore.getBlob`, as unpacking an image does). The memory lives as long as the checker.
 *
 * @example
 * const checker = new BlobChecker();
 * for (const layer of manifest.layers) await checker.check(store, layer, `layer of ${ref}`);
 */
export class BlobChecker {
  readonly #remember: boolean;
  readonly #racyMarginNs: bigint;
  readonly #clock: () => number;
  /** Absolute file path → the identity it had when found intact. */
  readonly #intact = new Map<string, string>();

  constructor(options: BlobCheckerOptions = {}) {
    this.#remember = options.remember ?? true;
    this.#racyMarginNs = BigInt(Math.round((options.racyMarginMs ?? DEFAULT_RACY_MARGIN_MS) * 1e6));
    this.#clock = options.clock ?? Date.now;
  }

  /** Checks one blob; `what` names it in errors (`layer 2 of web`). */
  async check(store: OciStore, blob: Descriptor, what: string): Promise<BlobCheck> {
    const file = resolve(store.blobPath(blob.digest));
    const where = `${what}: blob ${blob.digest} (${file})`;
    if (this.#remember) {
      const st = await stat(file, { bigint: true }).catch(() => undefined);
      if (st !== undefined && this.#intact.get(file) === identity(st) && st.size === BigInt(blob.size)) {
        return { hashed: false, bytes: blob.size };
      }
    }
    const startedNs = BigInt(this.#clock()) * 1_000_000n;
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(
          `${what}: blob ${blob.digest} is not in the store at ${store.dir}; bake or pull the image again`,
        );
      }
      throw wrap(`reading ${where}`, err);
    }
    try {
      const before = await fh.stat({ bigint: true });
      if (before.size !== BigInt(blob.size)) {
        throw new IntegrityError(
          `${where} is ${before.size} bytes, the manifest says ${blob.size}: the store is damaged or was tampered with`,
        );
      }
      const actual = await hashHandle(fh);
      if (actual !== blob.digest) {
        throw new IntegrityError(
          `${where} does not match its digest (its content hashes to ${actual}): the store is damaged or was tampered with`,
        );
      }
      const after = await fh.stat({ bigint: true });
      // Remembered only when nothing changed while it was read and the change before is not racy.
      if (
        this.#remember &&
        identity(after) === identity(before) &&
        after.ctimeNs < startedNs - this.#racyMarginNs
      ) {
        this.#intact.set(file, identity(after));
      } else {
        this.#intact.delete(file);
      }
      return { hashed: true, bytes: blob.size };
    } catch (err) {
      this.#intact.delete(file);
      throw err;
    } finally {
      await fh.close();
    }
  }
}

/**
 * True when the store holds `blob` intact (present, of its size, hashing to its digest); false
 * when it is missing or damaged, so that a pull fetches it again (and `putBlob` repairs it).
 */
export async function hasIntactBlob(store: OciStore, blob: Descriptor): Promise<boolean> {
  try {
    await new BlobChecker({ remember: false }).check(store, blob, 'blob');
    return true;
  } catch (err) {
    if (err instanceof IntegrityError || err instanceof NotFoundError) return false;
    throw err;
  }
}

async function hashHandle(fh: FileHandle): Promise<Digest> {
  const hash = createHash('sha256');
  // autoClose off: the caller closes the handle, after reading its status once more.
  for await (const chunk of fh.createReadStream({ start: 0, autoClose: false, highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
  }
  return `sha256:${hash.digest('hex')}`;
}

function identity(st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}
