/**
 * Blob upload sessions for the registry the control plane serves over the image store: each
 * session is one file under the store's `uploads/` directory, appended to in order, and on
 * completion hashed as a stream and renamed into `blobs/sha256/` only when it hashes to the digest
 * the client named. A mismatch stores nothing. Sessions left open expire.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ConflictError, IntegrityError, NotFoundError, ValidationError } from '../errors/index.js';
import { syncDir } from './fsutil.js';
import type { OciStore } from './layout.js';
import { checkDigest } from './refs.js';
import type { Digest } from './types.js';

/** How long an upload session may stay without a write before {@link BlobUploads.sweep} removes it: 1 hour. */
export const DEFAULT_UPLOAD_TTL_MS = 60 * 60_000;

/** Largest blob accepted through an upload: 16 GiB. */
export const DEFAULT_MAX_BLOB_BYTES = 16 * 1024 ** 3;

/** Where the sessions live, inside the store (an OCI layout may hold other files). */
export const UPLOADS_DIR = 'uploads';

const SESSION_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Options for {@link BlobUploads}. */
export interface BlobUploadsOptions {
  /** @default DEFAULT_UPLOAD_TTL_MS */
  readonly ttlMs?: number;
  /** @default DEFAULT_MAX_BLOB_BYTES */
  readonly maxBlobBytes?: number;
  /** The wall clock, in milliseconds. @default Date.now */
  readonly clock?: () => number;
}

/** A blob an upload put into the store. */
export interface StoredBlob {
  readonly digest: Digest;
  readonly size: number;
  /** False when the store already held an intact copy. */
  readonly created: boolean;
}

/**
 * The upload sessions of one store.
 *
 * @example
 * const uploads = new BlobUploads(store);
 * const id = await uploads.start();
 * await uploads.append(id, request, 0);
 * await uploads.finish(id, 'sha256:…'); // IntegrityError, and nothing stored, when it hashes otherwise
 */
export class BlobUploads {
  readonly dir: string;
  readonly maxBlobBytes: number;
  private readonly ttlMs: number;
  private readonly clock: () => number;
  /** Sessions being written or finished: one request at a time per session. */
  private readonly busy = new Set<string>();

  constructor(
    private readonly store: OciStore,
    options: BlobUploadsOptions = {},
  ) {
    this.dir = join(store.dir, UPLOADS_DIR);
    this.ttlMs = options.ttlMs ?? DEFAULT_UPLOAD_TTL_MS;
    this.maxBlobBytes = options.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
    this.clock = options.clock ?? Date.now;
  }

