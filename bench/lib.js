// Helpers shared by kiln's benchmarks: statistics, timing, the machine's description, memory
// readings from /proc, loopback HTTP probes and a cleanup list that ends only what the bench started.
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { cpus, loadavg, release, totalmem } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** The repository's root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** kiln's executable. */
export const KILN = path.join(ROOT, 'bin', 'kiln.js');
/** Every address the benchmarks talk to. */
export const LOOPBACK = '127.0.0.1';

/** A whole-number environment knob, or its default. */
export function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got '${raw}'`);
  return n;
}

/** Median of numbers. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The `p`-th percentile (0..100) of numbers, nearest rank. */
export function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Median, p99, min and max of samples, with the samples. */
export function summary(xs) {
  return {
    n: xs.length,
    median: median(xs),
    p99: percentile(xs, 99),
    min: Math.min(...xs),
    max: Math.max(...xs),
    samples: xs,
  };
}

/** a / b, or null when either is missing. */
export function ratio(a, b) {
  return typeof a === 'number' && typeof b === 'number' && b !== 0 ? a / b : null;
}

/** Milliseconds since an arbitrary origin, as a float. */
export function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Runs a command, returns wall seconds and stdout; throws with its output when it fails. */
export function timed(cmd, args, options = {}) {
  const t0 = nowMs();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  const seconds = (nowMs() - t0) / 1000;
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { seconds, stdout: r.stdout };
}

/** Runs `kiln -c <config> ARGS` with KILN_HOME=home; wall seconds and stdout. */
export function kiln(config, home, args) {
  return timed('node', [KILN, '-c', config, ...args], { env: { ...process.env, KILN_HOME: home } });
}

/** The machine the figures come from. */
export function machine() {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    os: readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]+)/m)?.[1] ?? 'unknown',
  };
}

/** The 1-minute load average, two decimals: how busy the machine was with other work too. */
export function load1() {
  return Math.round(loadavg()[0] * 100) / 100;
}

/** A process's resident set (VmRSS) in bytes, or undefined when it is gone. */
export function vmRssBytes(pid) {
  try {
    const kb = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * A process's proportional set size (Pss, from /proc/PID/smaps_rollup) in bytes: shared pages
 * (the one busybox binary every instance maps) counted once across the processes sharing them.
 */
export function pssBytes(pid) {
  try {
    const kb = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+) kB/m)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** The host's MemAvailable in bytes. */
export function memAvailableBytes() {
  const kb = readFileSync('/proc/meminfo', 'utf8').match(/^MemAvailable:\s+(\d+) kB/m)?.[1];
  return Number(kb) * 1024;
}

/**
 * Where the bench's instance and service ports come from: below the kernel's ephemeral range
 * (32768–60999 here), where outgoing connections (the bench's own probes among them) take their
 * local ports, and below the fleet controller's DEFAULT_PORT_RANGE (20000–29999).
 */
export const PORT_RANGE = { from: 10_000, to: 19_999 };
let nextPort = PORT_RANGE.from + randomInt(PORT_RANGE.to - PORT_RANGE.from);

/**
 * `n` distinct loopback ports of {@link PORT_RANGE} that were free a moment ago (all held open
 * together, then released). Successive calls go on round the range, so a port just given up is
 * not handed out again at once.
 */
export async function freePorts(n) {
  const servers = [];
  try {
    for (let tried = 0; servers.length < n; tried++) {
      if (tried > PORT_RANGE.to - PORT_RANGE.from)
        throw new Error(`fewer than ${n} free ports in ${PORT_RANGE.from}-${PORT_RANGE.to}`);
      const port = nextPort;
      nextPort = port >= PORT_RANGE.to ? PORT_RANGE.from : port + 1;
      const server = net.createServer();
      const bound = await new Promise((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(port, LOOPBACK, () => resolve(true));
      });
      if (bound) servers.push(server);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** One GET / on a loopback port over a new connection: true for a 200 with its body read. */
export function httpOk(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get({ host: LOOPBACK, port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** How often {@link waitHttp} tries again: 2 ms, so the figures carry at most that much of it. */
export const HTTP_POLL_MS = 2;

/** Waits until GET / on `port` answers 200; throws after `timeoutMs`. */
export async function waitHttp(port, timeoutMs = 30_000) {
  const deadline = nowMs() + timeoutMs;
  while (!(await httpOk(port))) {
    if (nowMs() > deadline)
      throw new Error(`nothing answered HTTP on ${LOOPBACK}:${port} in ${timeoutMs} ms`);
    await sleep(HTTP_POLL_MS);
  }
}

/** Runs `task` over `items`, at most `width` at a time; resolves with the results in order. */
export async function inBatches(items, width, task) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await task(items[i], i);
      }
    }),
  );
  return out;
}

/**
 * Undo steps for everything a benchmark started, run newest first. Each step ends one thing by
 * the id or PID the bench recorded for it, never by name. A failed step is reported and the rest
 * still run.
 */
export class Cleanup {
  #steps = [];
  #running = undefined;

  /** Registers `step` (async); returns a function that runs it now and unregisters it. */
  add(what, step) {
    const entry = { what, step };
    this.#steps.push(entry);
    return async () => {
      const i = this.#steps.indexOf(entry);
      if (i >= 0) this.#steps.splice(i, 1);
      await step();
    };
  }

  /**
   * Runs every step still registered, newest first; returns the failures as text. A call while a
   * run is under way (Ctrl-C during the normal cleanup) joins that run.
   */
  run() {
    this.#running ??= this.#runAll().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #runAll() {
    const failures = [];
    while (this.#steps.length > 0) {
      const { what, step } = this.#steps.pop();
      try {
        await step();
      } catch (err) {
        failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const f of failures) console.error(`bench: cleanup failed: ${f}`);
    return failures;
  }
}

/** Formatting for the markdown tables. */
export const fmt = {
  ms: (x) => (typeof x === 'number' ? `${x.toFixed(x < 10 ? 2 : 1)} ms` : 'n/a'),
  s: (x) => (typeof x === 'number' ? `${x.toFixed(2)} s` : 'n/a'),
  mib: (b) => (typeof b === 'number' ? `${(b / 2 ** 20).toFixed(1)} MiB` : 'n/a'),
  rps: (x) => (typeof x === 'number' ? `${Math.round(x).toLocaleString('en-US')} req/s` : 'n/a'),
  ratio: (x, digits = 3) => (typeof x === 'number' ? x.toFixed(digits) : 'n/a'),
};
