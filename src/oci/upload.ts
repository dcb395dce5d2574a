/**
 * Resumable blob uploads by the distribution spec's chunked upload: `POST` opens an upload,
 * each `PATCH` sends one chunk with `Content-Range`, `GET` on the upload URL tells how many bytes
 * the registry holds (`Range: 0-<last>`), and `PUT ?digest=` closes it, the registry checking the
 * digest. After every chunk the upload URL and offset go to an {@link UploadJournal}, so a copy
 * cut in the middle of a blob (a lost connection, a killed process) carries on from the
 * registry's offset on the next try instead of from zero.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConflictError, IntegrityError } from '../errors/index.js';
import { readRange, writeFileAtomic } from './fsutil.js';
import type { HttpResponse } from './http.js';
import { statusError } from './registry-api.js';
import { pushScope, type SendOptions } from './registry.js';
import type { Descriptor, Digest } from './types.js';

/** The chunk size of resumable uploads unless told otherwise: 8 MiB, the most a cut can cost. */
export const DEFAULT_UPLOAD_CHUNK_SIZE = 8 * 1024 ** 2;

/** How many times in a row the registry may refuse a chunk's range (416) before the upload fails. */
const MAX_RANGE_RETRIES = 3;

/** What a resumable upload needs of the registry client. */
export interface UploadClient {
  readonly registry: string;
  baseUrl(): Promise<URL>;
  request(method: string, target: string | URL, options: SendOptions): Promise<HttpResponse>;
  location(res: HttpResponse, from: string): Promise<URL>;
}

/** An upload in progress: where it is and how much the registry had acknowledged. */
export interface UploadRecord {
  readonly location: string;
  readonly offset: number;
  readonly size: number;
  readonly updatedAt: string;
}

/** Where uploads in progress are remembered between tries, keyed by registry, repository and digest. */
export interface UploadJournal {
  get(key: string): Promise<UploadRecord | undefined>;
  set(key: string, record: UploadRecord): Promise<void>;
  delete(key: string): Promise<void>;
}

/** A journal kept in memory: resumes within one process only. */
export function memoryJournal(): UploadJournal {
  const records = new Map<string, UploadRecord>();
  return {
    get: async (key) => records.get(key),
    set: async (key, record) => void records.set(key, record),
    delete: async (key) => void records.delete(key),
  };
}

/**
 * A journal of one small JSON file per upload under `dir` (named by the SHA-256 of the key and
 * written atomically), so the next `kiln replicate` resumes what this one left. A file that does
 * not parse counts as absent: the upload then starts afresh.
 */
export function fileJournal(dir: string): UploadJournal {
  const file = (key: string) => path.join(dir, `${createHash('sha256').update(key).digest('hex')}.json`);
  return {
    async get(key) {
      const text = await readFile(file(key), 'utf8').catch(() => undefined);
      if (text === undefined) return undefined;
      try {
        const r = JSON.parse(text) as Partial<UploadRecord> & { key?: unknown };
        const ok =
          r.key === key &&
          typeof r.location === 'string' &&
          Number.isSafeInteger(r.offset) &&
          Number.isSafeInteger(r.size) &&
          typeof r.updatedAt === 'string';
        return ok ? (r as UploadRecord) : undefined;
      } catch {
        return undefined;
      }
    },
    async set(key, record) {
      await mkdir(dir, { recursive: true });
      await writeFileAtomic(file(key), `${JSON.stringify({ key, ...record })}\n`, 0o600);
    },
    async delete(key) {
      await rm(file(key), { force: true });
    },
  };
}

/** Options of {@link uploadBlobResumable}. */
export interface ResumableUploadOptions {
  /** @default DEFAULT_UPLOAD_CHUNK_SIZE */
  readonly chunkSize?: number;
  /** @default a journal in memory */
  readonly journal?: UploadJournal;
  /** An upload the registry already opened (as when it answered a mount with 202). */
  readonly opened?: URL;
  /** Told after every chunk the registry acknowledged. */
  readonly onProgress?: (offset: number, size: number) => void;
}

