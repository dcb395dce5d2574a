/**
 * The controller's live view of its instances: what each runs, its lifecycle phase, and when it is
 * probed next. Health probes run here, off the reconcile pass: an instance that is starting is
 * probed every {@link STARTING_PROBE_MS} so it serves as soon as it answers; a running one at its
 * service's `health.interval`. A phase change is written to the state store and reported, so the
 * loop reconciles at once.
 */
import type { HealthSpec } from '../spec/index.js';
import { releaseName, type InstanceRecord, type InstanceRole, type StateStore } from '../state/index.js';
import { probe as defaultProbe, type ExecProbe } from './health.js';
import { transition, type InstanceHealth } from './lifecycle.js';
import type { InstancePhase, ObservedInstance } from './types.js';

/** How often a starting instance is probed until it first answers: 20 ms. */
export const STARTING_PROBE_MS = 20;

/** Checks one instance once; true when healthy. Never throws. */
export type Prober = (
  target: { readonly id: string; readonly host: string; readonly port: number },
  health: HealthSpec,
  exec: ExecProbe,
) => Promise<boolean>;

/** The real prober: HTTP, TCP or exec, as the service's health spec says. */
export const liveProber: Prober = (target, health, exec) =>
  defaultProbe(health, target.host, target.port, exec);

/** One instance as the controller tracks it. */
export interface Tracked {
  readonly id: string;
  readonly service: string;
  readonly release: string;
  readonly role?: InstanceRole;
  readonly port: number;
  /** Where the instance is reached when not the controller's host (a Swarm node); follows reschedules. */
  host?: string;
  readonly health: HealthSpec;
  /** A stateful identity's ordinal. */
  readonly ordinal?: number;
  /** A stateful service's `ready` check, run after the instance is healthy until it passes once. */
  readonly ready?: HealthSpec;
  /** The `ready` check has passed (true from the start when there is none). */
  readyPassed: boolean;
  state: InstanceHealth;
  nextProbe: number;
  probing: boolean;
  /** Set once the controller decided to stop it; the stop runs in the background. */
  stopping?: Promise<void>;
  /** The instance became healthy at least once (an exit before that counts as a crash loop). */
  everHealthy: boolean;
  /** It was healthy when it was tainted, so it was serving. */
  wasServing?: boolean;
}

/** Options of {@link InstanceTracker}. */
export interface TrackerOptions {
  readonly store: StateStore;
  readonly host: string;
  readonly clock: () => number;
  readonly prober: Prober;
  readonly exec: (id: string) => ExecProbe;
  /**
   * Called when an instance's phase changed, or (with `phaseChanged` false) when it became ready;
   * the controller records phase changes as events and reconciles.
   */
  readonly changed: (instance: Tracked, from: InstancePhase, phaseChanged?: boolean) => void;
}

/** The tracked instances, keyed by id. */
export class InstanceTracker {
  readonly #options: TrackerOptions;
  readonly #byId = new Map<string, Tracked>();

  constructor(options: TrackerOptions) {
    this.#options = options;
  }

  get(id: string): Tracked | undefined {
    return this.#byId.get(id);
  }

