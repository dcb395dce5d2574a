/**
 * Notices when watched processes exit, for processes that are not our children (a detached
 * container's init is reparented away from kiln, so `waitpid` and exit events are not ours to
 * have, and Node has no pidfd). One shared timer walks every watched process and re-reads its
 * `/proc/<pid>/stat` through a descriptor opened once: about 7 µs per process per pass on this
 * host, so 100 instances cost ~0.7 ms per 25 ms pass.
 *
 * The open descriptor pins the process's identity: once the process is reaped, reads fail with
 * ESRCH even if its pid is reused. A zombie (state Z) counts as exited, and its stat line still
 * holds the wait status, so the exit code is known unless the host's init reaped it first.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** Interval of the shared exit-poll timer, in milliseconds: exits are seen ~12 ms after on average. */
export const DEFAULT_EXIT_POLL_INTERVAL_MS = 25;

/** How a watched process ended; `exitCode` is missing when it was reaped before it could be read. */
export interface ProcessExit {
  readonly exitCode?: number;
}

interface Watched {
  readonly pid: number;
  /** -1 when /proc/<pid>/stat could not be opened: the process was already gone. */
  readonly fd: number;
}

/** Index of field 52 (`exit_code`) of /proc/<pid>/stat among the fields after the `comm` field. */
const EXIT_CODE_FIELD = 52 - 3;
const CLOSE_PAREN = 0x29;
const ZOMBIE = 0x5a; // 'Z'
const DEAD = 0x58; // 'X'

/**
 * Watches processes by pid under caller-chosen keys and calls `onExit` once per key when its
 * process exits (from the timer, never from inside {@link watch}).
 */
export class ExitWatcher {
  readonly #entries = new Map<string, Watched>();
  readonly #buffer = Buffer.alloc(1024);
  readonly #intervalMs: number;
  readonly #onExit: (key: string, exit: ProcessExit) => void;
  #timer: NodeJS.Timeout | undefined;
  #keepAlive = false;

  constructor(onExit: (key: string, exit: ProcessExit) => void, intervalMs = DEFAULT_EXIT_POLL_INTERVAL_MS) {
    this.#onExit = onExit;
    this.#intervalMs = intervalMs;
  }

  /** Starts watching `pid` under `key`, replacing what `key` watched before. */
  watch(key: string, pid: number): void {
    this.unwatch(key);
    let fd = -1;
    try {
      fd = openSync(`/proc/${pid}/stat`, 'r');
    } catch {
      // Already gone: the next pass reports it, so onExit never runs inside watch().
    }
    this.#entries.set(key, { pid, fd });
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#pass(), this.#intervalMs);
      if (!this.#keepAlive) this.#timer.unref();
    }
  }

  /**
   * Whether watching keeps the Node process alive (as a server does): on while someone waits to
   * hear of exits, off otherwise, so a short-lived command never hangs on its watcher.
   */
  keepAlive(on: boolean): void {
    this.#keepAlive = on;
    if (on) this.#timer?.ref();
    else this.#timer?.unref();
  }

  /** The pid watched under `key`, if any. */
  pidOf(key: string): number | undefined {
    return this.#entries.get(key)?.pid;
  }

  /**
   * Sends `signal` to the process watched under `key` if it still runs (checked just before, through
   * the pinned descriptor, so a reused pid is never signalled). Returns whether it was sent.
   */
  signal(key: string, signal: NodeJS.Signals): boolean {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.fd < 0 || probe(entry.fd, this.#buffer) !== undefined) return false;
    try {
      process.kill(entry.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** Stops watching `key` without reporting it. */
  unwatch(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    if (entry.fd >= 0) closeSync(entry.fd);
    if (this.#entries.size === 0) this.#stopTimer();
  }

  /** Stops watching everything. */
  close(): void {
    for (const key of [...this.#entries.keys()]) this.unwatch(key);
    this.#stopTimer();
  }

  #pass(): void {
    for (const [key, entry] of [...this.#entries]) {
      const exit = entry.fd < 0 ? {} : probe(entry.fd, this.#buffer);
      if (exit === undefined || this.#entries.get(key) !== entry) continue;
      this.unwatch(key);
      try {
        this.#onExit(key, exit);
      } catch {
        // One failing callback must not hide the other exits of this pass.
      }
    }
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** The exit of the process behind an open /proc/<pid>/stat descriptor, or undefined while it runs. */
function probe(fd: number, buffer: Buffer): ProcessExit | undefined {
  let length: number;
  try {
    length = readSync(fd, buffer, 0, buffer.length, 0);
  } catch {
    return {};
  }
  // `comm` (in parentheses) may itself hold spaces and parentheses, so fields start after the last
  // ')'. The state is read as a byte: this runs for every instance on every pass, kept cheap.
  const close = buffer.subarray(0, length).lastIndexOf(CLOSE_PAREN);
  const state = buffer[close + 2];
  if (state !== ZOMBIE && state !== DEAD) return undefined;
  const fields = buffer.toString('latin1', close + 2, length).split(' ');
  const status = Number(fields[EXIT_CODE_FIELD]);
  return Number.isInteger(status) ? { exitCode: exitCodeOfWaitStatus(status) } : {};
}

/** A `waitpid` status as a shell reports it: the exit code, or 128 + the signal that killed it. */
export function exitCodeOfWaitStatus(status: number): number {
  const signal = status & 0x7f;
  return signal === 0 ? (status >> 8) & 0xff : 128 + signal;
}
