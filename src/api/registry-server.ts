/**
 * The OCI registry the API server serves under `/v2/` over the project's image store: it
 * authenticates registry clients with the API's own tokens (Basic with the token as password, or
 * Bearer), checks each route's scope, runs its handler, answers distribution-spec errors and
 * records mutating calls in the audit log. docs/api.md ("Registry") documents it.
 */
import type http from 'node:http';
import { BlobChecker, BlobUploads, type BlobUploadsOptions, type OciStore } from '../oci/index.js';
import { auditTarget, type AuditSink } from './audit.js';
import { authorize, type Caller, type TokenVerifier } from './auth.js';
import {
  registryCaller,
  registryErrorOf,
  RegistryError,
  sendRegistryError,
  sendReply,
  type RegistryReply,
} from './registry-http.js';
import { matchRegistry, type RegistryRoute } from './registry-routes.js';

/** How often expired upload sessions are swept: every 5 minutes (and once at start). */
export const UPLOAD_SWEEP_INTERVAL_MS = 5 * 60_000;

/** Options for {@link Registry}. */
export interface RegistryOptions {
  /** The image store served. */
  readonly store: OciStore;
  readonly tokens: TokenVerifier;
  /** Where mutating calls are recorded. @default nowhere */
  readonly audit?: AuditSink;
  /** Where faults of the registry (500s) are reported. */
  readonly log: (line: string) => void;
  /** Upload sessions' limits. */
  readonly uploads?: BlobUploadsOptions;
}

/** The actor recorded for a call without a live token. */
const ANONYMOUS = 'anonymous';

/**
 * The registry over one store. {@link handle} answers every request under `/v2`.
 *
 * @example
 * const registry = new Registry({ store, tokens: state.tokens, audit: state.audit, log });
 * // in the server's request listener: if (path.startsWith('/v2/')) return registry.handle(req, res, path, query);
 * registry.close();
 */
export class Registry {
  private readonly uploads: BlobUploads;
  private readonly checker = new BlobChecker();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: RegistryOptions) {
    this.uploads = new BlobUploads(options.store, options.uploads);
    const sweep = () => {
      this.uploads
        .sweep()
        .catch((err: unknown) => options.log(`kiln registry: sweeping uploads failed: ${String(err)}`));
    };
    sweep();
    this.sweeper = setInterval(sweep, UPLOAD_SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  /** Stops sweeping; sessions left open stay on disk until the next start sweeps them. */
  close(): void {
    clearInterval(this.sweeper);
  }

  /** Answers one request; never throws (a failure is answered, or the connection cut once the answer began). */
  async handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
    query: URLSearchParams,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const matches = matchRegistry(path);
    const match = matches.find((m) => m.route.method === method);
    let caller: Caller | undefined;
    let reply: RegistryReply;
    try {
      caller = registryCaller(req.headers.authorization, this.options.tokens);
      if (match === undefined) throw unrouted(method, path, matches);
      authorize(caller, match.route.scope, `${method} ${match.route.path}`);
      reply = await match.route.handle({
        store: this.options.store,
        uploads: this.uploads,
        checker: this.checker,
        params: match.params,
        query,
        req,
        caller,
      });
    } catch (err) {
      const answer = registryErrorOf(err, match?.route.notFound);
      if (answer.status >= 500) {
        const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
        this.options.log(`kiln registry: ${method} ${path} failed: ${detail}`);
      }
      if (match !== undefined) this.record(match.route, match.params, query, caller, answer);
      if (res.headersSent) res.destroy();
      else sendRegistryError(req, res, answer);
      return;
    }
    if (reply.changed !== undefined) this.record(match.route, match.params, query, caller, reply.changed);
    try {
      await sendReply(req, res, reply);
    } catch {
      res.destroy(); // the client went away mid-blob
    }
  }

  /**
   * Appends a mutating call to the audit log: `ok` with what it changed, `denied` for a 401/403,
   * else `failed` with the message its caller was answered. Reads are not recorded.
   */
  private record(
    route: RegistryRoute,
    params: Readonly<Record<string, string>>,
    query: URLSearchParams,
    caller: Caller | undefined,
    outcome: string | RegistryError,
  ): void {
    if (route.audit === undefined || this.options.audit === undefined) return;
    const { action, target } = route.audit(params, query);
    const result =
      typeof outcome === 'string'
        ? 'ok'
        : outcome.status === 401 || outcome.status === 403
          ? 'denied'
          : 'failed';
    try {
      this.options.audit.append({
        actor: caller?.name ?? ANONYMOUS,
        action,
        target: auditTarget(target),
        result,
        detail: typeof outcome === 'string' ? outcome : outcome.message,
      });
    } catch (err) {
      this.options.log(`kiln registry: recording ${action} in the audit log failed: ${String(err)}`);
    }
  }
}

function unrouted(method: string, path: string, matches: readonly { route: RegistryRoute }[]): RegistryError {
  if (matches.length === 0) {
    return new RegistryError(
      404,
      'NAME_UNKNOWN',
      `no registry route ${method} ${path.slice(0, 200)}: the routes are listed in docs/api.md`,
    );
  }
  const allow = [...new Set(matches.map((m) => m.route.method))].join(', ');
  return new RegistryError(
    405,
    'UNSUPPORTED',
    `${path.slice(0, 200)} answers ${allow}, not ${method}: kiln's registry deletes nothing`,
    undefined,
    { allow },
  );
}