  all(): Tracked[] {
    return [...this.#byId.values()];
  }

  /** Starts tracking an instance from its record (a new one, or one adopted after a restart). */
  track(record: InstanceRecord, health: HealthSpec, ready?: HealthSpec): Tracked {
    const now = this.#options.clock();
    const phase: InstancePhase = record.state === 'stopped' ? 'stopped' : record.state;
    const tracked: Tracked = {
      id: record.id,
      service: record.service,
      release: releaseName(record.release),
      ...(record.role ? { role: record.role } : {}),
      port: record.port ?? 0,
      health,
      ...(record.ordinal === undefined ? {} : { ordinal: record.ordinal }),
      ...(ready ? { ready } : {}),
      readyPassed: ready === undefined,
      state: { phase, failures: record.health.failures, since: Date.parse(record.stateSince) || now },
      nextProbe: now,
      probing: false,
      everHealthy: phase === 'healthy' || phase === 'unhealthy',
    };
    this.#byId.set(record.id, tracked);
    return tracked;
  }

  untrack(id: string): void {
    this.#byId.delete(id);
  }

  /** The planner's view: every tracked instance that has not stopped. */
  observed(): ObservedInstance[] {
    return this.all()
      .filter((t) => t.state.phase !== 'stopped')
      .map((t) => ({
        id: t.id,
        service: t.service,
        release: t.release,
        phase: t.state.phase,
        since: t.state.since,
        ...(t.role ? { role: t.role } : {}),
        ...(t.ordinal === undefined ? {} : { ordinal: t.ordinal }),
        ...(t.stopping ? { stopping: true } : {}),
        ...(t.ready ? { ready: t.readyPassed } : {}),
        ...(t.state.phase === 'tainted' && t.wasServing ? { wasServing: true } : {}),
      }));
  }

  /** Applies a lifecycle event; writes the new phase to the store and reports it when it changed. */
  apply(t: Tracked, event: Parameters<typeof transition>[1]): void {
    const now = this.#options.clock();
    const before = t.state;
    const after = transition(before, event, t.health.threshold, now);
    if (after === before) return;
    t.state = after;
    if (after.phase === 'healthy') t.everHealthy = true;
    if (after.phase === 'tainted') t.wasServing = before.phase === 'healthy';
    if (after.phase === before.phase && event.type !== 'probe') return;
    const checked = event.type === 'probe';
    if (after.phase !== 'stopped') {
      const status = after.phase === 'healthy' ? 'passing' : after.failures > 0 ? 'failing' : 'unknown';
      const record = this.#options.store.instances.find(t.id);
      if (record && record.state !== 'stopped') {
        this.#options.store.instances.update(t.id, {
          state: after.phase,
          ...(checked || after.phase !== before.phase
            ? {
                health: {
                  status,
                  failures: after.failures,
                  checkedAt: new Date(now).toISOString(),
                },
              }
            : {}),
        });
      }
    }
    if (after.phase !== before.phase) this.#options.changed(t, before.phase);
  }

  /** Launches the probes that are due; returns the earliest time one is due next. */
  probeDue(): number {
    const now = this.#options.clock();
    let next = Infinity;
    for (const t of this.#byId.values()) {
      if (!isProbed(t)) continue;
      if (!t.probing && t.nextProbe <= now) this.#probe(t);
      next = Math.min(next, t.nextProbe);
    }
    return next;
  }

  #probe(t: Tracked): void {
    t.probing = true;
    const { host, prober, exec, clock } = this.#options;
    const target = { id: t.id, host: t.host ?? host, port: t.port };
    void prober(target, t.health, exec(t.id))
      .catch(() => false)
      .then(async (ok) => {
        if (!isProbed(t)) return;
        try {
          this.apply(t, { type: 'probe', ok });
        } catch {
          // The record changed under us (stopped meanwhile): the next pass sees it.
        }
        if (t.ready && !t.readyPassed && t.state.phase === 'healthy') {
          const ready = await prober(target, t.ready, exec(t.id)).catch(() => false);
          if (ready && isProbed(t) && t.state.phase === 'healthy') this.#readied(t);
        }
      })
      .finally(() => {
        t.probing = false;
        const waiting = t.ready !== undefined && !t.readyPassed ? t.ready.interval : Infinity;
        t.nextProbe =
          clock() + (t.state.phase === 'starting' ? STARTING_PROBE_MS : Math.min(t.health.interval, waiting));
      });
  }

  /** The instance's `ready` check passed: recorded as an event and reported, so the update moves on. */
  #readied(t: Tracked): void {
    t.readyPassed = true;
    this.#options.store.events.append({
      kind: 'instance.ready',
      service: t.service,
      subject: t.id,
      reason: 'ready',
      message: `${t.id} (${t.release}) passed its ready check`,
    });
    this.#options.changed(t, t.state.phase, false);
  }
}

function isProbed(t: Tracked): boolean {
  return (
    !t.stopping &&
    (t.state.phase === 'starting' || t.state.phase === 'healthy' || t.state.phase === 'unhealthy')
  );
}
