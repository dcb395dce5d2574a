/**
 * Fixtures for the chaos monkey's tests (not exported from index.ts, not built): an in-memory
 * world with no controller, where the test plays the controller's part (an `onExit` listener
 * records the victim's exit and starts a healthy replacement) and the router's (per-service totals
 * it sets). The store and the monkey share one clock: a fixed Monday morning, moved on by hand,
 * plus the real time that passes, so that a watcher's deadline comes and recoveries take time.
 */
import { FakeRuntimeDriver, type InstanceStatus } from '../runtime/index.js';
import { serviceSchema, type ServiceInput } from '../spec/index.js';
import {
  IN_MEMORY,
  openState,
  type ChaosRunRecord,
  type ChaosTerminationRecord,
  type StateStore,
} from '../state/index.js';
import {
  ChaosMonkey,
  type ChaosMonkeyOptions,
  type ChaosRunInput,
  type ServiceTotalsLike,
} from './monkey.js';

export const ACTOR = 'alice';
export const DIGEST = `sha256:${'a'.repeat(64)}` as const;
export const CONFIG_HASH = `sha256:${'c'.repeat(64)}`;
/** Monday 5 January 2026, 10:00 UTC: inside the default schedule (9-17, Monday to Friday, UTC). */
export const MONDAY_10_ISO = '2026-01-05T10:00:00.000Z';
export const MONDAY_10 = Date.parse(MONDAY_10_ISO);
/** How long the simulated controller takes from a victim's exit to a healthy replacement. */
export const RECOVERY_MS = 40;
/** What clients see per termination, in the simulated router's totals. */
export const PER_KILL = { requests: 10, failed: 2 };
export const MINUTE = 60_000;

/** An on-demand run's input: by default one kill of `web`, by ACTOR. */
export function runInput(input: Partial<ChaosRunInput> = {}): ChaosRunInput {
  return { service: 'web', kills: 1, intervalMs: 0, mode: 'kill', dryRun: false, actor: ACTOR, ...input };
}

