/**
 * Opening a Debian archive: each suite's InRelease fetched and verified, its `Packages` indexes
 * fetched (or taken from the cache), checked against the signed checksums, and read into one
 * {@link PackageIndex}.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import { IntegrityError, KilnError, UnavailableError } from '../../errors/index.js';
import { parseParagraphs } from './control.js';
import {
  buildPackageIndex,
  recordsFromParagraphs,
  type PackageIndex,
  type PackageRecord,
} from './package-index.js';
import { parseRelease, verifyInRelease, type Release, type ReleaseFile } from './release.js';
import type { ArchiveSpec, ArchiveSuite } from './sources.js';
import { fetchBytes, sha256Hex, writeAtomic, type FetchLike } from './transport.js';

const gunzipAsync = promisify(gunzip);

/** Options of {@link openArchive}. */
export interface OpenArchiveOptions {
  /** Where verified InRelease files and indexes are kept (`.kiln/cache`). */
  readonly cacheDir: string;
  /** @default globalThis.fetch */
  readonly fetch?: FetchLike;
  /** The time a Release's `Valid-Until` is checked against. @default new Date() */
  readonly now?: Date;
  /** Use only cached files, fetching nothing. @default false */
  readonly offline?: boolean;
  /** Accept Releases past their `Valid-Until`, as snapshot archives need. @default false */
  readonly allowExpired?: boolean;
}

// Preferred first: the security suite only serves xz.
const INDEX_COMPRESSIONS = ['.xz', '.gz', ''] as const;

/**
 * Opens every suite of `spec`: fetches `<uri>/dists/<suite>/InRelease` (always, unless offline),
 * verifies it with gpgv against the suite's keyring, refuses an expired one, then reads each
 * component's `binary-<arch>/Packages` index (xz, else gz), checking its size and SHA-256 against
 * the signed Release before decompressing. Indexes are cached by SHA-256, so a second open with an
 * unchanged InRelease downloads nothing else.
 *
 * @throws IntegrityError when a signature, expiry or checksum check fails.
 * @throws UnavailableError / NotFoundError when a file cannot be fetched, or (offline) is not cached.
 * @example
 * const index = await openArchive(archiveSpec({ suite: 'bookworm', sources: await readAptSources(), arch: 'amd64' }), { cacheDir: '.kiln/cache' });
 * index.newest('bash')?.version;
 */
export async function openArchive(spec: ArchiveSpec, options: OpenArchiveOptions): Promise<PackageIndex> {
  // Settle every suite before reporting, so no fetch or cache write outlives the call.
  const settled = await Promise.allSettled(spec.suites.map((suite) => readSuite(suite, spec.arch, options)));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return buildPackageIndex(
    settled.flatMap((s) => (s.status === 'fulfilled' ? s.value : [])),
    spec.suites.map((s) => s.name),
    spec.arch,
  );
}

async function readSuite(
  suite: ArchiveSuite,
  arch: string,
  options: OpenArchiveOptions,
): Promise<PackageRecord[]> {
  const base = `${suite.uri}/dists/${suite.name}`;
  const url = `${base}/InRelease`;
  const release = await loadRelease(suite, url, options);
  const records: PackageRecord[] = [];
  for (const component of suite.components) {
    const stem = `${component}/binary-${arch}/Packages`;
    const ext = INDEX_COMPRESSIONS.find((e) => release.files.has(stem + e));
    if (ext === undefined) {
      const offered = [...release.files.keys()]
        .filter((p) => /\/binary-[^/]+\/Packages$/.test(p))
        .map((p) => p.replace(/\/Packages$/, ''));
      throw new UnavailableError(
        `${url} lists no ${stem} index (it has: ${offered.join(', ') || 'none'}): ` +
          'check the components and architecture in the config',
      );
    }
    const indexUrl = `${base}/${stem}${ext}`;
    const compressed = await loadIndex(indexUrl, release.files.get(stem + ext) as ReleaseFile, options);
    const text = await decompress(compressed, ext, indexUrl);
    records.push(
      ...recordsFromParagraphs(parseParagraphs(text, indexUrl), {
        suite: suite.name,
        uri: suite.uri,
        url: indexUrl,
      }),
    );
  }
  return records;
}

async function loadRelease(suite: ArchiveSuite, url: string, options: OpenArchiveOptions): Promise<Release> {
  const cached = join(
    options.cacheDir,
    'inrelease',
    `${suite.name}-${sha256Hex(Buffer.from(url)).slice(0, 16)}`,
  );
  let signed: Buffer;
  if (options.offline) {
    try {
      signed = await readFile(cached);
    } catch {
      throw new UnavailableError(
        `offline: ${url} has never been fetched: run once without offline to cache it`,
      );
    }
  } else {
    signed = await fetchBytes(url, options.fetch ?? fetch, {
      notFound: `check the archive URL and that it serves suite ${suite.name} (set mirror.url, or fix apt's sources)`,
      unavailable: 'check the network and the archive URL, or pass offline to use the cached indexes',
    });
  }
  const text = await verifyInRelease(signed, suite.keyring, url);
  const release = parseRelease(text, {
    suite: suite.name,
    url,
    now: options.now ?? new Date(),
    allowExpired: options.allowExpired ?? false,
  });
  if (!options.offline) await writeAtomic(cached, signed);
  return release;
}

async function loadIndex(url: string, expected: ReleaseFile, options: OpenArchiveOptions): Promise<Buffer> {
  const cached = join(options.cacheDir, 'indexes', expected.sha256);
  const hit = await readFile(cached).catch(() => undefined);
  if (hit && hit.length === expected.size && sha256Hex(hit) === expected.sha256) return hit;
  // A cached file that fails its check is stale or damaged; fetch it afresh.
  if (hit) await rm(cached, { force: true });
  if (options.offline) {
    throw new UnavailableError(`offline: ${url} is not in the cache: run once without offline to fetch it`);
  }
  const data = await fetchBytes(url, options.fetch ?? fetch, {
    notFound: 'the mirror may be syncing (try again later) or lack this component and architecture',
  });
  const actual = sha256Hex(data);
  if (data.length !== expected.size || actual !== expected.sha256) {
    throw new IntegrityError(
      `${url}: expected ${expected.size} bytes with sha256 ${expected.sha256} as the signed Release lists, ` +
        `got ${data.length} bytes with sha256 ${actual}: the mirror may be syncing (try again later) or tampered with`,
    );
  }
  await writeAtomic(cached, data);
  return data;
}

async function decompress(data: Buffer, ext: string, url: string): Promise<string> {
  try {
    if (ext === '.xz') return (await xz.decompress(data)).toString('utf8');
    if (ext === '.gz') return (await gunzipAsync(data)).toString('utf8');
    return data.toString('utf8');
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new IntegrityError(`${url}: cannot decompress: ${(err as Error).message}`, { cause: err });
  }
}