  /** Opens a session and returns its id (a random UUID, the only file name a session may have). */
  async start(): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const id = randomUUID();
    const out = createWriteStream(this.file(id), { flags: 'wx', mode: 0o600 });
    await new Promise<void>((resolve, reject) => out.once('error', reject).end(resolve));
    return id;
  }

  /** Bytes received so far; NotFoundError for an unknown, finished or expired session. */
  async size(id: string): Promise<number> {
    const st = await stat(this.file(id)).catch(() => undefined);
    if (st === undefined || !st.isFile()) throw unknownSession(id);
    return st.size;
  }

  /**
   * Appends `body` at offset `start` (the bytes received so far; ConflictError otherwise), at most
   * `length` bytes when given (a longer body is a ValidationError, and the session is dropped),
   * and returns the new size.
   */
  async append(id: string, body: AsyncIterable<Buffer>, start?: number, length?: number): Promise<number> {
    return this.exclusive(id, async () => {
      const size = await this.size(id);
      if (start !== undefined && start !== size) {
        throw new ConflictError(`upload ${id}: a chunk must start at byte ${size}, not ${start}`);
      }
      const limit = Math.min(this.maxBlobBytes - size, length ?? Infinity);
      let written = 0;
      const counted = async function* (): AsyncGenerator<Buffer> {
        for await (const chunk of body) {
          written += chunk.length;
          if (written > limit) {
            throw new ValidationError(undefined, [
              {
                path: 'body',
                message:
                  length !== undefined && written > length
                    ? `the chunk is longer than its Content-Range or Content-Length (${length} bytes)`
                    : `the blob would be over ${limitText(size, limit)}`,
                fix: 'send a body exactly as long as the range it names',
              },
            ]);
          }
          yield chunk;
        }
      };
      try {
        await pipeline(counted(), createWriteStream(this.file(id), { flags: 'a' }));
      } catch (err) {
        // A session whose bytes are in doubt cannot go on.
        await rm(this.file(id), { force: true });
        throw err;
      }
      if (length !== undefined && written !== length) {
        await rm(this.file(id), { force: true });
        throw new ValidationError(undefined, [
          {
            path: 'body',
            message: `the chunk has ${written} bytes, but its Content-Range or Content-Length says ${length}`,
            fix: 'send a body exactly as long as the range it names',
          },
        ]);
      }
      return size + written;
    });
  }

  /**
   * Closes the session: hashes what it received and, when that is `digest`, renames it into the
   * store (read-only, like every blob). A mismatch is an IntegrityError and stores nothing; the
   * session is gone either way.
   */
  async finish(id: string, digest: string): Promise<StoredBlob> {
    const expected = checkDigest(digest);
    return this.exclusive(id, async () => {
      const file = this.file(id);
      const size = await this.size(id);
      try {
        const actual = await hashFile(file);
        if (actual !== expected) {
          throw new IntegrityError(
            `upload ${id}: the ${size} bytes received hash to ${actual}, not ${expected}; nothing was stored`,
          );
        }
        if (await this.intact(expected, size)) return { digest: expected, size, created: false };
        await chmod(file, 0o444);
        await rename(file, this.store.blobPath(expected));
        await syncDir(join(this.store.dir, 'blobs', 'sha256'));
        return { digest: expected, size, created: true };
      } finally {
        await rm(file, { force: true });
      }
    });
  }

  /** Drops a session; false when there was none. */
  async cancel(id: string): Promise<boolean> {
    const file = this.file(id);
    const st = await stat(file).catch(() => undefined);
    if (st === undefined) return false;
    await rm(file, { force: true });
    return true;
  }

  /** Removes sessions not written to for longer than the TTL (and stray files); returns how many. */
  async sweep(): Promise<number> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    let removed = 0;
    for (const name of names) {
      if (this.busy.has(name)) continue;
      const path = join(this.dir, name);
      const st = await stat(path).catch(() => undefined);
      if (st === undefined) continue;
      if (!SESSION_RE.test(name) || this.clock() - st.mtimeMs > this.ttlMs) {
        await rm(path, { recursive: true, force: true });
        removed++;
      }
    }
    return removed;
  }

  /** True when the store holds the blob with this size (its content is checked where it is read). */
  private async intact(digest: Digest, size: number): Promise<boolean> {
    const st = await stat(this.store.blobPath(digest)).catch(() => undefined);
    if (st === undefined || st.size !== size) return false;
    return (await hashFile(this.store.blobPath(digest))) === digest;
  }

  private file(id: string): string {
    // The id comes from a URL: only the UUIDs `start` makes name a file, so no path escapes.
    if (!SESSION_RE.test(id)) throw unknownSession(id);
    return join(this.dir, id);
  }

  private async exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(id)) throw new ConflictError(`upload ${id} is already receiving a request`);
    this.busy.add(id);
    try {
      return await fn();
    } finally {
      this.busy.delete(id);
    }
  }
}

function unknownSession(id: string): NotFoundError {
  const shown = id.length > 80 ? `${id.slice(0, 80)}…` : id;
  return new NotFoundError(
    `no upload session ${JSON.stringify(shown)}: it was finished, cancelled or expired; start another with POST /v2/<name>/blobs/uploads/`,
  );
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

function limitText(size: number, limit: number): string {
  return `${size + limit} bytes, the largest blob this registry takes`;
}
