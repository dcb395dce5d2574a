/**
 * The small I/O pieces archive and .deb access share: HTTP GETs with errors that name the URL,
 * SHA-256, and atomic cache writes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { NotFoundError, UnavailableError } from '../../errors/index.js';

/** The `fetch` signature kiln uses; tests pass their own. */
export type FetchLike = typeof fetch;

/** Hex SHA-256 of some bytes. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What to tell the user when a GET fails: when the file is missing, and when the server is not reachable. */
export interface FetchFixes {
  readonly notFound: string;
  /** @default DEFAULT_UNAVAILABLE_FIX */
  readonly unavailable?: string;
}

/** The advice for a server that cannot be reached or fails. */
export const DEFAULT_UNAVAILABLE_FIX = 'check the network and the archive URL, and try again';

/**
 * GETs `url` into a Buffer. A 404 or 410 is a NotFoundError ending with `fixes.notFound`; a
 * network failure or another status is an UnavailableError ending with `fixes.unavailable`. Both
 * name the URL.
 */
export async function fetchBytes(url: string, fetchImpl: FetchLike, fixes: FetchFixes): Promise<Buffer> {
  const unavailable = fixes.unavailable ?? DEFAULT_UNAVAILABLE_FIX;
  let res: Response;
  try {
    res = await fetchImpl(url);
  } catch (err) {
    const cause =
      err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
    throw new UnavailableError(`cannot fetch ${url}: ${cause}: ${unavailable}`, { cause: err });
  }
  if (!res.ok) {
    await res.body?.cancel();
    const status = `${res.status} ${res.statusText}`.trim();
    if (res.status === 404 || res.status === 410)
      throw new NotFoundError(`${url}: ${status}: ${fixes.notFound}`);
    throw new UnavailableError(`${url}: ${status}: ${unavailable}`);
  }
  return Buffer.from(await res.arrayBuffer());
}

/**
 * Writes `data` to `file` through a temporary file in the same directory and a rename, so readers
 * see the old content or the new, never a part.
 */
export async function writeAtomic(file: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
