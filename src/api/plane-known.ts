/**
 * The control plane's known-state and security operations, which `FleetPlane` hands to: `verify`
 * (a full check of instances against their releases, through the same {@link DriftWatch} as the
 * background check, so drift taints alike), audited `kiln exec` sessions over {@link ExecSessions},
 * and the per-service report `kiln audit` prints.
 */
import {
  DEFAULT_EXEC_HEARTBEAT_MS,
  driftAction,
  type DriftWatch,
  type ExecSession,
  type ExecSessions,
  type InstanceVerdict,
} from '../fleet/index.js';
import { OciStore } from '../oci/index.js';
import type { RuntimeDriver } from '../runtime/index.js';
import { ConflictError, NotFoundError, UnavailableError } from '../errors/index.js';
import type { StateStore } from '../state/index.js';
import { audited } from './audit.js';
import { securityReport } from './security-report.js';
import type {
  ExecEndRequest,
  ExecRequest,
  ExecSessionJson,
  InstanceVerdictJson,
  SecurityPlane,
  SecurityReportJson,
  VerifyJson,
  VerifyRequest,
} from './types.js';

/** Options of {@link KnownStatePlane}. */
export interface KnownStatePlaneOptions {
  readonly store: StateStore;
  readonly driver: RuntimeDriver;
  readonly drift: DriftWatch;
  readonly sessions: ExecSessions;
  /** The project's image store (`.kiln/store`) and keys (`.kiln/keys`), for the report. */
  readonly imageStore: string;
  readonly keysDir: string;
  /** @default Date.now */
  readonly clock?: () => number;
}

/** {@link SecurityPlane} over the drift watch, the exec sessions and the image store. */
export class KnownStatePlane implements SecurityPlane {
  readonly #o: KnownStatePlaneOptions;
  readonly #clock: () => number;

  constructor(options: KnownStatePlaneOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
  }

  async verify(request: VerifyRequest): Promise<VerifyJson> {
    const { store } = this.#o;
    let ids: string[] | undefined;
    if (request.instance !== undefined) {
      const record = store.instances.get(request.instance);
      if (record.state === 'stopped' || record.state === 'draining') {
        throw new ConflictError(`instance ${record.id} is ${record.state}: only live instances are verified`);
      }
      if (request.service !== undefined && record.service !== request.service) {
        throw new NotFoundError(`instance ${record.id} is of ${record.service}, not ${request.service}`);
      }
      ids = [record.id];
    } else if (request.service !== undefined) {
      if (!store.services.find(request.service)) {
        throw new NotFoundError(`no service "${request.service}" has been deployed`);
      }
      ids = store.instances.list({ service: request.service }).map((i) => i.id);
    }
    const verdicts = await this.#o.drift.check({ ...(ids ? { ids } : {}), full: true, act: true });
    const instances = verdicts.map((v) => this.#verdictJson(v));
    const count = (verdict: InstanceVerdictJson['verdict']) =>
      instances.filter((i) => i.verdict === verdict).length;
    return {
      checkedAt: new Date(this.#clock()).toISOString(),
      instances,
      clean: count('clean'),
      drifted: count('drifted'),
      unverified: count('unverified'),
    };
  }

  #verdictJson(v: InstanceVerdict): InstanceVerdictJson {
    const { store, sessions } = this.#o;
    const taint = store.instances.find(v.id)?.taint;
    const action =
      driftAction(store, v.service) === 'alert' ? 'alert' : sessions.held(v.id) ? 'held' : 'replace';
    return {
      id: v.id,
      service: v.service,
      release: v.release,
      digest: v.digest,
      verdict: v.error !== undefined ? 'unverified' : v.ok ? 'clean' : 'drifted',
      files: v.files.map((f) => ({ ...f })),
      process: [...v.process],
      ...(v.error !== undefined ? { error: v.error } : {}),
      ...(v.manifest !== undefined ? { manifest: v.manifest } : {}),
      ...(taint ? { action, taint: { ...taint } } : {}),
    };
  }

  async execOpen(instance: string, request: ExecRequest, actor: string): Promise<ExecSessionJson> {
    const { store, driver, sessions } = this.#o;
    return audited(
      store.audit,
      actor,
      'exec',
      instance,
      async () => {
        store.instances.get(instance);
        if (!driver.execCommand) throw new UnavailableError('this runtime driver cannot exec into instances');
        const argv = await driver.execCommand(instance, request.command, { tty: request.tty ?? false });
        return { ...this.#sessionJson(sessions.open(instance, actor, request.command)), argv };
      },
      (s) => `session ${s.session}: ${JSON.stringify(s.command)}${request.tty ? ' (tty)' : ''}`,
    );
  }

  async execHeartbeat(session: string): Promise<ExecSessionJson> {
    // Not audited: it changes nothing but the session's expiry; the opening and end are.
    return this.#sessionJson(this.#o.sessions.heartbeat(session));
  }

  async execEnd(session: string, request: ExecEndRequest, actor: string): Promise<ExecSessionJson> {
    const { store, sessions } = this.#o;
    const target = sessions.list().find((s) => s.id === session)?.instance ?? session;
    return audited(
      store.audit,
      actor,
      'exec.end',
      target,
      async () => this.#sessionJson(sessions.end(session, request.exitCode)),
      (s) =>
        `session ${s.session} ${s.state}${s.exitCode === undefined ? '' : `, exit ${s.exitCode}`}; ` +
        (s.replace
          ? `${s.instance} is replaced ${s.graceMs} ms after`
          : `${s.instance} stays (drift.action alert)`),
    );
  }

  async securityReport(): Promise<SecurityReportJson> {
    return securityReport({
      store: this.#o.store,
      images: await OciStore.open(this.#o.imageStore),
      keysDir: this.#o.keysDir,
      now: this.#clock(),
    });
  }

  #sessionJson(s: ExecSession): ExecSessionJson {
    return {
      session: s.id,
      instance: s.instance,
      service: s.service,
      actor: s.actor,
      command: [...s.command],
      state: s.state,
      openedAt: new Date(s.openedAt).toISOString(),
      ...(s.endedAt !== undefined ? { endedAt: new Date(s.endedAt).toISOString() } : {}),
      ...(s.exitCode !== undefined ? { exitCode: s.exitCode } : {}),
      heartbeatMs: Math.min(DEFAULT_EXEC_HEARTBEAT_MS, Math.floor(this.#o.sessions.ttlMs / 3)),
      expiresAfterMs: this.#o.sessions.ttlMs,
      graceMs: s.graceMs,
      replace: s.replace,
    };
  }
}

/** What `FleetPlane` answers without a {@link KnownStatePlane}: 503 for each call. */
export const UNAVAILABLE_SECURITY: SecurityPlane = (() => {
  const refuse = async (): Promise<never> => {
    throw new UnavailableError('this control plane runs without known-state checks (verify, exec, audit)');
  };
  return { verify: refuse, execOpen: refuse, execHeartbeat: refuse, execEnd: refuse, securityReport: refuse };
})();
