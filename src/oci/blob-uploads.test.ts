import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, IntegrityError, NotFoundError, ValidationError } from '../errors/index.js';
import { BlobUploads, UPLOADS_DIR } from './blob-uploads.js';
import { sha256Digest } from './digest.js';
import { OciStore } from './layout.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function open(options: ConstructorParameters<typeof BlobUploads>[1] = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-uploads-'));
  dirs.push(dir);
  const store = await OciStore.open(join(dir, 'store'));
  return { dir, store, uploads: new BlobUploads(store, options) };
}

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

describe('BlobUploads', () => {
  it('appends in order and renames a blob that hashes right into the store, read-only', async () => {
    const { store, uploads } = await open();
    const id = await uploads.start();
    expect(await uploads.append(id, chunks('hello, '), 0)).toBe(7);
    await expect(uploads.append(id, chunks('x'), 3)).rejects.toThrow(ConflictError);
    expect(await uploads.append(id, chunks('world'), 7, 5)).toBe(12);
    const digest = sha256Digest('hello, world');
    expect(await uploads.finish(id, digest)).toEqual({ digest, size: 12, created: true });
    expect((await store.getBlob(digest)).toString()).toBe('hello, world');
    expect((await stat(store.blobPath(digest))).mode & 0o777).toBe(0o444);
    await expect(uploads.size(id)).rejects.toThrow(NotFoundError);
  });

  it('stores nothing for a digest mismatch, and drops a chunk longer than it said', async () => {
    const { store, uploads } = await open();
    const id = await uploads.start();
    await uploads.append(id, chunks('bytes'));
    await expect(uploads.finish(id, sha256Digest('other'))).rejects.toThrow(IntegrityError);
    expect(await store.hasBlob(sha256Digest('bytes'))).toBe(false);
    expect(await readdir(uploads.dir)).toEqual([]);
    const long = await uploads.start();
    await expect(uploads.append(long, chunks('abc', 'def'), 0, 4)).rejects.toThrow(ValidationError);
    await expect(uploads.size(long)).rejects.toThrow(NotFoundError);
  });

  it('refuses a blob over its limit', async () => {
    const { uploads } = await open({ maxBlobBytes: 8 });
    const id = await uploads.start();
    await expect(uploads.append(id, chunks('12345', '6789'))).rejects.toThrow(/over 8 bytes/);
  });

  it('names only the sessions it made: an id is a UUID or unknown', async () => {
    const { dir, uploads } = await open();
    await writeFile(join(dir, 'secret'), 'x');
    for (const id of [
      '../../secret',
      '..',
      '',
      'a/b',
      `${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}/..`,
    ]) {
      await expect(uploads.size(id), id).rejects.toThrow(NotFoundError);
      await expect(uploads.append(id, chunks('x')), id).rejects.toThrow(NotFoundError);
    }
    expect(await uploads.cancel('../../secret').catch((e: unknown) => e)).toBeInstanceOf(NotFoundError);
    expect(await readdir(dir)).toEqual(['secret', 'store']);
  });

  it('sweeps sessions idle past the TTL and stray files, keeping fresh ones', async () => {
    const now = Date.now();
    const { store, uploads } = await open({ ttlMs: 60_000, clock: () => now });
    const old = await uploads.start();
    const fresh = await uploads.start();
    const past = new Date(now - 120_000);
    await utimes(join(store.dir, UPLOADS_DIR, old), past, past);
    await writeFile(join(store.dir, UPLOADS_DIR, 'stray'), 'x');
    expect(await uploads.sweep()).toBe(2);
    expect(await readdir(uploads.dir)).toEqual([fresh]);
  });
});
