/**
 * The local driver's knowledge of which instances run and which exited, on top of the pid-level
 * {@link ExitWatcher}: who waits for an exit (stop, kill), and which exits are deliberate (a stop)
 * and so are not reported.
 */
import { ExitWatcher } from './exit-watch.js';
import type { InstanceRecord } from './instance-store.js';

interface Watched {
  readonly record: InstanceRecord;
  /** Set by `stop`: the exit that follows is deliberate and not reported. */
  stopping: boolean;
}

/** Tracks instances' init processes by instance id. */
export class InstanceExits {
  readonly #watcher: ExitWatcher;
  readonly #watched = new Map<string, Watched>();
  readonly #exits = new Map<string, number | undefined>();
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #onExit: (record: InstanceRecord, exitCode: number | undefined) => void;

  /** `onExit` hears of every exit except those of instances marked {@link stopping}. */
  constructor(
    onExit: (record: InstanceRecord, exitCode: number | undefined) => void,
    pollIntervalMs?: number,
  ) {
    this.#onExit = onExit;
    this.#watcher = new ExitWatcher((id, exit) => this.#exited(id, exit.exitCode), pollIntervalMs);
  }

  /** Starts watching the instance's init process. */
  watch(record: InstanceRecord, pid: number): void {
    this.#exits.delete(record.spec.id);
    this.#watched.set(record.spec.id, { record, stopping: false });
    this.#watcher.watch(record.spec.id, pid);
  }

  /** The pid of a watched instance that has not been seen to exit. */
  pidOf(id: string): number | undefined {
    return this.#watcher.pidOf(id);
  }

  /** Whether the instance was seen to exit; then {@link exitCodeOf} tells its code if known. */
  hasExited(id: string): boolean {
    return this.#exits.has(id);
  }

  /** The exit code seen for the instance, if it exited and the code could be read. */
  exitCodeOf(id: string): number | undefined {
    return this.#exits.get(id);
  }

  /** Marks the instance's coming exit as deliberate: it is not reported. */
  stopping(id: string): void {
    const watched = this.#watched.get(id);
    if (watched !== undefined) watched.stopping = true;
  }

  /** Signals a watched instance's init if it still runs; returns whether it was sent. */
  signal(id: string, signal: NodeJS.Signals): boolean {
    return this.#watcher.signal(id, signal);
  }

  /** Resolves true once the instance's exit is seen (at once if it is not watched), false after `ms`. */
  waitExit(id: string, ms: number): Promise<boolean> {
    if (this.#exits.has(id) || this.#watcher.pidOf(id) === undefined) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(id) ?? new Set<() => void>();
      this.#waiters.set(id, waiters);
      const settle = (exited: boolean): void => {
        clearTimeout(timer);
        waiters.delete(wake);
        if (waiters.size === 0 && this.#waiters.get(id) === waiters) this.#waiters.delete(id);
        resolve(exited);
      };
      const wake = (): void => settle(true);
      const timer = setTimeout(() => settle(false), ms);
      waiters.add(wake);
    });
  }

  /** Forgets everything about the instance (it was removed). */
  forget(id: string): void {
    this.#watcher.unwatch(id);
    this.#watched.delete(id);
    this.#exits.delete(id);
  }

  /** Whether watching keeps the Node process alive (see {@link ExitWatcher.keepAlive}). */
  keepAlive(on: boolean): void {
    this.#watcher.keepAlive(on);
  }

  /** Stops watching; whoever waits for an exit is released at once. */
  close(): void {
    this.#watcher.close();
    for (const waiters of [...this.#waiters.values()]) for (const wake of [...waiters]) wake();
  }

  #exited(id: string, exitCode: number | undefined): void {
    const watched = this.#watched.get(id);
    this.#watched.delete(id);
    this.#exits.set(id, exitCode);
    for (const wake of [...(this.#waiters.get(id) ?? [])]) wake();
    if (watched !== undefined && !watched.stopping) this.#onExit(watched.record, exitCode);
  }
}

/** Calls every listener with `value`; one listener's bug does not keep the others from hearing. */
export function tellEach<T>(listeners: Iterable<(value: T) => void>, value: T): void {
  for (const listener of [...listeners]) {
    try {
      listener(value);
    } catch {
      // A listener's bug must not keep the other listeners from hearing of the exit.
    }
  }
}
