/**
 * Helpers for the state context's own tests; not exported from index.ts. Everything a fixture
 * creates (stores, raw connections, temp directories, child processes) is undone by `cleanup`,
 * which tests call from `afterEach`, so a failing test leaves nothing behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { IN_MEMORY, openState, type OpenStateOptions, type StateStore } from './db.js';
import type { ReleaseRecord } from './releases.js';

/** A digest-shaped value for records that need one. */
export const DIGEST = `sha256:${'a'.repeat(64)}`;

/** A clock tests move by hand. */
export class TestClock {
  constructor(public time = new Date('2026-01-01T00:00:00.000Z')) {}
  /** For `OpenStateOptions.clock`. */
  readonly now = (): Date => this.time;
  /** Moves the clock forward by `ms`. */
  tick(ms: number): void {
    this.time = new Date(this.time.getTime() + ms);
  }
}

/** A child process running a script under jiti, with its output collected. */
export interface Child {
  readonly process: ChildProcess;
  /** Resolves once stdout contains `text`; rejects when the child exits first or after `timeoutMs`. */
  waitFor(text: string, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or signal) and all stdout. */
  readonly exited: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>;
}

const JITI = new URL('../../node_modules/.bin/jiti', import.meta.url).pathname;
const STATE_INDEX = new URL('./index.ts', import.meta.url).pathname;

/**
 * A child that opens the state database at argv[2] with kiln's own code and, by argv[3]:
 * - `create N` prints `ready`, waits for the file `<db>.go`, makes N releases of `api` pausing 1 ms
 *   between them (so two children write at the same time and take turns), and prints their numbers
 *   as JSON;
 * - `hang` makes 300 releases of 100 kB each, with an event each, in one transaction, prints
 *   `in-transaction` and blocks inside the transaction forever;
 * - `loop` makes a release and its event per transaction without end, printing `looping` early on.
 */
const CHILD_SCRIPT = `import { existsSync, writeSync } from 'node:fs';
import { openState } from ${JSON.stringify(STATE_INDEX)};
const [file, mode, count] = process.argv.slice(2);
const store = openState(file, { busyTimeoutMs: 30000 });
const digest = 'sha256:' + 'c'.repeat(64);
const pad = 'x'.repeat(mode === 'hang' ? 100000 : 10);
const release = (i) => store.releases.create({
  service: 'api', digest, configHash: digest, spec: { i, pad }, createdBy: 'child-' + process.pid, reason: mode,
});
const event = (r) => store.events.append({
  kind: 'release.created', service: 'api', subject: r.name, reason: 'Test', message: '', data: { number: r.number },
});
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
if (mode === 'create') {
  writeSync(1, 'ready\\n');
  while (!existsSync(file + '.go')) sleep(5);
  const got = [];
  for (let i = 0; i < Number(count); i++) {
    got.push(release(i).number);
    sleep(1);
  }
  writeSync(1, JSON.stringify(got) + '\\n');
  store.close();
} else if (mode === 'hang') {
  store.transaction(() => {
    for (let i = 0; i < 300; i++) event(release(i));
    writeSync(1, 'in-transaction\\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  });
} else if (mode === 'loop') {
  for (let i = 0; ; i++) {
    store.transaction(() => event(release(i)));
    if (i === 20) writeSync(1, 'looping\\n');
  }
}
`;

/** Collects what a test sets up and undoes it, last first. */
export class StateFixture {
  private readonly undo: (() => void)[] = [];

  /** A path for a state database in a new temporary directory. */
  tempFile(): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'kiln-state-'));
    this.undo.push(() => rmSync(dir, { recursive: true, force: true }));
    return path.join(dir, 'state.db');
  }

  /** `openState`, closed on cleanup. */
  open(file: string = IN_MEMORY, options?: OpenStateOptions): StateStore {
    const store = openState(file, options);
    this.undo.push(() => store.close());
    return store;
  }

  /** A plain better-sqlite3 connection to `file`, bypassing kiln, closed on cleanup. */
  raw(file: string): Database.Database {
    const db = new Database(file);
    this.undo.push(() => db.close());
    return db;
  }

  /** Starts the child script (see CHILD_SCRIPT) on `file`; killed on cleanup if still running. */
  child(file: string, ...args: string[]): Child {
    const script = path.join(path.dirname(file), 'child.mts');
    writeFileSync(script, CHILD_SCRIPT);
    const proc = spawn(JITI, [script, file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.undo.push(() => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<{
      code: number | null;
      signal: NodeJS.Signals | null;
      stdout: string;
      stderr: string;
    }>((resolve) => proc.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
    const waitFor = (text: string, timeoutMs = 30_000): Promise<string> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => done(new Error(`child printed no '${text}' in ${timeoutMs} ms: ${stderr}`)),
          timeoutMs,
        );
        const check = (): void => {
          if (stdout.includes(text)) done();
        };
        const done = (err?: Error): void => {
          clearTimeout(timer);
          proc.stdout.off('data', check);
          if (err) reject(err);
          else resolve(stdout);
        };
        proc.stdout.on('data', check);
        void exited.then((r) =>
          done(new Error(`child exited (${r.code ?? r.signal}) before '${text}': ${r.stderr}`)),
        );
        check();
      });
    return { process: proc, waitFor, exited };
  }

  /** Runs `fn` on cleanup. */
  defer(fn: () => void): void {
    this.undo.push(fn);
  }

  /** Undoes everything, last first; every step runs even when one throws. */
  cleanup(): void {
    const errors: unknown[] = [];
    for (const fn of this.undo.splice(0).reverse()) {
      try {
        fn();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'cleaning up the state fixture');
  }
}

/** Declares service `service` and creates `count` releases of it. */
export function seedReleases(store: StateStore, service = 'api', count = 1): ReleaseRecord[] {
  store.services.put(service, { image: service });
  return Array.from({ length: count }, (_, i) =>
    store.releases.create({
      service,
      digest: DIGEST,
      configHash: DIGEST,
      spec: { image: service, i },
      createdBy: 'test',
      reason: 'seed',
    }),
  );
}

/** What `fn` throws; fails the test when it throws nothing. */
export function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, but nothing was thrown');
}
