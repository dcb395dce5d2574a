/**
 * Watching the app's folder: `fs.watch` with `recursive` (inotify on every directory, in Node 20 on
 * Linux), changes under the app's `ignore` globs left out, and a burst of changes (an editor's
 * save writes, renames and touches several files) folded into one by a trailing debounce.
 */
import { watch, type FSWatcher } from 'node:fs';
import picomatch from 'picomatch';
import { UnavailableError } from '../errors/index.js';

/** How long the folder must be quiet after a change before the instance restarts. */
export const DEFAULT_DEBOUNCE_MS = 50;

/** One settled burst of changes. */
export interface ChangeBatch {
  /** The changed paths, relative to the folder, sorted, each once (`?` when the OS did not say). */
  readonly paths: readonly string[];
  /** When the first change of the burst was seen (`performance.now()` milliseconds). */
  readonly firstAt: number;
}

/** The clock and timers a {@link Debouncer} uses; tests give fake ones. */
export interface DebounceClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: DebounceClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Folds changes into batches: each change restarts a `ms` timer, and when it runs out the batch
 * (every path since the last batch, and the time of the first) goes to `flush`.
 */
export class Debouncer {
  readonly #ms: number;
  readonly #flush: (batch: ChangeBatch) => void;
  readonly #clock: DebounceClock;
  #paths = new Set<string>();
  #firstAt: number | undefined;
  #timer: unknown;

  constructor(ms: number, flush: (batch: ChangeBatch) => void, clock: DebounceClock = realClock) {
    this.#ms = ms;
    this.#flush = flush;
    this.#clock = clock;
  }

  /** Notes a change of `path`. */
  add(path: string): void {
    this.#firstAt ??= this.#clock.now();
    this.#paths.add(path);
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(() => this.#fire(), this.#ms);
  }

  /** Drops what is pending; nothing more is flushed until the next change. */
  cancel(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#paths = new Set();
    this.#firstAt = undefined;
  }

  #fire(): void {
    const batch: ChangeBatch = { paths: [...this.#paths].sort(), firstAt: this.#firstAt! };
    this.#timer = undefined;
    this.#paths = new Set();
    this.#firstAt = undefined;
    this.#flush(batch);
  }
}

/** Options of {@link watchFolder}. */
export interface WatchOptions {
  /** Globs relative to the folder whose changes are ignored (the app's `ignore`). @default [] */
  readonly ignore?: readonly string[];
  /** @default DEFAULT_DEBOUNCE_MS */
  readonly debounceMs?: number;
  readonly onChange: (batch: ChangeBatch) => void;
  /** The watcher failed (the folder went away, say). */
  readonly onError?: (err: Error) => void;
}

/** A test of relative paths: true when the path (or a directory above it) matches one of `ignore`. */
export function ignoreMatcher(ignore: readonly string[]): (relPath: string) => boolean {
  if (ignore.length === 0) return () => false;
  const match = picomatch([...ignore], { dot: true });
  return (relPath) => {
    const parts = relPath.split('/');
    return parts.some((_, i) => {
      const p = parts.slice(0, i + 1).join('/');
      return match(p) || match(`${p}/`);
    });
  };
}

/**
 * Watches `dir` and everything below it; returns a function that stops watching.
 * @throws UnavailableError when the folder cannot be watched.
 */
export function watchFolder(dir: string, options: WatchOptions): () => void {
  const ignored = ignoreMatcher(options.ignore ?? []);
  const debouncer = new Debouncer(options.debounceMs ?? DEFAULT_DEBOUNCE_MS, options.onChange);
  let watcher: FSWatcher;
  try {
    watcher = watch(dir, { recursive: true }, (_event, filename) => {
      const rel = filename === null ? '?' : String(filename).split('\\').join('/');
      if (rel !== '?' && ignored(rel)) return;
      debouncer.add(rel);
    });
  } catch (err) {
    throw new UnavailableError(
      `cannot watch ${dir} for changes: ${err instanceof Error ? err.message : String(err)} (run with --no-watch to run it once)`,
      { cause: err },
    );
  }
  watcher.on('error', (err) => options.onError?.(err));
  return () => {
    debouncer.cancel();
    watcher.close();
  };
}
