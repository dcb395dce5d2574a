/**
 * The registry's routes (OCI distribution spec 1.1, end-1 … end-14 less deletion): one table of
 * method, path, the scope it needs, what the audit log calls it, and a handler. Pulling needs
 * `read`; everything of a push (upload sessions, mounts, manifests) needs `deploy`. The pull
 * handlers are here, the push handlers in registry-push.ts. docs/api.md ("Registry") documents it.
 */
import { stat } from 'node:fs/promises';
import { IntegrityError } from '../errors/index.js';
import { isDigest, MediaType, type Descriptor, type Digest } from '../oci/index.js';
import type { TokenScope } from '../state/index.js';
import type { AuditSubject } from './routes.js';
import {
  RegistryError,
  type RegistryContext,
  type RegistryErrorCode,
  type RegistryReply,
} from './registry-http.js';
import { checkReference, checkRepository, clip, storeNames, tagsOf } from './registry-names.js';
import {
  cancelUpload,
  finishUpload,
  patchUpload,
  putManifest,
  startUpload,
  uploadStatus,
} from './registry-push.js';

/** One registry route. */
export interface RegistryRoute {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** Such as `/v2/:name/manifests/:reference`; `:name` spans `/`, other parameters one segment. */
  readonly path: string;
  readonly scope: TokenScope;
  /** What a not-found means here (`BLOB_UNKNOWN` …), for errors mapped from the store's. */
  readonly notFound: RegistryErrorCode;
  /**
   * Mutating routes: their name in the audit log. Refused and failed calls are recorded, and
   * successful ones that changed the store (a handler's `changed`).
   */
  readonly audit?: (params: Readonly<Record<string, string>>, query: URLSearchParams) => AuditSubject;
  handle(ctx: RegistryContext): Promise<RegistryReply>;
}

/** Largest page of `tags/list` (`n`). */
export const MAX_TAGS_PAGE = 10_000;

const pushed = (action: string) => (p: Readonly<Record<string, string>>) => ({ action, target: p.name! });

/** Every route of the registry, in the order they are matched. */
export const REGISTRY_ROUTES: readonly RegistryRoute[] = [
  {
    method: 'GET',
    path: '/v2/',
    scope: 'read',
    notFound: 'NAME_UNKNOWN',
    handle: async () => versionCheck(),
  },
  {
    method: 'POST',
    path: '/v2/:name/blobs/uploads/',
    scope: 'deploy',
    notFound: 'BLOB_UNKNOWN',
    audit: (p, q) => ({
      action: q.has('mount') ? 'registry.blob.mount' : 'registry.blob.push',
      target: p.name!,
    }),
    handle: startUpload,
  },
  {
    method: 'GET',
    path: '/v2/:name/blobs/uploads/:uuid',
    scope: 'deploy',
    notFound: 'BLOB_UPLOAD_UNKNOWN',
    handle: uploadStatus,
  },
  {
    method: 'PATCH',
    path: '/v2/:name/blobs/uploads/:uuid',
    scope: 'deploy',
    notFound: 'BLOB_UPLOAD_UNKNOWN',
    audit: pushed('registry.blob.push'),
    handle: patchUpload,
  },
  {
    method: 'PUT',
    path: '/v2/:name/blobs/uploads/:uuid',
    scope: 'deploy',
    notFound: 'BLOB_UPLOAD_UNKNOWN',
    audit: pushed('registry.blob.push'),
    handle: finishUpload,
  },
  {
    method: 'DELETE',
    path: '/v2/:name/blobs/uploads/:uuid',
    scope: 'deploy',
    notFound: 'BLOB_UPLOAD_UNKNOWN',
    audit: pushed('registry.upload.cancel'),
    handle: cancelUpload,
  },
  {
    method: 'GET',
    path: '/v2/:name/blobs/:digest',
    scope: 'read',
    notFound: 'BLOB_UNKNOWN',
    handle: getBlob,
  },
  {
    method: 'HEAD',
    path: '/v2/:name/blobs/:digest',
    scope: 'read',
    notFound: 'BLOB_UNKNOWN',
    handle: getBlob,
  },
  {
    method: 'GET',
    path: '/v2/:name/manifests/:reference',
    scope: 'read',
    notFound: 'MANIFEST_UNKNOWN',
    handle: getManifest,
  },
  {
    method: 'HEAD',
    path: '/v2/:name/manifests/:reference',
    scope: 'read',
    notFound: 'MANIFEST_UNKNOWN',
    handle: getManifest,
  },
  {
    method: 'PUT',
    path: '/v2/:name/manifests/:reference',
    scope: 'deploy',
    notFound: 'MANIFEST_UNKNOWN',
    audit: (p) => ({ action: 'registry.manifest.put', target: `${p.name!}:${p.reference!}` }),
    handle: putManifest,
  },
  { method: 'GET', path: '/v2/:name/tags/list', scope: 'read', notFound: 'NAME_UNKNOWN', handle: listTags },
  {
    method: 'GET',
    path: '/v2/:name/referrers/:digest',
    scope: 'read',
    notFound: 'MANIFEST_UNKNOWN',
    handle: listReferrers,
  },
];

