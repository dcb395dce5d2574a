/**
 * The chaos monkey, in the control plane: it terminates instances, on a schedule for services that
 * opted in (as Netflix's Chaos Monkey does) or on demand, and measures each recovery. kiln recovers
 * by replacement, never repair, so every termination records how long until the controller noticed
 * (the instance's exit or stop event) and how long until a healthy replacement served, and the
 * requests clients saw fail in between (the router's per-service totals).
 */
import { ValidationError } from '../errors/index.js';
import { viewOf } from '../fleet/index.js';
import type { RuntimeDriver } from '../runtime/index.js';
import type { ChaosSpec } from '../spec/index.js';
import type { ChaosRunRecord, ChaosTerminationRecord, StateStore } from '../state/index.js';
import { chooseVictim, inWindow, nextTermination, outageCheck } from './schedule.js';

/** What a termination does to its victim. */
export type ChaosMode = 'kill' | 'stop' | 'corrupt' | 'partition';

/** Client-side totals of one service (the router's). */
export interface ServiceTotalsLike {
  readonly service: string;
  readonly requests: number;
  readonly failed: number;
}

/** What the monkey needs. */
export interface ChaosMonkeyOptions {
  readonly store: StateStore;
  readonly driver: RuntimeDriver;
  /** The router's per-service totals. */
  readonly totals: () => Promise<readonly ServiceTotalsLike[]>;
  /** @default Date.now */
  readonly clock?: () => number;
  /** @default Math.random */
  readonly random?: () => number;
  readonly log?: (line: string) => void;
  /** How often the schedule is checked. @default 1 s */
  readonly tickMs?: number;
  /** How long a recovery is watched before it is recorded as not recovered. @default 60 s */
  readonly watchMs?: number;
}

/** An on-demand run. */
export interface ChaosRunInput {
  /** One service, or every service that opted in. */
  readonly service?: string;
  readonly kills: number;
  readonly intervalMs: number;
  readonly mode: ChaosMode;
  /** Only record what would be terminated. */
  readonly dryRun: boolean;
  readonly actor: string;
}

/** How often the watcher looks for a recovery. */
const WATCH_EVERY_MS = 10;
/** The window the outage checker judges the error ratio over. */
export const OUTAGE_WINDOW_MS = 10_000;

/** Runs chaos: see the module comment. `start()` begins the schedule; `run()` starts an on-demand run. */
export class ChaosMonkey {
  readonly #o: ChaosMonkeyOptions;
  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #log: (line: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #work = new Set<Promise<unknown>>();
  /** Per service: when the schedule lets it act next. */
  readonly #next = new Map<string, number>();
  /** Per service: recent totals, for the outage checker. */
  readonly #history = new Map<string, { at: number; requests: number; failed: number }[]>();
  /** Replacements already credited to a termination. */
  readonly #claimed = new Set<string>();

  constructor(options: ChaosMonkeyOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#log = options.log ?? (() => {});
  }

