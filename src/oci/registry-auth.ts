/**
 * Registry authentication: answers `WWW-Authenticate` challenges (Basic, or Bearer tokens from a
 * token service) and caches tokens per scope.
 */
import { UnavailableError } from '../errors/index.js';
import { parseChallenges, unreachable, type HttpResponse, type HttpTransport } from './http.js';
import { isLoopbackHost } from './reference.js';

/** A cached token is dropped this long before the registry says it expires. */
const TOKEN_EXPIRY_MARGIN_MS = 10_000;
/** Token lifetime assumed when the token service names none (the distribution spec's default). */
const DEFAULT_TOKEN_LIFETIME_S = 60;

/** The credentials and rules auth needs from the client's options. */
export interface AuthOptions {
  readonly registry: string;
  readonly username?: string;
  readonly password?: string;
  readonly token?: string;
  readonly insecure?: boolean;
}

/** The auth state of one client: whether Basic was asked for, and tokens per scope. */
export class RegistryAuth {
  private useBasic = false;
  private readonly tokens = new Map<string, { token: string; expires: number }>();

  constructor(
    private readonly opts: AuthOptions,
    private readonly transport: HttpTransport,
  ) {}

  /** The Authorization header for a request needing `scope`, when there is one to send. */
  header(scope: string): string | undefined {
    if (this.opts.token !== undefined) return `Bearer ${this.opts.token}`;
    const cached = this.tokens.get(scope);
    if (cached !== undefined && cached.expires > Date.now()) return `Bearer ${cached.token}`;
    if (this.useBasic) return basicAuth(this.opts.username ?? '', this.opts.password ?? '');
    return undefined;
  }

  /** Prepares credentials for a retry after the 401 `res`, or throws saying what is missing. */
  async answer(res: HttpResponse, scope: string, url: URL): Promise<void> {
    const challenges = parseChallenges(res.headers['www-authenticate']);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (this.opts.token !== undefined) throw this.refused('GET', url, scope);
    if (bearer?.params.realm !== undefined) {
      await this.fetchToken(bearer.params, scope);
      return;
    }
    if (basic !== undefined) {
      if (this.useBasic) throw this.refused('GET', url, scope);
      if (this.opts.username === undefined) {
        throw new UnavailableError(
          `${url.href}: registry ${this.opts.registry} requires credentials (401); pass username and password`,
        );
      }
      this.useBasic = true;
      return;
    }
    throw new UnavailableError(
      `${url.href}: registry ${this.opts.registry} answered 401 with no usable challenge (${res.headers['www-authenticate'] ?? 'none'})`,
    );
  }

  /** The error for a 401 that came back even with the credentials prepared by {@link answer}. */
  refused(method: string, url: URL, scope: string): UnavailableError {
    const what =
      this.opts.token !== undefined
        ? 'the given token'
        : this.useBasic
          ? 'the username/password'
          : `the token for "${scope}"`;
    return new UnavailableError(
      `${method} ${url.href}: registry ${this.opts.registry} refused ${what} (401); check the credentials`,
    );
  }

  private async fetchToken(params: Readonly<Record<string, string>>, scope: string): Promise<void> {
    let realm: URL;
    try {
      realm = new URL(params.realm!);
    } catch {
      throw new UnavailableError(
        `registry ${this.opts.registry} named a token realm that is not a URL (${JSON.stringify(params.realm)}); check the registry's auth configuration`,
      );
    }
    if (realm.protocol !== 'https:' && !(isLoopbackHost(realm.host) || this.opts.insecure)) {
      throw new UnavailableError(
        `token realm ${realm.href} is not HTTPS; refusing to send credentials (set insecure to allow)`,
      );
    }
    if (params.service !== undefined) realm.searchParams.set('service', params.service);
    for (const s of (params.scope ?? scope).split(' ')) if (s !== '') realm.searchParams.append('scope', s);
    const headers: Record<string, string> = { 'user-agent': 'kiln' };
    if (this.opts.username !== undefined) {
      headers.authorization = basicAuth(this.opts.username, this.opts.password ?? '');
    }
    let res: HttpResponse;
    try {
      res = await this.transport({ method: 'GET', url: realm, headers });
    } catch (err) {
      throw unreachable(realm, err);
    }
    if (res.status !== 200) {
      throw new UnavailableError(
        `token service ${realm.origin}${realm.pathname} refused a token for "${params.scope ?? scope}" (HTTP ${res.status}); check username and password`,
      );
    }
    let json: { token?: unknown; access_token?: unknown; expires_in?: unknown } | null;
    try {
      json = JSON.parse(res.body.toString('utf8')) as typeof json;
    } catch {
      throw new UnavailableError(`token service ${realm.origin} answered with something other than JSON`);
    }
    const token = json?.token ?? json?.access_token;
    if (typeof token !== 'string' || token === '')
      throw new UnavailableError(`token service ${realm.origin} answered without a token`);
    const expiresIn = typeof json?.expires_in === 'number' ? json.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    const lifetimeMs = expiresIn * 1000;
    this.tokens.set(scope, {
      token,
      expires: Date.now() + Math.max(lifetimeMs - TOKEN_EXPIRY_MARGIN_MS, 1000),
    });
  }
}

function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}
