/**
 * The registry's push handlers: upload sessions (monolithic `POST ?digest=`, `POST` + `PUT`,
 * chunked `PATCH` with `Content-Range`), status, cancel, cross-repository mounts (the store is one
 * content-addressed store, so a blob it holds mounts into any repository) and manifests. A blob
 * reaches the store only once it hashes to the digest the client named; a manifest only once it
 * is an OCI image manifest whose config and layers the store holds.
 */
import { stat } from 'node:fs/promises';
import type http from 'node:http';
import { ConflictError, IntegrityError, ValidationError } from '../errors/index.js';
import { assertImageManifest, isDigest, MediaType, sha256Digest, type Digest } from '../oci/index.js';
import { HttpError, readBody } from './http.js';
import { RegistryError, type RegistryContext, type RegistryReply } from './registry-http.js';
import { checkReference, checkRepository, clip, storeName } from './registry-names.js';

/** Largest manifest taken: 4 MiB, what the distribution spec asks registries to accept at least. */
export const MAX_MANIFEST_BYTES = 4 << 20;

const RANGE_RE = /^(?:bytes[= ])?(\d{1,20})-(\d{1,20})$/;

const uploadUrl = (name: string, id: string) => `/v2/${name}/blobs/uploads/${id}`;
const blobUrl = (name: string, digest: string) => `/v2/${name}/blobs/${digest}`;
/** `Range: 0-<last byte>`; `0-0` for an empty session too, as distribution answers. */
const held = (size: number) => `0-${Math.max(0, size - 1)}`;

function digestQuery(value: string | null, what: string): Digest {
  if (value === null || !isDigest(value)) {
    throw new RegistryError(
      400,
      'DIGEST_INVALID',
      `${what} needs ?digest=sha256:<64 lowercase hex digits>, got ${value === null ? 'none' : JSON.stringify(clip(value))}`,
    );
  }
  return value;
}

/** The body's declared length, or undefined when it is sent chunked. */
function declaredLength(req: http.IncomingMessage): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RegistryError(
      400,
      'SIZE_INVALID',
      `Content-Length ${JSON.stringify(clip(raw))} is not a byte count`,
    );
  }
  return n;
}

function hasBody(req: http.IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (declaredLength(req) ?? 0) > 0;
}

/**
 * Appends the request's body to session `id`: at the offset its `Content-Range` names (416 with
 * the session's `Range` when that is not where the session ends), else at the end.
 */
async function appendBody(ctx: RegistryContext, id: string): Promise<number> {
  const { req } = ctx;
  const length = declaredLength(req);
  const rangeHeader = req.headers['content-range'];
  let start: number | undefined;
  let expected = length;
  if (rangeHeader !== undefined) {
    const m = RANGE_RE.exec(rangeHeader.trim());
    const [first, last] = m === null ? [NaN, NaN] : [Number(m[1]), Number(m[2])];
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || last < first) {
      throw new RegistryError(
        400,
        'BLOB_UPLOAD_INVALID',
        `Content-Range ${JSON.stringify(clip(rangeHeader))} is not <first byte>-<last byte> of the blob`,
      );
    }
    if (last >= ctx.uploads.maxBlobBytes) {
      throw new RegistryError(
        416,
        'BLOB_UPLOAD_INVALID',
        `Content-Range ${clip(rangeHeader)} goes past ${ctx.uploads.maxBlobBytes} bytes, the largest blob this registry takes`,
        undefined,
        await sessionHeaders(ctx, id),
      );
    }
    if (length !== undefined && length !== last - first + 1) {
      throw new RegistryError(
        400,
        'SIZE_INVALID',
        `Content-Range ${clip(rangeHeader)} is ${last - first + 1} bytes, but Content-Length says ${length}`,
      );
    }
    start = first;
    expected = last - first + 1;
  }
  try {
    return await ctx.uploads.append(id, req, start, expected);
  } catch (err) {
    if (err instanceof ConflictError) {
      throw new RegistryError(
        416,
        'BLOB_UPLOAD_INVALID',
        err.message,
        undefined,
        await sessionHeaders(ctx, id),
      );
    }
    if (err instanceof ValidationError)
      throw new RegistryError(400, 'SIZE_INVALID', err.message, { issues: err.issues });
    throw err;
  }
}

