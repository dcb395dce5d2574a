/**
 * Shared pieces of the hostile-input suites (`*.fuzz.test.ts`): how many runs a property gets, and
 * the one check every suite makes of an error. `npm test` runs each property a few dozen times;
 * `npm run fuzz` sets `KILN_FUZZ_RUNS` and runs the same properties far longer. A failure prints
 * fast-check's seed and path; `KILN_FUZZ_SEED=<seed>` replays it.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import fc, { type Parameters as FcParameters } from 'fast-check';
import { expect } from 'vitest';
import { KilnError } from '../../src/errors/index.js';

/** Runs per property under `npm run fuzz` when `KILN_FUZZ_RUNS` is set without a value. */
export const DEFAULT_LONG_FUZZ_RUNS = 20_000;

/**
 * How many runs a property gets: `fast` in `npm test`; under `npm run fuzz`, `KILN_FUZZ_RUNS`
 * scaled by `share` (a property that touches the disk takes a smaller share than a pure parser).
 *
 * @example
 * fc.assert(property, fuzzParams(200));        // a parser
 * await fc.assert(property, fuzzParams(25, 0.02)); // unpacking into a temp dir
 */
export function fuzzRuns(fast: number, share = 1): number {
  const raw = process.env.KILN_FUZZ_RUNS;
  if (raw === undefined) return fast;
  const long = raw === '' ? DEFAULT_LONG_FUZZ_RUNS : Number(raw);
  if (!Number.isSafeInteger(long) || long < 1) {
    throw new Error(`KILN_FUZZ_RUNS=${raw}: give a whole number of runs, such as KILN_FUZZ_RUNS=20000`);
  }
  return Math.max(fast, Math.round(long * share));
}

/** Longest one run of an async property may take before it counts as a hang and fails. */
export const FUZZ_RUN_TIMEOUT_MS = 10_000;

/**
 * fast-check parameters for a property: {@link fuzzRuns} runs, a run of an async property failing
 * after {@link FUZZ_RUN_TIMEOUT_MS} (a hang), and `KILN_FUZZ_SEED` when replaying. A failure is
 * reported as found, unshrunk (shrinking a hang takes a timeout per step); `KILN_FUZZ_SHRINK=1`
 * shrinks it to a smallest counterexample.
 */
export function fuzzParams<T>(fast: number, share = 1): FcParameters<T> {
  const seed = process.env.KILN_FUZZ_SEED;
  return {
    numRuns: fuzzRuns(fast, share),
    endOnFailure: process.env.KILN_FUZZ_SHRINK !== '1',
    plugins: [fc.timeout(FUZZ_RUN_TIMEOUT_MS)],
    ...(seed !== undefined && seed !== '' ? { seed: Number(seed) } : {}),
  };
}

/**
 * A property test's budget in milliseconds: generous, so a slow machine never fails it, yet a hang
 * still fails the test rather than the whole run. Scales with the runs under `npm run fuzz`.
 */
export function fuzzTimeout(fast: number, share = 1, msPerRun = 20): number {
  return 60_000 + fuzzRuns(fast, share) * msPerRun;
}

/**
 * Asserts that `err` is one of kiln's own errors with a clear message: a KilnError subclass (not
 * a TypeError, RangeError or a raw `ENAMETOOLONG`), not an `internal` one (which is what `wrap`
 * makes of an unexpected error), and a message that says something.
 */
export function expectKilnError(err: unknown, what = 'input'): asserts err is KilnError {
  if (!(err instanceof KilnError)) {
    const detail = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ''}` : String(err);
    expect.fail(`${what}: expected a KilnError, got ${detail}`);
  }
  expect(err.code, `${what}: ${err.message}`).not.toBe('internal');
  expect(err.message.trim().length, `${what}: empty message`).toBeGreaterThan(10);
}

/** Runs `fn`; resolves to what it threw, after checking it with {@link expectKilnError}, or undefined. */
export async function kilnErrorOf(fn: () => unknown, what = 'input'): Promise<KilnError | undefined> {
  try {
    await fn();
    return undefined;
  } catch (err) {
    expectKilnError(err, what);
    return err;
  }
}

/**
 * Every path under `dir` (itself included, as `.`) with what identifies its state: type, mode,
 * owner, link count, size, mtime, and a hash of a file's content or a symlink's target. Two equal
 * snapshots mean nothing under `dir` was created, removed, written, chmod-ed or hard-linked to.
 */
export async function snapshotTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (path: string, rel: string): Promise<void> => {
    const st = await lstat(path);
    let body = '';
    if (st.isFile())
      body = createHash('sha256')
        .update(await readFile(path))
        .digest('hex');
    else if (st.isSymbolicLink()) body = await readlink(path);
    out.set(rel, [st.mode, st.uid, st.gid, st.nlink, st.size, st.mtimeMs, body].join(' '));
    if (st.isDirectory()) {
      for (const name of (await readdir(path)).sort()) {
        await visit(join(path, name), rel === '.' ? name : `${rel}/${name}`);
      }
    }
  };
  await visit(dir, '.');
  return out;
}
