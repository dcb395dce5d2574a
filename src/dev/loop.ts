/**
 * The restart loop of a dev session, over any {@link RuntimeDriver} (the fake in its tests). One
 * cycle at a time: stop the instance that runs, start a new one, probe it until it is healthy,
 * it exits, a newer change supersedes it, or the timeout passes. Changes that arrive during a
 * cycle are folded into the next one, so a burst of saves restarts once more, not once per save.
 */
import type { InstanceSpec, RuntimeDriver } from '../runtime/index.js';
import type { ChangeBatch } from './watch.js';

/** How one start of a dev instance ended. */
export type DevOutcome = 'healthy' | 'exited' | 'unhealthy' | 'superseded' | 'failed' | 'closed';

/** One start (the first) or restart of the dev instance. */
export interface DevCycle {
  /** 1 for the first start. */
  readonly n: number;
  readonly id: string;
  /** The changed paths that caused it (none for the first start). */
  readonly paths: readonly string[];
  readonly outcome: DevOutcome;
  /** From the first change seen (or the session's start) to the outcome, in milliseconds. */
  readonly ms: number;
  readonly exitCode?: number;
  readonly error?: string;
}

/** What a {@link DevLoop} works with. */
export interface DevLoopOptions {
  readonly driver: RuntimeDriver;
  /** The spec of the next instance (a new id each time). */
  readonly spec: () => InstanceSpec;
  /** One health probe of the instance. */
  readonly healthy: (id: string) => Promise<boolean>;
  /** Called once an instance has started (to follow its output, say). */
  readonly started?: (id: string) => Promise<void> | void;
  readonly log: (line: string) => void;
  /** SIGTERM → SIGKILL grace when an instance is stopped. */
  readonly graceMs: number;
  readonly healthTimeoutMs: number;
  readonly probeEveryMs: number;
  /** @default performance.now */
  readonly now?: () => number;
  /** @default setTimeout as a promise */
  readonly sleep?: (ms: number) => Promise<void>;
}

type LoopState = 'idle' | 'cycling' | 'closed';

/** Restarts a dev instance on changes; see the module's comment. */
export class DevLoop {
  readonly #o: DevLoopOptions;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #cycles: DevCycle[] = [];
  readonly #exits = new Map<string, number | undefined>();
  readonly #unsubscribe: () => void;
  #state: LoopState = 'idle';
  #current: string | undefined;
  #healthy = false;
  #pending: { batch: ChangeBatch; waiters: ((o: DevOutcome) => void)[] } | undefined;
  #running: Promise<void> | undefined;

