/**
 * Debugging sessions (`kiln exec`) and what they do to known state. Opening one taints its
 * instance at once (reason `ExecDetected`, an `exec.started` event): whatever the shell does, the
 * instance is no longer known to be its release. Its replacement is held while the session is open
 * and for the service's `drift.execGrace` after it ends, so the person debugging keeps the instance
 * they are looking at; then the instance is replaced (unless `drift.action` is `alert`).
 *
 * A session is open while its client heartbeats: one not heard from for `ttlMs` (the CLI died, the
 * network went) counts as ended at its last heartbeat, so no session holds a replacement forever.
 * Sessions live in the control plane's memory; a control plane restarted while an exec-tainted
 * instance is still running gives it one grace period from the restart, then replaces it.
 */
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError } from '../errors/index.js';
import { parseDuration } from '../spec/index.js';
import type { StateStore } from '../state/index.js';
import { driftAction } from './drift.js';

/** The taint reason of an instance someone ran a command in. */
export const EXEC_DETECTED = 'ExecDetected';
/** How often a client says its session is still open. */
export const DEFAULT_EXEC_HEARTBEAT_MS = 5_000;
/** A session not heard from for this long has ended (at its last heartbeat). */
export const DEFAULT_EXEC_SESSION_TTL_MS = 30_000;
/** The grace after a session ends when the service's spec names none (the spec's default, `1m`). */
export const DEFAULT_EXEC_GRACE_MS = 60_000;
/** How often held instances are looked at to replace those whose grace is over. */
export const EXEC_SWEEP_MS = 250;

/** One session, as the plane reports it. */
export interface ExecSession {
  readonly id: string;
  readonly instance: string;
  readonly service: string;
  readonly actor: string;
  readonly command: readonly string[];
  readonly openedAt: number;
  /** The last heartbeat (the opening counts as one). */
  readonly lastSeen: number;
  /** When it ended: told by its client, or its last heartbeat once `ttlMs` passed without one. */
  readonly endedAt?: number;
  readonly state: 'open' | 'ended' | 'expired';
  readonly exitCode?: number;
  /** The instance's grace after the session ends, from its service's `drift.execGrace`. */
  readonly graceMs: number;
  /** False when the service's `drift.action` is `alert`: the taint is only reported. */
  readonly replace: boolean;
}

/** Options of {@link ExecSessions}. */
export interface ExecSessionsOptions {
  readonly store: StateStore;
  /** Taints an instance (the controller's `taint`); `replace` false only records it. */
  readonly taint: (id: string, reason: string, message: string, replace: boolean) => void;
  /** @default Date.now */
  readonly clock?: () => number;
  /** @default DEFAULT_EXEC_SESSION_TTL_MS */
  readonly ttlMs?: number;
  /** @default EXEC_SWEEP_MS */
  readonly sweepMs?: number;
  readonly log?: (line: string) => void;
}