const PATTERNS = new Map(
  REGISTRY_ROUTES.map((r) => [
    r,
    new RegExp(
      `^${r.path.replace(/[.]/g, '\\.').replace(/:([a-z]+)/g, (_, p: string) => (p === 'name' ? '(?<name>.+?)' : `(?<${p}>[^/]+)`))}$`,
    ),
  ]),
);

/** The routes whose path matches `path` (not decoded: registry names are plain ASCII), whatever their method. */
export function matchRegistry(path: string): { route: RegistryRoute; params: Record<string, string> }[] {
  const out: { route: RegistryRoute; params: Record<string, string> }[] = [];
  for (const route of REGISTRY_ROUTES) {
    const m = PATTERNS.get(route)!.exec(path);
    if (m !== null) out.push({ route, params: { ...m.groups } });
  }
  return out;
}

function versionCheck(): RegistryReply {
  return { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') };
}

/** A blob the store holds, checked against its digest before it is served. */
async function servedBlob(ctx: RegistryContext, digest: Digest): Promise<{ path: string; size: number }> {
  const path = ctx.store.blobPath(digest);
  const st = await stat(path).catch(() => undefined);
  if (st === undefined || !st.isFile()) {
    throw new RegistryError(404, 'BLOB_UNKNOWN', `blob ${digest} is not in kiln's image store`);
  }
  try {
    await ctx.checker.check(
      ctx.store,
      { mediaType: 'application/octet-stream', digest, size: st.size },
      'served blob',
    );
  } catch (err) {
    if (err instanceof IntegrityError) throw damaged(err);
    throw err;
  }
  return { path, size: st.size };
}

function damaged(err: IntegrityError): RegistryError {
  return new RegistryError(
    500,
    'UNKNOWN',
    `kiln's image store is damaged, so this is not served: ${err.message}`,
  );
}

function checkDigestParam(digest: string): Digest {
  if (!isDigest(digest)) {
    throw new RegistryError(
      400,
      'DIGEST_INVALID',
      `${JSON.stringify(clip(digest))} is not a sha256 digest: use sha256: and 64 lowercase hex digits`,
    );
  }
  return digest;
}

async function getBlob(ctx: RegistryContext): Promise<RegistryReply> {
  checkRepository(ctx.params.name!);
  const digest = checkDigestParam(ctx.params.digest!);
  const { path, size } = await servedBlob(ctx, digest);
  const headers = {
    'content-type': 'application/octet-stream',
    'docker-content-digest': digest,
    'accept-ranges': 'bytes',
    etag: `"${digest}"`,
  };
  const range = byteRange(ctx.req.headers.range, size);
  if (range === 'unsatisfiable') {
    throw new RegistryError(
      416,
      'BLOB_UNKNOWN',
      `the range ${clip(String(ctx.req.headers.range))} is outside the blob's ${size} bytes`,
      undefined,
      {
        'content-range': `bytes */${size}`,
      },
    );
  }
  if (range !== undefined) {
    return {
      status: 206,
      headers: { ...headers, 'content-range': `bytes ${range.start}-${range.end}/${size}` },
      file: { path, ...range },
    };
  }
  return { status: 200, headers, ...(size > 0 ? { file: { path, start: 0, end: size - 1 } } : {}) };
}

/**
 * One `bytes=` range of a blob of `size` bytes; undefined (serve it whole) for none, for several,
 * or for one that does not parse, as RFC 9110 lets a server ignore a Range it does not take.
 */
export function byteRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? '');
  if (m === null || (m[1] === '' && m[2] === '')) return undefined;
  const [first, last] = [Number(m[1]), Number(m[2])];
  if (m[1] === '') {
    // A suffix: the last `last` bytes.
    if (!Number.isSafeInteger(last) || last === 0) return 'unsatisfiable';
    return size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - last), end: size - 1 };
  }
  if (!Number.isSafeInteger(first) || first >= size) return 'unsatisfiable';
  if (m[2] === '' || !Number.isSafeInteger(last)) return { start: first, end: size - 1 };
  if (last < first) return undefined;
  return { start: first, end: Math.min(last, size - 1) };
}