  /** Checks the schedule every `tickMs`. */
  start(): void {
    // A run a previous control plane was carrying out when it stopped will not go on: say so.
    for (const run of this.#o.store.chaos.listRuns(100).filter((r) => r.phase === 'running')) {
      this.#o.store.chaos.finishRun(run.id, {
        phase: 'failed',
        message: 'stopped: the control plane stopped during the run',
      });
    }
    const tick = () => {
      if (this.#closed) return;
      this.#track(this.tick())
        .catch((err: unknown) => this.#log(`chaos: ${err instanceof Error ? err.message : String(err)}`))
        .finally(() => {
          if (!this.#closed) this.#timer = setTimeout(tick, this.#o.tickMs ?? 1000);
        });
    };
    this.#timer = setTimeout(tick, this.#o.tickMs ?? 1000);
  }

  /** Stops the schedule; runs in progress are ended and recoveries still watched are recorded. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    while (this.#work.size) await Promise.allSettled([...this.#work]);
  }

  /** One look at the schedule: each opted-in service whose time has come loses one instance (or, leashed, would). */
  async tick(): Promise<void> {
    const now = this.#clock();
    await this.#sample(now);
    for (const service of this.#o.store.services.list().map((s) => s.name)) {
      const chaos = this.chaosOf(service);
      if (!chaos?.enabled) {
        this.#next.delete(service);
        continue;
      }
      if (!inWindow(chaos.schedule, now)) {
        // Drawn afresh once the window opens, so the first kill of a day is no more predictable than any.
        this.#next.delete(service);
        continue;
      }
      const last = this.#o.store.chaos.lastTermination(service);
      const lastMs = last ? Date.parse(last.startedAt) : undefined;
      if (!this.#next.has(service))
        this.#next.set(service, nextTermination(chaos, lastMs, now, this.#random));
      if (now < this.#next.get(service)!) continue;
      this.#next.set(service, nextTermination(chaos, now, now, this.#random));
      try {
        await this.terminate(service, chaos.mode, { dryRun: chaos.leashed, chaos });
      } catch (err) {
        // One service's failure (a mode this runtime lacks, say) must not stop the others' schedules.
        this.#log(`chaos: ${service}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** The service's chaos config, as last declared (deploying records it; it is no part of a release). */
  chaosOf(service: string): ChaosSpec | undefined {
    const declared = this.#o.store.services.find(service)?.spec as { chaos?: ChaosSpec } | undefined;
    return declared?.chaos;
  }

  /** Starts an on-demand run and returns its record; the kills go on in the background. */
  run(input: ChaosRunInput): ChaosRunRecord {
    checkMode(input.mode);
    const { store } = this.#o;
    const services = input.service
      ? [input.service]
      : store.services
          .list()
          .map((s) => s.name)
          .filter((s) => this.chaosOf(s)?.enabled);
    if (input.service && !store.services.find(input.service)) {
      throw new ValidationError(undefined, [
        {
          path: 'service',
          message: `no service "${input.service}" has been deployed`,
          fix: 'name a deployed service (kiln status)',
        },
      ]);
    }
    if (services.length === 0) {
      throw new ValidationError(undefined, [
        {
          path: 'service',
          message: 'no service opted in to chaos',
          fix: 'name a service, or set chaos: { enabled: true } on one',
        },
      ]);
    }
    const run = store.chaos.createRun({
      ...(input.service ? { service: input.service } : {}),
      mode: input.mode,
      kills: input.kills,
      intervalMs: input.intervalMs,
      dryRun: input.dryRun,
      createdBy: input.actor,
      message: `${input.dryRun ? 'dry run: would terminate' : 'terminating'} ${input.kills} instance(s) of ${services.join(', ')} by ${input.mode}, one every ${input.intervalMs} ms`,
    });
    store.events.append({
      kind: 'chaos.run-started',
      subject: run.id,
      reason: input.mode,
      message: run.message,
    });
    this.#track(this.#runKills(run, services, input));
    return run;
  }

  async #runKills(run: ChaosRunRecord, services: readonly string[], input: ChaosRunInput): Promise<void> {
    const { store } = this.#o;
    const before = await this.#totalsOf(services);
    const watches: Promise<unknown>[] = [];
    let message = `${input.kills} termination(s) done`;
    try {
      let k = 0;
      for (; k < input.kills; k++) {
        if (k > 0) await sleep(input.intervalMs);
        if (this.#closed) break;
        const service = services[k % services.length]!;
        const chaos = this.chaosOf(service);
        const t = await this.terminate(service, input.mode, {
          dryRun: input.dryRun,
          runId: run.id,
          ...(chaos ? { chaos } : {}),
        });
        if (t.watch) watches.push(t.watch);
      }
      await Promise.allSettled(watches);
      if (k < input.kills)
        message = `stopped: the chaos monkey closed after ${k} of ${input.kills} termination(s)`;
    } catch (err) {
      message = `stopped: ${err instanceof Error ? err.message : String(err)}`;
    }
    const after = await this.#totalsOf(services);
    // Totals that went backwards (the router restarted) must not make failed exceed requests.
    const requests = Math.max(0, after.requests - before.requests);
    const done = store.chaos.finishRun(run.id, {
      phase: message.startsWith('stopped') ? 'failed' : 'done',
      message,
      requests,
      failed: Math.min(requests, Math.max(0, after.failed - before.failed)),
    });
    store.events.append({ kind: 'chaos.run-finished', subject: run.id, reason: done.phase, message });
    this.#log(`chaos run ${run.id}: ${message}`);
  }

  /**
   * Terminates one instance of `service` (or, with `dryRun`, records which it would), unless the
   * outage checker or the minimum of healthy instances holds it back. Returns the record and, for
   * a real termination, a promise that settles once its recovery was recorded.
   */
  async terminate(
    service: string,
    mode: ChaosMode,
    options: { readonly dryRun: boolean; readonly runId?: string; readonly chaos?: ChaosSpec },
  ): Promise<{ record: ChaosTerminationRecord; watch?: Promise<void> }> {
    checkMode(mode);
    const { store, driver } = this.#o;
    const now = this.#clock();
    const base = {
      service,
      mode,
      dryRun: options.dryRun,
      ...(options.runId ? { runId: options.runId } : {}),
    };
    const record = (
      outcome: 'terminated' | 'would-terminate' | 'held' | 'skipped',
      instance: string,
      reason: string,
    ) => {
      const r = store.chaos.recordTermination({
        ...base,
        instance,
        outcome,
        reason,
        startedAt: new Date(now).toISOString(),
      });
      store.events.append({
        kind: `chaos.${outcome}`,
        service,
        subject: instance || undefined,
        reason: mode,
        message: reason,
      });
      this.#log(`chaos: ${service}: ${reason}`);
      return r;
    };
    const rolloutActive = viewOf(store, service, now).active !== undefined;
    const recent = this.#recent(service, now);
    const check = outageCheck({
      rolloutActive,
      ...recent,
      errorThreshold: options.chaos?.errorThreshold ?? 0.01,
    });
    if (!check.ok) return { record: record('held', '', `held: ${check.reason}`) };
    const instances = store.instances
      .list({ service })
      .filter((i) => i.state === 'healthy' || i.state === 'starting')
      .map((i) => ({ id: i.id, healthy: i.state === 'healthy' }));
    const choice = chooseVictim(instances, options.chaos?.minHealthy ?? 1, this.#random);
    if (!choice.victim) return { record: record('skipped', '', `skipped: ${choice.reason}`) };
    const victim = choice.victim;
    if (options.dryRun) {
      const why = options.runId ? 'dry run' : 'leashed';
      return { record: record('would-terminate', victim, `would ${mode} ${victim} (${why})`) };
    }
    const start = (await this.#totalsOf([service])).failed;
    const seq = store.events.lastSeq();
    // kill: SIGKILL to every process of the instance; stop: SIGTERM, which its init passes on so
    // the service can end gracefully. Either way the controller learns of it from the exit. The
    // record follows the signal, so it never claims a termination that did not happen.
    try {
      await (mode === 'kill' ? driver.kill(victim, 'SIGKILL') : driver.kill(victim, 'SIGTERM'));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      record('skipped', victim, `skipped: could not ${mode} ${victim}: ${why}`);
      throw err;
    }
    const t = record('terminated', victim, `${mode} ${victim}`);
    const watch = this.#track(
      this.#watch(t, start, seq).catch((err: unknown) =>
        this.#log(`chaos: watching ${victim}: ${err instanceof Error ? err.message : String(err)}`),
      ),
    );
    return { record: t, watch };
  }

  /**
   * Waits for the controller to notice and a healthy replacement to serve, and records both. It
   * reads the service's events after the termination, in order: the victim's exit (or stop, or
   * failed health check) is the detection, and the first `instance.healthy` of an instance started
   * since, not already credited to another termination, is the recovery.
   */
  async #watch(t: ChaosTerminationRecord, failedAtStart: number, seq: number): Promise<void> {
    const { store } = this.#o;
    const deadline = Date.parse(t.startedAt) + (this.#o.watchMs ?? 60_000);
    const gone = new Set(['instance.exited', 'instance.stopped', 'instance.unhealthy']);
    let detectedAt: string | undefined;
    for (;;) {
      for (const e of store.events.since(seq, { service: t.service, limit: 1000 })) {
        seq = e.seq;
        if (!detectedAt && e.subject === t.instance && gone.has(e.kind)) detectedAt = e.at;
        if (
          e.kind !== 'instance.healthy' ||
          !e.subject ||
          e.subject === t.instance ||
          this.#claimed.has(e.subject)
        )
          continue;
        const created = store.instances.find(e.subject)?.createdAt;
        if (created === undefined || created < t.startedAt) continue;
        this.#claimed.add(e.subject);
        const failed = (await this.#totalsOf([t.service])).failed - failedAtStart;
        store.chaos.updateTermination(t.id, {
          ...(detectedAt ? { detectedAt } : {}),
          recoveredAt: e.at,
          replacement: e.subject,
          failedRequests: Math.max(0, failed),
        });
        return;
      }
      if (this.#clock() > deadline || this.#closed) {
        store.chaos.updateTermination(t.id, detectedAt ? { detectedAt } : {});
        return;
      }
      await sleep(WATCH_EVERY_MS);
    }
  }

  async #totalsOf(services: readonly string[]): Promise<{ requests: number; failed: number }> {
    const all = await this.#o.totals().catch(() => [] as ServiceTotalsLike[]);
    return all
      .filter((t) => services.includes(t.service))
      .reduce((s, t) => ({ requests: s.requests + t.requests, failed: s.failed + t.failed }), {
        requests: 0,
        failed: 0,
      });
  }

  /** Keeps the last OUTAGE_WINDOW_MS of totals per service. */
  async #sample(now: number): Promise<void> {
    const all = await this.#o.totals().catch(() => [] as ServiceTotalsLike[]);
    for (const t of all) {
      const h = (this.#history.get(t.service) ?? []).filter((x) => now - x.at <= OUTAGE_WINDOW_MS);
      h.push({ at: now, requests: t.requests, failed: t.failed });
      this.#history.set(t.service, h);
    }
  }

  /** Requests and failures of the service over the outage window. */
  #recent(service: string, now: number): { requests: number; failed: number } {
    const h = (this.#history.get(service) ?? []).filter((x) => now - x.at <= OUTAGE_WINDOW_MS);
    if (h.length < 2) return { requests: 0, failed: 0 };
    return { requests: h.at(-1)!.requests - h[0]!.requests, failed: h.at(-1)!.failed - h[0]!.failed };
  }

  #track<T>(p: Promise<T>): Promise<T> {
    const tracked = p.finally(() => this.#work.delete(tracked));
    this.#work.add(tracked);
    return tracked;
  }
}

/** `corrupt` and `partition` need what this runtime does not give an instance yet; say so plainly. */
function checkMode(mode: ChaosMode): void {
  if (mode === 'kill' || mode === 'stop') return;
  const why =
    mode === 'corrupt'
      ? 'instances run from a read-only root shared by every instance of a digest, so there is no per-instance root to change; it arrives with drift detection ("Known state")'
      : 'instances share the host network (each on its own loopback port), so there is no namespace of their own to cut';
  throw new ValidationError(undefined, [
    { path: 'mode', message: `mode ${mode} is not available: ${why}`, fix: 'use --mode kill or --mode stop' },
  ]);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