async function sessionHeaders(ctx: RegistryContext, id: string): Promise<Record<string, string>> {
  const size = await ctx.uploads.size(id);
  return {
    location: uploadUrl(ctx.params.name!, id),
    range: held(size),
    'docker-upload-uuid': id,
  };
}

/** Closes session `id` as blob `digest`: 201, or DIGEST_INVALID with nothing stored. */
async function finish(ctx: RegistryContext, id: string, digest: Digest): Promise<RegistryReply> {
  let stored;
  try {
    stored = await ctx.uploads.finish(id, digest);
  } catch (err) {
    if (err instanceof IntegrityError) throw new RegistryError(400, 'DIGEST_INVALID', err.message);
    throw err;
  }
  return {
    status: 201,
    headers: { location: blobUrl(ctx.params.name!, digest), 'docker-content-digest': digest },
    changed: `${stored.created ? 'stored' : 'already had'} blob ${digest} (${stored.size} bytes)`,
  };
}

/** `POST /v2/<name>/blobs/uploads/`: a mount, a whole blob (`?digest=`), or a new session. */
export async function startUpload(ctx: RegistryContext): Promise<RegistryReply> {
  const name = ctx.params.name!;
  checkRepository(name);
  const mount = ctx.query.get('mount');
  if (mount !== null) {
    const digest = digestQuery(mount, 'a mount');
    const from = ctx.query.get('from');
    if (from !== null) checkRepository(from);
    const st = await stat(ctx.store.blobPath(digest)).catch(() => undefined);
    if (st?.isFile()) {
      try {
        await ctx.checker.check(
          ctx.store,
          { mediaType: 'application/octet-stream', digest, size: st.size },
          'mounted blob',
        );
        return {
          status: 201,
          headers: { location: blobUrl(name, digest), 'docker-content-digest': digest },
          changed: `mounted blob ${digest}${from === null ? '' : ` from ${from}`}`,
        };
      } catch (err) {
        // A damaged copy is not mounted: the client uploads the blob again, which repairs it.
        if (!(err instanceof IntegrityError)) throw err;
      }
    }
  }
  const id = await ctx.uploads.start();
  if (mount === null && ctx.query.has('digest')) {
    const digest = digestQuery(ctx.query.get('digest'), 'a monolithic upload');
    try {
      await appendBody(ctx, id);
      return await finish(ctx, id, digest);
    } finally {
      await ctx.uploads.cancel(id);
    }
  }
  return { status: 202, headers: await sessionHeaders(ctx, id) };
}

/** `GET` on an upload session: where it stands (`Range`). */
export async function uploadStatus(ctx: RegistryContext): Promise<RegistryReply> {
  checkRepository(ctx.params.name!);
  return { status: 204, headers: await sessionHeaders(ctx, ctx.params.uuid!) };
}

/** `PATCH` on an upload session: one chunk, in order. */
export async function patchUpload(ctx: RegistryContext): Promise<RegistryReply> {
  checkRepository(ctx.params.name!);
  const id = ctx.params.uuid!;
  await ctx.uploads.size(id);
  await appendBody(ctx, id);
  return { status: 202, headers: await sessionHeaders(ctx, id) };
}

/** `PUT ?digest=` on an upload session: the last chunk, if any, then the blob is checked and stored. */
export async function finishUpload(ctx: RegistryContext): Promise<RegistryReply> {
  checkRepository(ctx.params.name!);
  const id = ctx.params.uuid!;
  await ctx.uploads.size(id);
  const digest = digestQuery(ctx.query.get('digest'), 'closing an upload');
  if (hasBody(ctx.req)) await appendBody(ctx, id);
  return finish(ctx, id, digest);
}

