/**
 * The registry client's public option and result types, and the decoding of distribution-API
 * error answers.
 */
import { IntegrityError, KilnError, NotFoundError } from '../errors/index.js';
import type { HttpResponse } from './http.js';
import { MediaType, type Digest } from './types.js';

/** Blobs larger than this are uploaded in PATCH chunks of this size: 32 MiB. */
export const DEFAULT_CHUNK_SIZE = 32 * 1024 ** 2;

/** The media types asked for when fetching a manifest, unless told otherwise. */
export const DEFAULT_MANIFEST_ACCEPT: readonly string[] = [
  MediaType.ImageManifest,
  MediaType.ImageIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
];

/** Options for {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** Host and optional port: `localhost:5000`, `registry.example.com`. */
  readonly registry: string;
  /** Allow plain HTTP to a host that is not loopback. @default false */
  readonly insecure?: boolean;
  /** Use plain HTTP at once, without trying HTTPS (loopback hosts, or any host with `insecure`). @default false */
  readonly plainHttp?: boolean;
  readonly username?: string;
  readonly password?: string;
  /** A bearer token sent with every request (instead of username/password). */
  readonly token?: string;
  /** An extra CA certificate (PEM) trusted for this registry's TLS, on top of the system roots. */
  readonly ca?: Buffer;
  /** A fetch implementation to use instead of node:http(s) (then `ca` must be handled by it). */
  readonly fetch?: typeof fetch;
  /** Blobs larger than this are uploaded in chunks. @default DEFAULT_CHUNK_SIZE */
  readonly chunkSize?: number;
  /** Idle timeout of one request. @default DEFAULT_HTTP_TIMEOUT_MS */
  readonly timeoutMs?: number;
}

/** A fetched manifest: its exact bytes, media type and verified digest. */
export interface FetchedManifest {
  readonly body: Buffer;
  readonly mediaType: string;
  readonly digest: Digest;
}

/** The outcome of {@link RegistryClient.pushBlob}. */
export interface PushedBlob {
  readonly digest: Digest;
  /** false when the registry already had it. */
  readonly uploaded: boolean;
  readonly mounted: boolean;
}

/** The outcome of {@link RegistryClient.pushManifest}. */
export interface PushedManifest {
  readonly digest: Digest;
  /** True when the registry answered with `OCI-Subject`, i.e. it indexes referrers itself. */
  readonly subjectIndexed: boolean;
}

/**
 * The error for an unexpected registry answer, carrying the registry's own JSON error codes and
 * messages: NotFoundError for 404, IntegrityError for DIGEST_INVALID, else a KilnError.
 */
export function statusError(registry: string, method: string, path: string, res: HttpResponse): KilnError {
  let detail = res.body.toString('utf8').slice(0, 500).trim();
  let codes: string[] = [];
  try {
    const errors =
      (
        JSON.parse(res.body.toString('utf8')) as {
          errors?: { code?: string; message?: string; detail?: unknown }[];
        }
      ).errors ?? [];
    codes = errors.map((e) => e.code ?? '');
    detail = errors
      .map(
        (e) =>
          `${e.code ?? 'ERROR'}: ${e.message ?? ''}${e.detail !== undefined ? ` (${JSON.stringify(e.detail)})` : ''}`,
      )
      .join('; ');
  } catch {
    // not JSON: keep the raw text
  }
  const message = `registry ${registry}: ${method} ${path}: HTTP ${res.status}${detail ? `: ${detail}` : ''}`;
  if (res.status === 404) return new NotFoundError(message);
  if (codes.includes('DIGEST_INVALID')) return new IntegrityError(message);
  return new KilnError('unavailable', message);
}

/** The tag under which referrers are listed when the registry has no referrers API: `sha256-<hex>`. */
export function fallbackTag(subject: Digest): string {
  return subject.replace(':', '-');
}
