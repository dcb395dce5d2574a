/**
 * Test support: constant-rate HTTP load from a separate process ({@link startLoad}), so the test's
 * own event loop (polling the API, spawning the CLI) never slows the load or hides a failure. The
 * process is `loadgen-main.mjs`; it is ended by its PID only, by `stop()` or by {@link stopAllLoads}
 * (register that in `afterEach`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Requests per second unless {@link LoadOptions.rate} says otherwise: 500. */
export const DEFAULT_LOAD_RATE = 500;

const MAIN = path.join(import.meta.dirname, 'loadgen-main.mjs');

/** Options of {@link startLoad}. */
export interface LoadOptions {
  /** What to GET, on loopback. */
  readonly url: string;
  /** Requests per second, sent open loop. @default DEFAULT_LOAD_RATE */
  readonly rate?: number;
  /** Count the responses by their body's first 80 characters. @default false */
  readonly bodies?: boolean;
  /** A request unanswered this long fails (`timeout`). @default 10 s */
  readonly timeoutMs?: number;
}

/** What the load generator saw, printed by it once stopped. */
export interface LoadSummary {
  readonly url: string;
  readonly targetRate: number;
  readonly sent: number;
  /** 2xx responses. */
  readonly ok: number;
  /** Network errors, statuses outside 2xx and requests unanswered at the end. */
  readonly failed: number;
  /** Failures by reason: an error code (`ECONNRESET`), `status 503`, `timeout`, `unfinished`. */
  readonly failures: Readonly<Record<string, number>>;
  /** From the first request to the stop. */
  readonly seconds: number;
  /** Achieved rate: sent / seconds. */
  readonly rate: number;
  readonly latencyMs: {
    readonly p50: number | null;
    readonly p99: number | null;
    readonly max: number | null;
  };
  /** With `bodies: true`: responses by their body's first 80 characters. */
  readonly bodies?: Readonly<Record<string, number>>;
}

/** A running load. */
export interface Load {
  readonly pid: number;
  /** Stops sending, waits for the requests in flight, and returns the summary. */
  stop(): Promise<LoadSummary>;
}

const running = new Set<ChildProcess>();

/**
 * Starts sending `rate` GETs a second to `url` from a new process, and resolves once it runs.
 *
 * @example
 * const load = await startLoad({ url: 'http://127.0.0.1:8080/' });
 * // … deploy …
 * const summary = await load.stop();
 * expect(summary.failed).toBe(0);
 */
export async function startLoad(options: LoadOptions): Promise<Load> {
  const child = spawn(process.execPath, [MAIN, JSON.stringify({ rate: DEFAULT_LOAD_RATE, ...options })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const deadline = Date.now() + 10_000;
  while (!stdout.includes('loadgen: running\n')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await end(child);
      throw new Error(`the load generator did not start (exit ${child.exitCode}): ${stderr}`);
    }
    await sleep(10);
  }
  const pid = child.pid!;
  return {
    pid,
    async stop() {
      process.kill(pid, 'SIGTERM');
      const code = await exited;
      const last = stdout.trimEnd().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('{')) {
        throw new Error(`the load generator ended with code ${code} and no summary: ${stdout}${stderr}`);
      }
      return JSON.parse(last) as LoadSummary;
    },
  };
}

/** Ends every load generator still running, by PID (SIGTERM, then SIGKILL after 5 s). */
export async function stopAllLoads(): Promise<void> {
  await Promise.all([...running].map(end));
}

async function end(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
  if (!done) {
    child.kill('SIGKILL');
    await exited;
  }
  running.delete(child);
}

/** One line for the test's output: `500.1 req/s for 12.3 s, 6150 sent, 0 failed, p50 1.2 ms, p99 4.5 ms`. */
export function describeLoad(s: LoadSummary): string {
  const failures = Object.entries(s.failures)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return (
    `${s.rate} req/s for ${s.seconds} s, ${s.sent} sent, ${s.failed} failed${failures ? ` (${failures})` : ''}, ` +
    `p50 ${s.latencyMs.p50} ms, p99 ${s.latencyMs.p99} ms, max ${s.latencyMs.max} ms`
  );
}