/** The time an ISO string names, in milliseconds; throws when it is absent. */
export function ms(iso: string | undefined): number {
  if (iso === undefined) throw new Error('expected a time, found none');
  return Date.parse(iso);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How the simulated controller reacts to an exit. */
export type Replace =
  | 'at-once'
  | 'never'
  /** No replacement, but `instance.healthy` again for the victim and for an instance older than the kill. */
  | 'stale'
  | { readonly afterMs: number };

/** A store, a fake runtime, the router's totals and a controller stand-in, all in memory. */
export class World {
  /** Time moved on by hand. */
  offset = 0;
  readonly base: number;
  readonly #t0 = Date.now();
  readonly store: StateStore;
  readonly driver = new FakeRuntimeDriver();
  /** The router's per-service totals; `totals()` returns them. */
  readonly counters = new Map<string, { requests: number; failed: number }>();
  /** What the controller stand-in does when an instance exits. */
  replace: Replace = 'at-once';
  /** Exits the controller stand-in heard of. */
  readonly exits: InstanceStatus[] = [];
  /** Errors in the controller stand-in (the fake driver swallows a listener's errors). */
  readonly errors: unknown[] = [];
  readonly logs: string[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #monkeys: ChaosMonkey[] = [];
  #port = 20_000;

  constructor(base = MONDAY_10) {
    this.base = base;
    this.store = openState(IN_MEMORY, { clock: () => new Date(this.now()) });
    this.driver.onExit((status) => {
      try {
        this.#exited(status);
      } catch (err) {
        this.errors.push(err);
      }
    });
  }

  readonly now = (): number => this.base + this.offset + (Date.now() - this.#t0);

  readonly totals = async (): Promise<ServiceTotalsLike[]> =>
    [...this.counters].map(([service, t]) => ({ service, ...t }));

  monkey(options: Partial<ChaosMonkeyOptions> = {}): ChaosMonkey {
    const m = new ChaosMonkey({
      store: this.store,
      driver: this.driver,
      totals: this.totals,
      clock: this.now,
      random: () => 0,
      log: (line) => this.logs.push(line),
      watchMs: 5_000,
      ...options,
    });
    this.#monkeys.push(m);
    return m;
  }

  /** Declares `name` (parsed, as deploying records it) with release r1 and `healthy` healthy instances running. */
  async seed(name: string, input: Partial<ServiceInput> = {}, healthy = 3): Promise<string[]> {
    const spec = serviceSchema.parse({ name, image: DIGEST, port: 8080, ...input });
    this.store.services.put(name, spec);
    this.store.releases.create({
      service: name,
      digest: DIGEST,
      configHash: CONFIG_HASH,
      spec: { service: spec },
      createdBy: 'test',
      reason: 'seed',
    });
    const ids: string[] = [];
    for (let i = 0; i < healthy; i++) ids.push(await this.healthy(name));
    return ids;
  }

  /** Records a new instance of r1, starts it on the driver, and marks it healthy with its event. */
  async healthy(service: string): Promise<string> {
    const rec = this.store.instances.create({ service, release: 1, port: this.#port++ });
    await this.driver.start({
      id: rec.id,
      service,
      release: 'r1',
      digest: DIGEST,
      args: ['/bin/serve'],
      env: {},
      port: rec.port!,
    });
    this.store.instances.update(rec.id, { state: 'healthy' });
    this.store.events.append({
      kind: 'instance.healthy',
      service,
      subject: rec.id,
      reason: 'HealthCheckPassed',
      message: `${rec.id} is healthy`,
    });
    return rec.id;
  }

  /** Records a healthy instance of r1 that the runtime does not run. */
  record(service: string, id: string): void {
    this.store.instances.create({ service, release: 1, id, port: this.#port++ });
    this.store.instances.update(id, { state: 'healthy' });
  }

  /** Starts a rollout of r1 and moves it to `progressing`. */
  rollout(service: string): void {
    const r = this.store.rollouts.create({ service, toRelease: 1, strategy: 'rolling' });
    this.store.rollouts.update(r.id, r.version, { phase: 'progressing' });
  }

  /** Starts an on-demand run (by default one kill of `web`) and waits for its end. */
  async run(monkey: ChaosMonkey, input: Partial<ChaosRunInput> = {}) {
    const started = monkey.run(runInput(input));
    const run = await ended(this.store, started.id);
    return { started, run, ts: this.store.chaos.terminations({ runId: run.id }) };
  }

  kills(): string[] {
    return this.driver.calls.filter((c) => c.startsWith('kill '));
  }

  async close(): Promise<void> {
    for (const m of this.#monkeys) await m.close();
    for (const t of this.#timers) clearTimeout(t);
    await this.driver.close();
    this.store.close();
  }

  /** The controller's part: the exit is recorded, clients see failures, a replacement serves. */
  #exited(status: InstanceStatus): void {
    this.exits.push(status);
    const rec = this.store.instances.find(status.id);
    if (!rec || rec.state === 'stopped') return;
    const t = this.counters.get(rec.service) ?? { requests: 0, failed: 0 };
    this.counters.set(rec.service, {
      requests: t.requests + PER_KILL.requests,
      failed: t.failed + PER_KILL.failed,
    });
    this.store.instances.update(rec.id, { state: 'stopped' });
    this.store.events.append({
      kind: 'instance.exited',
      service: rec.service,
      subject: rec.id,
      reason: 'Exited',
      message: `${rec.id} exited with code ${status.exitCode}`,
    });
    const replace = () => {
      this.offset += RECOVERY_MS;
      this.healthy(rec.service).catch((err: unknown) => this.errors.push(err));
    };
    if (this.replace === 'stale') {
      const older = this.store.instances.list({ service: rec.service }).find((i) => i.state === 'healthy');
      for (const id of [rec.id, older!.id]) {
        this.store.events.append({
          kind: 'instance.healthy',
          service: rec.service,
          subject: id,
          reason: 'HealthCheckPassed',
          message: `${id} is healthy`,
        });
      }
    } else if (this.replace === 'at-once') replace();
    else if (this.replace !== 'never') {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        replace();
      }, this.replace.afterMs);
      this.#timers.add(timer);
    }
  }
}

/** Waits until the run has ended. */
export async function ended(store: StateStore, id: string, timeoutMs = 5_000): Promise<ChaosRunRecord> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const run = store.chaos.getRun(id);
    if (run.phase !== 'running') return run;
    if (Date.now() > until) throw new Error(`chaos run ${id} still running after ${timeoutMs} ms`);
    await sleep(5);
  }
}

export const kinds = (store: StateStore) => store.events.since(0, { limit: 10_000 }).map((e) => e.kind);
export const outcomes = (ts: readonly ChaosTerminationRecord[]) => ts.map((t) => t.outcome);