/** `DELETE` on an upload session: drops what it received. */
export async function cancelUpload(ctx: RegistryContext): Promise<RegistryReply> {
  checkRepository(ctx.params.name!);
  const id = ctx.params.uuid!;
  await ctx.uploads.size(id);
  await ctx.uploads.cancel(id);
  return { status: 204, changed: `cancelled upload ${id}` };
}

/** The media types a manifest PUT may name; the store keeps OCI image manifests only. */
const NOT_STORED: Readonly<Record<string, string>> = {
  [MediaType.ImageIndex]: 'an image index',
  'application/vnd.docker.distribution.manifest.v2+json': 'a Docker schema 2 manifest',
  'application/vnd.docker.distribution.manifest.list.v2+json': 'a Docker manifest list',
};

/** `PUT /v2/<name>/manifests/<reference>`: checked, stored byte for byte, and tagged when by tag. */
export async function putManifest(ctx: RegistryContext): Promise<RegistryReply> {
  const name = ctx.params.name!;
  const reference = ctx.params.reference!;
  checkRepository(name);
  checkReference(reference);
  const tagged = isDigest(reference) ? undefined : storeName(name, reference);
  let body: Buffer;
  try {
    body = await readBody(ctx.req, MAX_MANIFEST_BYTES);
  } catch (err) {
    if (err instanceof HttpError && err.status === 413) {
      throw new RegistryError(
        413,
        'MANIFEST_INVALID',
        `the manifest is over ${MAX_MANIFEST_BYTES} bytes`,
        undefined,
        err.headers,
      );
    }
    throw err;
  }
  const contentType = (ctx.req.headers['content-type'] ?? '').split(';')[0]!.trim();
  const invalid = (message: string, detail?: unknown) =>
    new RegistryError(400, 'MANIFEST_INVALID', message, detail);
  if (NOT_STORED[contentType] !== undefined) {
    throw invalid(
      `kiln's image store keeps OCI image manifests (${MediaType.ImageManifest}), not ${NOT_STORED[contentType]}: ` +
        'push one platform as an OCI image (skopeo copy --format oci)',
    );
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw invalid(`the manifest is not JSON: ${(err as Error).message}`);
  }
  try {
    assertImageManifest(manifest, 'manifest');
  } catch (err) {
    if (err instanceof ValidationError)
      throw invalid(`the manifest is not an OCI image manifest: ${err.message}`, { issues: err.issues });
    throw err;
  }
  if (contentType !== '' && contentType !== MediaType.ImageManifest && contentType !== 'application/json') {
    throw invalid(
      `Content-Type ${JSON.stringify(clip(contentType))} is not the manifest's mediaType ${MediaType.ImageManifest}`,
    );
  }
  const digest = sha256Digest(body);
  if (isDigest(reference) && reference !== digest) {
    throw new RegistryError(400, 'DIGEST_INVALID', `the manifest hashes to ${digest}, not ${reference}`);
  }
  const missing: { digest: string; size: number }[] = [];
  for (const blob of [manifest.config, ...manifest.layers]) {
    const st = await stat(ctx.store.blobPath(blob.digest)).catch(() => undefined);
    if (st?.size !== blob.size) missing.push({ digest: blob.digest, size: blob.size });
  }
  if (missing.length > 0) {
    throw new RegistryError(
      400,
      'MANIFEST_BLOB_UNKNOWN',
      `the manifest names ${missing.length === 1 ? 'a blob' : `${missing.length} blobs`} kiln's image store does not hold ` +
        `(or holds with another size): ${missing.map((m) => m.digest).join(', ')}; push ${missing.length === 1 ? 'it' : 'them'} first`,
      missing,
    );
  }
  await ctx.store.putManifestBytes(body, tagged === undefined ? {} : { ref: tagged });
  const subject = manifest.subject?.digest;
  return {
    status: 201,
    headers: {
      location: `/v2/${name}/manifests/${digest}`,
      'docker-content-digest': digest,
      ...(subject !== undefined ? { 'oci-subject': subject } : {}),
    },
    changed: tagged === undefined ? `stored manifest ${digest}` : `tagged ${tagged} as manifest ${digest}`,
  };
}