/** The open and recently ended `kiln exec` sessions, and the replacements they hold. */
export class ExecSessions {
  readonly #o: ExecSessionsOptions;
  readonly #clock: () => number;
  readonly #sessions = new Map<string, { -readonly [K in keyof ExecSession]: ExecSession[K] }>();
  /** Instances held without a session of this process (found tainted by exec at start), until when. */
  readonly #restored = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: ExecSessionsOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
  }

  /** How long a session lasts without a heartbeat. */
  get ttlMs(): number {
    return this.#o.ttlMs ?? DEFAULT_EXEC_SESSION_TTL_MS;
  }

  /**
   * Holds the instances an earlier control plane left tainted by exec and not yet replaced for one
   * grace period from now, then sweeps every `sweepMs` until `close`.
   */
  start(): void {
    const now = this.#clock();
    for (const r of this.#o.store.instances.list()) {
      if (r.taint?.reason === EXEC_DETECTED && r.state !== 'tainted') {
        this.#restored.set(r.id, now + graceOf(this.#o.store, r.service));
      }
    }
    this.#timer = setInterval(() => this.sweep(), this.#o.sweepMs ?? EXEC_SWEEP_MS);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Opens a session of `actor` running `command` in live instance `instance`, and taints the
   * instance now (its replacement held). @throws NotFoundError for an unknown instance,
   * ConflictError for one that is stopping or stopped.
   */
  open(instance: string, actor: string, command: readonly string[]): ExecSession {
    const { store } = this.#o;
    const record = store.instances.find(instance);
    if (!record) throw new NotFoundError(`no instance '${instance}'; list them with kiln instances`);
    if (record.state === 'stopped' || record.state === 'draining') {
      throw new ConflictError(
        `instance ${instance} is ${record.state}; exec into a live one (kiln instances)`,
      );
    }
    const now = this.#clock();
    const session = {
      id: `exec-${randomBytes(6).toString('hex')}`,
      instance,
      service: record.service,
      actor,
      command: [...command],
      openedAt: now,
      lastSeen: now,
      state: 'open' as ExecSession['state'],
      graceMs: graceOf(store, record.service),
      replace: driftAction(store, record.service) === 'replace',
    };
    this.#sessions.set(session.id, session);
    const what = `${actor} ran ${JSON.stringify(command.join(' '))} in it (exec session ${session.id})`;
    this.#o.taint(
      instance,
      EXEC_DETECTED,
      `${instance} is no longer known to be its release: ${what}`,
      false,
    );
    store.events.append({
      kind: 'exec.started',
      service: record.service,
      subject: instance,
      reason: EXEC_DETECTED,
      message: `${what}; ${session.replace ? `replaced ${formatMs(session.graceMs)} after it ends` : 'drift.action is alert: it stays'}`,
      data: { session: session.id, actor },
    });
    this.#o.log?.(`exec: ${instance}: ${what}`);
    return { ...session };
  }

  /** Keeps session `id` open. @throws NotFoundError when it is unknown, ended or expired. */
  heartbeat(id: string): ExecSession {
    const s = this.#open(id);
    s.lastSeen = this.#clock();
    return { ...s };
  }

  /** Ends session `id` (again is fine): its instance's grace starts now. @throws NotFoundError when unknown. */
  end(id: string, exitCode?: number): ExecSession {
    this.#expire();
    const s = this.#sessions.get(id);
    if (!s)
      throw new NotFoundError(`no exec session ${id}: it ended more than a grace period ago, or never was`);
    if (s.state === 'open') {
      s.state = 'ended';
      s.endedAt = this.#clock();
      if (exitCode !== undefined) s.exitCode = exitCode;
      this.#ended(s, `ended${exitCode === undefined ? '' : ` (exit ${exitCode})`}`);
    }
    return { ...s };
  }

  /** The sessions of this control plane, open and ended ones still holding an instance. */
  list(): ExecSession[] {
    this.#expire();
    return [...this.#sessions.values()].map((s) => ({ ...s }));
  }

  /** True while instance `id` has a session open, or one ended less than its grace ago. */
  held(id: string): boolean {
    this.#expire();
    const now = this.#clock();
    if ((this.#restored.get(id) ?? 0) > now) return true;
    for (const s of this.#sessions.values()) {
      if (s.instance === id && (s.state === 'open' || s.endedAt! + s.graceMs > now)) return true;
    }
    return false;
  }

  /** Replaces the exec-tainted instances no longer held (and forgets their sessions). */
  sweep(): void {
    this.#expire();
    const { store, taint } = this.#o;
    const ids = new Set([...this.#restored.keys(), ...[...this.#sessions.values()].map((s) => s.instance)]);
    for (const id of ids) {
      if (this.held(id)) continue;
      this.#restored.delete(id);
      for (const [sid, s] of this.#sessions) if (s.instance === id) this.#sessions.delete(sid);
      const record = store.instances.find(id);
      if (!record || record.state === 'stopped' || record.state === 'tainted' || !record.taint) continue;
      if (driftAction(store, record.service) !== 'replace') continue;
      this.#o.log?.(`exec: ${id}: its grace is over; replacing it`);
      taint(id, record.taint.reason, record.taint.message, true);
    }
  }

  #open(id: string) {
    this.#expire();
    const s = this.#sessions.get(id);
    if (!s || s.state !== 'open') {
      throw new NotFoundError(
        `exec session ${id} is not open (${s ? s.state : 'unknown'}): a session not heard from for ${formatMs(this.ttlMs)} ends`,
      );
    }
    return s;
  }

  /** Ends the sessions whose client went quiet, at their last heartbeat. */
  #expire(): void {
    const now = this.#clock();
    for (const s of this.#sessions.values()) {
      if (s.state === 'open' && now - s.lastSeen >= this.ttlMs) {
        s.state = 'expired';
        s.endedAt = s.lastSeen;
        this.#ended(s, `expired: no heartbeat for ${formatMs(this.ttlMs)}`);
      }
    }
  }

  #ended(s: ExecSession, how: string): void {
    this.#o.store.events.append({
      kind: 'exec.ended',
      service: s.service,
      subject: s.instance,
      reason: s.state === 'expired' ? 'ExecExpired' : 'ExecEnded',
      message: `exec session ${s.id} of ${s.actor} in ${s.instance} ${how}`,
      data: { session: s.id, ...(s.exitCode === undefined ? {} : { exitCode: s.exitCode }) },
    });
  }
}

/** The service's `drift.execGrace` as last deployed, in ms. */
export function graceOf(store: StateStore, service: string): number {
  try {
    const grace = (store.services.get(service).spec as { drift?: { execGrace?: unknown } }).drift?.execGrace;
    if (typeof grace === 'number') return grace;
    if (typeof grace === 'string') return parseDuration(grace) ?? DEFAULT_EXEC_GRACE_MS;
  } catch {
    // not deployed through a declared service: the default
  }
  return DEFAULT_EXEC_GRACE_MS;
}

function formatMs(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
