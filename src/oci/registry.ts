/**
 * A hand-written OCI distribution-spec client: blobs (monolithic and chunked uploads, cross-repo
 * mounts), manifests, referrers, with Basic and Bearer token auth.
 */
import { stat } from 'node:fs/promises';
import {
  IntegrityError,
  KilnError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../errors/index.js';
import { isDigest, sha256Digest, verifyDigest } from './digest.js';
import { readRange } from './fsutil.js';
import {
  chooseBaseUrl,
  fetchTransport,
  nodeTransport,
  resolveLocation,
  unreachable,
  type HttpResponse,
  type HttpTransport,
} from './http.js';
import type { OciStore } from './layout.js';
import { assertRepository, assertTag, isLoopbackHost } from './reference.js';
import { assertImageIndex, checkDigest, parseJson } from './refs.js';
import {
  DEFAULT_CHUNK_SIZE,
  DEFAULT_MANIFEST_ACCEPT,
  fallbackTag,
  statusError,
  type FetchedManifest,
  type PushedBlob,
  type PushedManifest,
  type RegistryClientOptions,
} from './registry-api.js';
import { RegistryAuth } from './registry-auth.js';
import {
  pullImage,
  pushImage,
  type PulledImage,
  type PushedImage,
  type PullOptions,
  type PushOptions,
  type RemoteTarget,
} from './transfer.js';
import { MediaType, type Descriptor, type Digest, type ImageIndex } from './types.js';

/** Redirects followed for one GET or HEAD (blob downloads are often redirected to storage). */
const MAX_REDIRECTS = 5;

/** One authenticated request's options ({@link RegistryClient.request}). */
export interface SendOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  /** The token scope this request needs (`repository:team/app:pull,push`). */
  readonly scope: string;
}

/**
 * A client for one registry. HTTPS is used by default. Plain HTTP is used when `plainHttp` is set,
 * or as a fallback when the HTTPS connection fails for a reason other than the certificate (the
 * server speaks no TLS, nothing listens for TLS) — but only for loopback hosts (127.0.0.0/8, ::1,
 * localhost) unless `insecure` is set. A certificate that does not verify never falls back: pass
 * the registry's CA as `ca`. The choice is made on the first request and kept.
 *
 * Auth: a 401 is answered per its `WWW-Authenticate` challenge: `Basic` sends username/password;
 * `Bearer realm=…,service=…,scope=…` fetches a token from the realm (with basic credentials when
 * given), caches it per scope until it expires, and retries.
 *
 * @example
 * const client = new RegistryClient({ registry: 'localhost:5000' });
 * await client.pushImage(store, 'app:1.0', { repository: 'team/app', tag: '1.0' }, { referrers: true });
 * client.close();
 */
export class RegistryClient {
  readonly registry: string;
  private readonly opts: RegistryClientOptions;
  private readonly transport: HttpTransport;
  private readonly closeTransport: () => void;
  private readonly auth: RegistryAuth;
  private base: Promise<URL> | undefined;

  constructor(options: RegistryClientOptions) {
    this.opts = options;
    this.registry = options.registry;
    const loopback = isLoopbackHost(options.registry);
    if (options.plainHttp && !loopback && !options.insecure) {
      throw new ValidationError(undefined, [
        {
          path: 'plainHttp',
          message: `plain HTTP to ${options.registry} would send images and credentials unencrypted`,
          fix: 'use HTTPS, or set insecure: true if this registry really has no TLS',
        },
      ]);
    }
    if (options.fetch) {
      this.transport = fetchTransport(options.fetch);
      this.closeTransport = () => undefined;
    } else {
      const t = nodeTransport({ ca: options.ca, timeoutMs: options.timeoutMs });
      this.transport = t.transport;
      this.closeTransport = t.close;
    }
    this.auth = new RegistryAuth(options, this.transport);
  }

  /** Releases pooled connections. */
  close(): void {
    this.closeTransport();
  }

  /** The base URL (`https://host:port` or `http://…`), deciding the scheme on first use. */
  baseUrl(): Promise<URL> {
    if (this.base === undefined) {
      const chosen = chooseBaseUrl(this.transport, this.registry, this.opts);
      // A failed probe is not remembered: the registry may be up on the next call.
      chosen.catch(() => {
        if (this.base === chosen) this.base = undefined;
      });
      this.base = chosen;
    }
    return this.base;
  }

  /** True when the registry holds the blob. */
  async hasBlob(repository: string, digest: Digest): Promise<boolean> {
    assertRepository(repository);
    const res = await this.send('HEAD', `/v2/${repository}/blobs/${checkDigest(digest)}`, {
      scope: pullScope(repository),
    });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw statusError(this.registry, 'HEAD', `/v2/${repository}/blobs/${digest}`, res);
  }