async function getManifest(ctx: RegistryContext): Promise<RegistryReply> {
  const name = ctx.params.name!;
  const reference = ctx.params.reference!;
  checkRepository(name);
  checkReference(reference);
  let found: Descriptor | undefined;
  if (isDigest(reference)) found = await ctx.store.resolve(reference);
  else {
    for (const ref of storeNames(name, reference)) {
      found = await ctx.store.resolve(ref);
      if (found !== undefined) break;
    }
  }
  if (found === undefined) {
    throw new RegistryError(
      404,
      'MANIFEST_UNKNOWN',
      `no manifest ${clip(name)}:${clip(reference)} in kiln's image store`,
    );
  }
  let body: Buffer;
  try {
    body = await ctx.store.getBlob(found.digest);
  } catch (err) {
    if (err instanceof IntegrityError) throw damaged(err);
    throw err;
  }
  let mediaType: string = found.mediaType;
  try {
    const said = (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType;
    if (typeof said === 'string') mediaType = said;
  } catch {
    // The store keeps only JSON manifests; the descriptor's media type stands.
  }
  return {
    status: 200,
    headers: { 'content-type': mediaType, 'docker-content-digest': found.digest, etag: `"${found.digest}"` },
    body,
  };
}

async function listTags(ctx: RegistryContext): Promise<RegistryReply> {
  const name = ctx.params.name!;
  checkRepository(name);
  const all = tagsOf(await ctx.store.list(), name);
  if (all.length === 0) {
    throw new RegistryError(
      404,
      'NAME_UNKNOWN',
      `no repository ${clip(name)} in kiln's image store (no image is tagged ${clip(name)})`,
    );
  }
  const n = pageSize(ctx.query.get('n'));
  const last = ctx.query.get('last');
  const after = last === null ? all : all.filter((t) => t > last);
  const page = n === undefined ? after : after.slice(0, n);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (n !== undefined && n > 0 && after.length > n) {
    const next = new URLSearchParams({ n: String(n), last: page[page.length - 1]! });
    headers.link = `</v2/${name}/tags/list?${next}>; rel="next"`;
  }
  return { status: 200, headers, body: Buffer.from(JSON.stringify({ name, tags: page })) };
}

function pageSize(n: string | null): number | undefined {
  if (n === null) return undefined;
  if (!/^\d{1,6}$/.test(n) || Number(n) > MAX_TAGS_PAGE) {
    throw new RegistryError(
      400,
      'UNSUPPORTED',
      `n=${JSON.stringify(clip(n))} is not a page size: use a whole number from 0 to ${MAX_TAGS_PAGE}`,
    );
  }
  return Number(n);
}

async function listReferrers(ctx: RegistryContext): Promise<RegistryReply> {
  checkRepository(ctx.params.name!);
  const digest = checkDigestParam(ctx.params.digest!);
  const artifactType = ctx.query.get('artifactType') ?? undefined;
  const manifests = await ctx.store.referrers(digest, artifactType);
  const index = { schemaVersion: 2, mediaType: MediaType.ImageIndex, manifests };
  return {
    status: 200,
    headers: {
      'content-type': MediaType.ImageIndex,
      ...(artifactType !== undefined ? { 'oci-filters-applied': 'artifactType' } : {}),
    },
    body: Buffer.from(JSON.stringify(index)),
  };
}