  constructor(options: DevLoopOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.#unsubscribe = options.driver.onExit((status) => {
      this.#exits.set(status.id, status.exitCode);
      if (status.id === this.#current && this.#healthy) {
        this.#o.log(
          `${status.id} exited${status.exitCode === undefined ? '' : ` with code ${status.exitCode}`}; it restarts on the next change`,
        );
      }
    });
  }

  /** Every cycle so far, oldest first. */
  get cycles(): readonly DevCycle[] {
    return this.#cycles;
  }

  /** Asks for a (re)start; resolves with the outcome of the cycle that carries this change. */
  change(batch: ChangeBatch): Promise<DevOutcome> {
    if (this.#state === 'closed') return Promise.resolve('closed');
    return new Promise((resolve) => {
      const pending = this.#pending;
      this.#pending = pending
        ? {
            batch: {
              paths: [...new Set([...pending.batch.paths, ...batch.paths])].sort(),
              firstAt: Math.min(pending.batch.firstAt, batch.firstAt),
            },
            waiters: [...pending.waiters, resolve],
          }
        : { batch, waiters: [resolve] };
      this.#kick();
    });
  }

  /** Stops the instance; later changes do nothing. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    for (const w of this.#pending?.waiters ?? []) w('closed');
    this.#pending = undefined;
    await this.#running;
    await this.#stopCurrent();
    this.#unsubscribe();
  }

  #kick(): void {
    if (this.#state !== 'idle' || this.#pending === undefined) return;
    const { batch, waiters } = this.#pending;
    this.#pending = undefined;
    this.#state = 'cycling';
    this.#running = this.#cycle(batch)
      .then((outcome) => waiters.forEach((w) => w(outcome)))
      .finally(() => {
        if (this.#state === 'cycling') this.#state = 'idle';
        this.#running = undefined;
        this.#kick();
      });
  }

  async #cycle(batch: ChangeBatch): Promise<DevOutcome> {
    await this.#stopCurrent();
    if (this.#state === 'closed') return 'closed';
    const spec = this.#o.spec();
    const n = this.#cycles.length + 1;
    this.#current = spec.id;
    this.#healthy = false;
    const record = (outcome: DevOutcome, extra: Partial<DevCycle> = {}): DevOutcome => {
      const cycle: DevCycle = {
        n,
        id: spec.id,
        paths: batch.paths,
        outcome,
        ms: this.#now() - batch.firstAt,
        ...extra,
      };
      this.#cycles.push(cycle);
      this.#o.log(describeCycle(cycle, this.#o.healthTimeoutMs));
      return outcome;
    };
    try {
      await this.#o.driver.start(spec);
    } catch (err) {
      this.#current = undefined;
      return record('failed', { error: err instanceof Error ? err.message : String(err) });
    }
    await this.#o.started?.(spec.id);
    const outcome = await this.#waitHealthy(spec.id);
    this.#healthy = outcome === 'healthy';
    const exitCode = this.#exits.get(spec.id);
    return record(outcome, outcome === 'exited' && exitCode !== undefined ? { exitCode } : {});
  }

  async #waitHealthy(id: string): Promise<DevOutcome> {
    const deadline = this.#now() + this.#o.healthTimeoutMs;
    for (;;) {
      // Return early when going on is pointless: closing, the process gone, or a newer change.
      if (this.#state === 'closed') return 'closed';
      if (this.#exits.has(id)) return 'exited';
      if (this.#pending !== undefined) return 'superseded';
      if (await this.#o.healthy(id)) return this.#exits.has(id) ? 'exited' : 'healthy';
      if (this.#now() > deadline) return 'unhealthy';
      await this.#sleep(this.#o.probeEveryMs);
    }
  }

  async #stopCurrent(): Promise<void> {
    const id = this.#current;
    if (id === undefined) return;
    this.#current = undefined;
    this.#healthy = false;
    await this.#o.driver.stop(id, { graceMs: this.#o.graceMs }).catch((err: unknown) => {
      this.#o.log(`stopping ${id} failed: ${err instanceof Error ? err.message : String(err)}`);
    });
    this.#exits.delete(id);
  }
}

/** The line a cycle prints: what changed, and how it ended, with the time it took. */
export function describeCycle(cycle: DevCycle, healthTimeoutMs: number): string {
  const shown = cycle.paths.slice(0, 3).join(', ');
  const more = cycle.paths.length > 3 ? ` and ${cycle.paths.length - 3} more` : '';
  const what = cycle.n === 1 ? `started ${cycle.id}` : `${shown}${more} changed: restarted as ${cycle.id}`;
  const ms = `${Math.round(cycle.ms)} ms`;
  switch (cycle.outcome) {
    case 'healthy':
      return `${what}, healthy in ${ms}`;
    case 'exited':
      return `${what}, but it exited${cycle.exitCode === undefined ? '' : ` with code ${cycle.exitCode}`} before it was healthy (after ${ms}); it restarts on the next change`;
    case 'unhealthy':
      return `${what}, but it was not healthy within ${healthTimeoutMs} ms; it restarts on the next change`;
    case 'superseded':
      return `${what}, replaced by a newer change before it was healthy (${ms})`;
    case 'failed':
      return `${cycle.n === 1 ? '' : `${shown}${more} changed: `}${cycle.id} could not start: ${cycle.error ?? 'unknown error'}; it restarts on the next change`;
    case 'closed':
      return `${what}, stopped before it was healthy`;
  }
}
