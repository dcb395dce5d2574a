/**
 * The HTTP plumbing under the registry client: one small request function over node:http(s) (so a
 * private CA can be trusted without a dependency) or over an injected `fetch`, plus the parsing of
 * `WWW-Authenticate` challenges.
 */
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { UnavailableError } from '../errors/index.js';
import { isLoopbackHost } from './reference.js';

/** One request, bodies buffered. */
export interface HttpRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Buffer;
}

/** One response; header names are lowercase, repeated headers joined with ", ". */
export interface HttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** Sends one request without following redirects. Rejects only when no response arrived. */
export type HttpTransport = (req: HttpRequest) => Promise<HttpResponse>;

/** How long a request may wait for the next byte before it is abandoned. */
export const DEFAULT_HTTP_TIMEOUT_MS = 120_000;

/** A transport over node:http and node:https that trusts `ca` on top of the system roots. */
export function nodeTransport(options: { readonly ca?: Buffer; readonly timeoutMs?: number }): {
  transport: HttpTransport;
  close: () => void;
} {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  const httpAgent = new http.Agent({ keepAlive: true });
  const httpsAgent = new https.Agent({
    keepAlive: true,
    ...(options.ca ? { ca: [...rootCertificates, options.ca.toString('utf8')] } : {}),
  });
  const transport: HttpTransport = (req) =>
    new Promise((resolve, reject) => {
      const secure = req.url.protocol === 'https:';
      const headers: Record<string, string> = { ...req.headers };
      if (req.body !== undefined || ['PUT', 'POST', 'PATCH'].includes(req.method)) {
        headers['content-length'] = String(req.body?.length ?? 0);
      }
      const request = (secure ? https : http).request(
        req.url,
        { method: req.method, headers, agent: secure ? httpsAgent : httpAgent, timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const out: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) {
              if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
            }
            resolve({ status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks) });
          });
        },
      );
      request.on('timeout', () =>
        request.destroy(
          Object.assign(new Error(`no response within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }),
        ),
      );
      request.on('error', reject);
      request.end(req.body);
    });
  return {
    transport,
    close: () => {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}

/** A transport over a `fetch` implementation (tests inject one; redirects are left to the caller). */
export function fetchTransport(fetchImpl: typeof fetch): HttpTransport {
  return async (req) => {
    const res = await fetchImpl(req.url, {
      method: req.method,
      headers: req.headers,
      redirect: 'manual',
      ...(req.body !== undefined ? { body: req.body } : {}),
    });
    const headers: Record<string, string> = {};
    res.headers.forEach((value, key) => {
      headers[key.toLowerCase()] = value;
    });
    return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) };
  };
}

/** One authentication challenge: `Bearer realm="…",service="…"` → `{ scheme: 'bearer', params }`. */
export interface AuthChallenge {
  /** Lowercase scheme name. */
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Parses a `WWW-Authenticate` value, which may hold several challenges joined by commas. */
export function parseChallenges(header: string | undefined): AuthChallenge[] {
  if (!header) return [];
  const out: { scheme: string; params: Record<string, string> }[] = [];
  const token = /\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*)))?\s*,?/gy;
  let m: RegExpExecArray | null;
  while (token.lastIndex < header.length && (m = token.exec(header)) !== null) {
    const [, name, quoted, bare] = m;
    if (quoted === undefined && bare === undefined) out.push({ scheme: name!.toLowerCase(), params: {} });
    else if (out.length > 0)
      out[out.length - 1]!.params[name!.toLowerCase()] = quoted?.replace(/\\(.)/g, '$1') ?? bare!;
    if (m[0] === '') break;
  }
  return out;
}

/** The error code of a network error, looking through `fetch`'s `cause` wrapper. */
export function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | undefined;
  if (typeof e?.code === 'string') return e.code;
  if (typeof e?.cause?.code === 'string') return e.cause.code;
  return undefined;
}

/** True for TLS certificate verification failures (as opposed to a server that speaks no TLS). */
export function isCertificateError(err: unknown): boolean {
  const code = errorCode(err) ?? '';
  return /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|HOSTNAME|ALTNAME/.test(code);
}

/** A network error as one short phrase: its code and message. */
export function describeNetworkError(err: unknown): string {
  const code = errorCode(err);
  const message = (err as Error)?.message ?? String(err);
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}

/** A `Location` header resolved against `base`, or an UnavailableError when it is not a URL. */
export function resolveLocation(location: string, base: URL, registry: string): URL {
  try {
    return new URL(location, base);
  } catch {
    throw new UnavailableError(
      `registry ${registry} answered ${base.href} with a Location that is not a URL (${JSON.stringify(location)}); check the registry or the proxy in front of it`,
    );
  }
}

/** The UnavailableError for a request to `url` that got no response. */
export function unreachable(url: URL, err: unknown): UnavailableError {
  return new UnavailableError(`cannot reach ${url.href}: ${describeNetworkError(err)}`, { cause: err });
}

/**
 * Decides how to talk to `host`: HTTPS, unless `plainHttp`; plain HTTP only as a fallback when
 * HTTPS fails for a reason other than the certificate, and only for loopback hosts unless
 * `insecure`. Probes `GET /v2/` (any HTTP answer, 401 included, settles it).
 */
export async function chooseBaseUrl(
  transport: HttpTransport,
  host: string,
  options: { readonly plainHttp?: boolean; readonly insecure?: boolean },
): Promise<URL> {
  if (options.plainHttp) return new URL(`http://${host}`);
  const secure = new URL(`https://${host}`);
  try {
    await transport({ method: 'GET', url: new URL('/v2/', secure), headers: {} });
    return secure;
  } catch (err) {
    if (isCertificateError(err)) {
      throw new UnavailableError(
        `TLS certificate of ${secure.href} is not trusted (${errorCode(err)}): pass the registry's CA certificate as \`ca\``,
        { cause: err },
      );
    }
    if (!(isLoopbackHost(host) || options.insecure)) throw unreachable(new URL('/v2/', secure), err);
    const plain = new URL(`http://${host}`);
    try {
      await transport({ method: 'GET', url: new URL('/v2/', plain), headers: {} });
      return plain;
    } catch (err2) {
      throw new UnavailableError(
        `cannot reach registry ${host} over HTTPS (${describeNetworkError(err)}) or HTTP (${describeNetworkError(err2)})`,
        { cause: err2 },
      );
    }
  }
}