  /** Downloads a blob and verifies its digest (IntegrityError on mismatch). */
  async getBlob(repository: string, digest: Digest): Promise<Buffer> {
    assertRepository(repository);
    const path = `/v2/${repository}/blobs/${checkDigest(digest)}`;
    const res = await this.send('GET', path, { scope: pullScope(repository) });
    if (res.status !== 200) throw statusError(this.registry, 'GET', path, res);
    verifyDigest(res.body, digest, `blob ${digest} from ${this.registry}/${repository}`);
    return res.body;
  }

  /**
   * Uploads a blob (bytes, or a file path) unless the registry already has it. Uploads larger than
   * `chunkSize` go in PATCH chunks with `Content-Range`; smaller ones in one PUT. With `mountFrom`,
   * a cross-repository mount is tried first.
   */
  async pushBlob(
    repository: string,
    source: Buffer | string,
    digest: Digest,
    options: { readonly mountFrom?: string } = {},
  ): Promise<PushedBlob> {
    assertRepository(repository);
    checkDigest(digest);
    if (Buffer.isBuffer(source)) verifyDigest(source, digest, `blob to push to ${repository}`);
    if (await this.hasBlob(repository, digest)) return { digest, uploaded: false, mounted: false };
    const scope = pushScope(repository);
    const uploads = `/v2/${repository}/blobs/uploads/`;
    let res: HttpResponse;
    if (options.mountFrom !== undefined) {
      assertRepository(options.mountFrom);
      const query = new URLSearchParams({ mount: digest, from: options.mountFrom });
      res = await this.send('POST', `${uploads}?${query}`, {
        scope: `${scope} ${pullScope(options.mountFrom)}`,
      });
      if (res.status === 201) return { digest, uploaded: false, mounted: true };
    } else {
      res = await this.send('POST', uploads, { scope });
    }
    if (res.status !== 202) throw statusError(this.registry, 'POST', uploads, res);
    let location = await this.location(res, uploads);
    const size = Buffer.isBuffer(source) ? source.length : (await stat(source)).size;
    const chunkSize = this.opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (size <= chunkSize) {
      const body = Buffer.isBuffer(source) ? source : await readRange(source, 0, size);
      location.searchParams.set('digest', digest);
      res = await this.send('PUT', location, {
        scope,
        body,
        headers: { 'content-type': 'application/octet-stream' },
      });
      if (res.status !== 201) throw statusError(this.registry, 'PUT', location.pathname, res);
      return { digest, uploaded: true, mounted: false };
    }
    for (let start = 0; start < size; start += chunkSize) {
      const end = Math.min(start + chunkSize, size);
      const body = Buffer.isBuffer(source)
        ? source.subarray(start, end)
        : await readRange(source, start, end - start);
      res = await this.send('PATCH', location, {
        scope,
        body,
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end - 1}` },
      });
      if (res.status !== 202) throw statusError(this.registry, 'PATCH', location.pathname, res);
      location = await this.location(res, location.href);
    }
    location.searchParams.set('digest', digest);
    res = await this.send('PUT', location, {
      scope,
      headers: { 'content-type': 'application/octet-stream' },
    });
    if (res.status !== 201) throw statusError(this.registry, 'PUT', location.pathname, res);
    return { digest, uploaded: true, mounted: false };
  }

  /** Uploads a manifest under a tag or a digest (the body's digest must then match). */
  async pushManifest(
    repository: string,
    reference: string,
    body: Buffer,
    mediaType: string,
  ): Promise<PushedManifest> {
    assertRepository(repository);
    checkReference(reference);
    const digest = sha256Digest(body);
    if (isDigest(reference)) verifyDigest(body, reference, `manifest to push as ${reference}`);
    const path = `/v2/${repository}/manifests/${reference}`;
    const res = await this.send('PUT', path, {
      scope: pushScope(repository),
      body,
      headers: { 'content-type': mediaType },
    });
    if (res.status !== 201) throw statusError(this.registry, 'PUT', path, res);
    const said = res.headers['docker-content-digest'];
    if (said !== undefined && said !== digest) {
      throw new IntegrityError(
        `${this.registry}/${repository}: registry stored manifest as ${said}, expected ${digest}`,
      );
    }
    return { digest, subjectIndexed: res.headers['oci-subject'] !== undefined };
  }

  /** Fetches a manifest by tag or digest, verifying its digest (against the reference or the registry's header). */
  async getManifest(
    repository: string,
    reference: string,
    accept: readonly string[] = DEFAULT_MANIFEST_ACCEPT,
  ): Promise<FetchedManifest> {
    assertRepository(repository);
    checkReference(reference);
    const path = `/v2/${repository}/manifests/${reference}`;
    const res = await this.send('GET', path, {
      scope: pullScope(repository),
      headers: { accept: accept.join(', ') },
    });
    if (res.status !== 200) throw statusError(this.registry, 'GET', path, res);
    const digest = sha256Digest(res.body);
    const what = `manifest ${this.registry}/${repository}:${reference}`;
    if (isDigest(reference)) verifyDigest(res.body, reference, what);
    const said = res.headers['docker-content-digest'];
    if (said !== undefined && isDigest(said)) verifyDigest(res.body, said, what);
    let mediaType = res.headers['content-type']?.split(';')[0]?.trim() ?? '';
    if (mediaType === '' || mediaType === 'application/json') {
      try {
        mediaType = String(
          (JSON.parse(res.body.toString('utf8')) as { mediaType?: unknown }).mediaType ?? mediaType,
        );
      } catch {
        throw new IntegrityError(`${what}: body is not JSON`);
      }
    }
    return { body: res.body, mediaType, digest };
  }

  /**
   * The referrers of `subject`: from the referrers API when the registry has it, else from the
   * fallback tag `sha256-<hex>` (distribution spec 1.1), else none. A list that is not JSON is an
   * IntegrityError; one that is not an image index of descriptors, a ValidationError.
   */
  async getReferrers(repository: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    assertRepository(repository);
    const path = `/v2/${repository}/referrers/${checkDigest(subject)}`;
    const res = await this.send('GET', path, {
      scope: pullScope(repository),
      headers: { accept: MediaType.ImageIndex },
    });
    const what = `referrers of ${subject} from ${this.registry}/${repository}`;
    const parseIndex = (body: Buffer): ImageIndex => {
      const value = parseJson(body, what);
      assertImageIndex(value, what);
      return value;
    };
    let index: ImageIndex | undefined;
    if (res.status === 200) index = parseIndex(res.body);
    else if (res.status !== 404) throw statusError(this.registry, 'GET', path, res);
    else {
      try {
        const fallback = await this.getManifest(repository, fallbackTag(subject), [MediaType.ImageIndex]);
        index = parseIndex(fallback.body);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    return (index?.manifests ?? []).filter(
      (d) => artifactType === undefined || d.artifactType === artifactType,
    );
  }

  /** Pushes an image from `store` (config, layers, manifest by digest and by tag), and its referrers when asked. */
  async pushImage(
    store: OciStore,
    ref: string | Descriptor,
    target: RemoteTarget,
    options: PushOptions = {},
  ): Promise<PushedImage> {
    return pushImage(this, store, ref, target, options);
  }

  /** Pulls an image into `store`, verifying every blob, tagging it `ref` when given. */
  async pullImage(
    target: RemoteTarget,
    store: OciStore,
    ref?: string,
    options: PullOptions = {},
  ): Promise<PulledImage> {
    return pullImage(this, target, store, ref, options);
  }

  /** One request with the client's auth, for transfers built on it (resumable uploads). */
  request(method: string, target: string | URL, options: SendOptions): Promise<HttpResponse> {
    return this.send(method, target, options);
  }

  /** Sends a request with auth, following redirects for GET/HEAD and answering one 401 challenge. */
  private async send(method: string, target: string | URL, options: SendOptions): Promise<HttpResponse> {
    const base = await this.baseUrl();
    let url = typeof target === 'string' ? new URL(target, base) : target;
    let challenged = false;
    for (let redirects = 0; ;) {
      const headers: Record<string, string> = { 'user-agent': 'kiln', ...options.headers };
      if (url.origin === base.origin) {
        const auth = this.auth.header(options.scope);
        if (auth !== undefined) headers.authorization = auth;
      }
      let res: HttpResponse;
      try {
        res = await this.transport({
          method,
          url,
          headers,
          ...(options.body !== undefined ? { body: options.body } : {}),
        });
      } catch (err) {
        throw unreachable(url, err);
      }
      if (res.status === 401 && url.origin === base.origin) {
        if (challenged) throw this.auth.refused(method, url, options.scope);
        challenged = true;
        await this.auth.answer(res, options.scope, url);
        continue;
      }
      const location = res.headers.location;
      if (
        (method === 'GET' || method === 'HEAD') &&
        [301, 302, 303, 307, 308].includes(res.status) &&
        location
      ) {
        if (++redirects > MAX_REDIRECTS)
          throw new UnavailableError(`${url.href}: more than ${MAX_REDIRECTS} redirects`);
        url = resolveLocation(location, url, this.registry);
        continue;
      }
      return res;
    }
  }

  /** The upload URL a registry answered with (its `Location`), resolved against `from`. */
  async location(res: HttpResponse, from: string): Promise<URL> {
    const location = res.headers.location;
    if (!location)
      throw new KilnError('unavailable', `registry ${this.registry}: upload answer has no Location header`);
    return resolveLocation(location, new URL(from, await this.baseUrl()), this.registry);
  }
}

/** A manifest reference is a digest or a tag; anything else would change the request path. */
function checkReference(reference: string): void {
  if (!isDigest(reference)) assertTag(reference);
}

/** The token scope to read `repository`. */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

/** The token scope to write `repository`. */
export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}