/** What {@link uploadBlobResumable} did. */
export interface UploadResult {
  readonly digest: Digest;
  readonly size: number;
  /** Bytes of the blob this call sent. */
  readonly bytesSent: number;
  /** The registry's offset this call started from: 0, or that of an upload it resumed. */
  readonly resumedFrom: number;
  /** Why an upload remembered from an earlier try could not be resumed, when it could not. */
  readonly restarted?: string;
}

/**
 * Uploads the file `file` as blob `blob` to `repository`: first checks the file hashes to the
 * digest (IntegrityError otherwise, before a byte is sent), then resumes the upload `journal`
 * remembers when the registry still has it (else opens one), sends the rest in chunks, closes it
 * with the digest (the registry checks it) and finally asks the registry for the blob, whose size
 * and digest must match.
 */
export async function uploadBlobResumable(
  client: UploadClient,
  repository: string,
  file: string,
  blob: Descriptor,
  options: ResumableUploadOptions = {},
): Promise<UploadResult> {
  const journal = options.journal ?? memoryJournal();
  const chunkSize = options.chunkSize ?? DEFAULT_UPLOAD_CHUNK_SIZE;
  const key = `${client.registry}/${repository}@${blob.digest}`;
  const scope = pushScope(repository);
  await checkFile(file, blob);

  let restarted: string | undefined;
  let upload = await resumeUpload(client, journal, key, blob.size, scope).catch((err: unknown) => {
    if (err instanceof Restart) {
      restarted = err.message;
      return undefined;
    }
    throw err;
  });
  if (upload === undefined) {
    let location = options.opened;
    if (location === undefined) {
      const uploads = `/v2/${repository}/blobs/uploads/`;
      const res = await client.request('POST', uploads, { scope });
      if (res.status !== 202) throw statusError(client.registry, 'POST', uploads, res);
      location = await client.location(res, uploads);
    }
    upload = { location, offset: 0 };
  }
  const remember = (u: { location: URL; offset: number }) =>
    journal.set(key, {
      location: u.location.href,
      offset: u.offset,
      size: blob.size,
      updatedAt: new Date().toISOString(),
    });
  await remember(upload);

  const resumedFrom = upload.offset;
  let bytesSent = 0;
  for (let refused = 0; upload.offset < blob.size;) {
    const start = upload.offset;
    const end = Math.min(start + chunkSize, blob.size);
    const body = await readRange(file, start, end - start);
    const res = await client.request('PATCH', upload.location, {
      scope,
      body,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end - 1}` },
    });
    bytesSent += body.length;
    if (res.status === 416 && ++refused <= MAX_RANGE_RETRIES) {
      // The registry holds another offset than we thought: ask it, and go on from there.
      const status = await uploadStatus(client, upload.location, blob.size, scope);
      if (typeof status === 'string') throw new ConflictError(`${client.registry}/${repository}: ${status}`);
      upload = status;
      await remember(upload);
      continue;
    }
    if (res.status !== 202) throw statusError(client.registry, 'PATCH', upload.location.pathname, res);
    refused = 0;
    const held = rangeEnd(res.headers.range);
    upload = {
      location: await client.location(res, upload.location.href),
      offset: held === undefined ? end : held,
    };
    await remember(upload);
    options.onProgress?.(upload.offset, blob.size);
  }
  const close = new URL(upload.location);
  close.searchParams.set('digest', blob.digest);
  const res = await client.request('PUT', close, {
    scope,
    headers: { 'content-type': 'application/octet-stream' },
  });
  // Whatever the answer, this upload is spent: a retry opens a new one.
  await journal.delete(key);
  if (res.status !== 201) throw statusError(client.registry, 'PUT', close.pathname, res);
  const said = res.headers['docker-content-digest'];
  if (said !== undefined && said !== blob.digest) {
    throw new IntegrityError(`${client.registry}/${repository}: registry stored ${blob.digest} as ${said}`);
  }
  await checkStored(client, repository, blob);
  return {
    digest: blob.digest,
    size: blob.size,
    bytesSent,
    resumedFrom,
    ...(restarted !== undefined ? { restarted } : {}),
  };
}

/** Thrown inside this module when a remembered upload cannot be resumed; its message says why. */
class Restart extends Error {}

/** The remembered upload of `key` as the registry has it now, or undefined when none is remembered. */
async function resumeUpload(
  client: UploadClient,
  journal: UploadJournal,
  key: string,
  size: number,
  scope: string,
): Promise<{ location: URL; offset: number } | undefined> {
  const record = await journal.get(key);
  if (record === undefined) return undefined;
  const forget = async (why: string): Promise<never> => {
    await journal.delete(key);
    throw new Restart(why);
  };
  let location: URL;
  try {
    location = new URL(record.location);
  } catch {
    return forget('the remembered upload URL is not a URL');
  }
  // Blob bytes go only to the registry they were meant for, whatever the journal file says.
  if (location.origin !== (await client.baseUrl()).origin || record.size !== size) {
    return forget('the remembered upload is for another registry or another size');
  }
  const status = await uploadStatus(client, location, size, scope);
  return typeof status === 'string' ? forget(status) : status;
}

/**
 * `GET` on an upload URL: the registry's offset (from its `Range`) and the URL to go on with; or,
 * when the registry refuses (4xx: it no longer has the upload, or it is invalid) or holds more than
 * the blob, why the upload cannot go on. A 5xx or a lost connection is thrown: try again later.
 */
async function uploadStatus(
  client: UploadClient,
  location: URL,
  size: number,
  scope: string,
): Promise<{ location: URL; offset: number } | string> {
  const res = await client.request('GET', location, { scope });
  if (res.status >= 400 && res.status < 500) {
    return `the registry no longer has the upload (${statusError(client.registry, 'GET', location.pathname, res).message})`;
  }
  if (res.status !== 204 && res.status !== 200) {
    throw statusError(client.registry, 'GET', location.pathname, res);
  }
  const offset = rangeEnd(res.headers.range) ?? 0;
  if (offset > size) return `the registry holds ${offset} bytes of an upload of ${size}`;
  const next = res.headers.location ? await client.location(res, location.href) : location;
  return { location: next, offset };
}

/**
 * The offset after a `Range: 0-<last>` answer. `0-0` is read as nothing held: distribution sends
 * it for an empty upload too, and chunks here are never one byte long.
 */
export function rangeEnd(range: string | undefined): number | undefined {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(range?.trim() ?? '');
  if (m === null) return undefined;
  const last = Number(m[1]);
  return last === 0 ? 0 : last + 1;
}

/** The file must hash to the blob's digest and have its size. */
async function checkFile(file: string, blob: Descriptor): Promise<void> {
  const size = (await stat(file)).size;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  const digest = `sha256:${hash.digest('hex')}`;
  if (digest !== blob.digest || size !== blob.size) {
    throw new IntegrityError(
      `${file} is ${size} bytes hashing to ${digest}, but should be blob ${blob.digest} of ${blob.size} bytes: not sending it`,
    );
  }
}

/** After the upload: the registry must serve the blob with its size and digest. */
async function checkStored(client: UploadClient, repository: string, blob: Descriptor): Promise<void> {
  const where = `/v2/${repository}/blobs/${blob.digest}`;
  const res = await client.request('HEAD', where, { scope: pushScope(repository) });
  if (res.status !== 200) throw statusError(client.registry, 'HEAD', where, res);
  const length = res.headers['content-length'];
  const digest = res.headers['docker-content-digest'];
  if (
    (length !== undefined && Number(length) !== blob.size) ||
    (digest !== undefined && digest !== blob.digest)
  ) {
    throw new IntegrityError(
      `${client.registry}/${repository}: after the upload the registry serves ${blob.digest} as ${digest ?? '?'} of ${length ?? '?'} bytes, not ${blob.size}`,
    );
  }
}
