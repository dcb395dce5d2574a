/**
 * Talking to a running HAProxy: one command per connection on its stats or master socket, parsing
 * `show stat` and `show proc`, starting it in master-worker mode, and probing ports.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { KilnError, UnavailableError } from '../errors/index.js';
import type { SlotStat } from './haproxy-state.js';

/** How long one runtime API command may take: 5 s. */
export const DEFAULT_HAPROXY_COMMAND_TIMEOUT_MS = 5_000;

/** How the runtime API starts an answer that refuses a command (a `show` answer is never checked). */
const REFUSAL =
  /^(No such|Unknown|Invalid|Require|Missing|Can't|Cannot|Failed|Unable|Permission denied|Access denied)/i;

/**
 * Sends one command to a HAProxy CLI socket (stats or master) and returns its answer. Throws
 * `UnavailableError` when the socket does not answer, and a `KilnError` when HAProxy refuses.
 */
export function haproxyCommand(
  socket: string,
  command: string,
  timeoutMs = DEFAULT_HAPROXY_COMMAND_TIMEOUT_MS,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new UnavailableError(`haproxy ${socket}: no answer to "${command}" within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new UnavailableError(`haproxy ${socket}: ${err.code ?? err.message}; is HAProxy running?`, {
          cause: err,
        }),
      );
    });
    conn.on('close', () => {
      clearTimeout(timer);
      const answer = Buffer.concat(chunks).toString('utf8');
      if (!command.startsWith('show') && REFUSAL.test(answer.trim()))
        reject(new KilnError('runtime', `haproxy refused "${command}": ${answer.trim()}`));
      else resolve(answer);
    });
    // Half-closing tells the master CLI the command is complete, so it answers and closes.
    conn.end(`${command}\n`);
  });
}

/** Parses `show stat` CSV into each frontend's requests and 5xx answers, keyed by frontend name. */
export function parseFrontendStat(csv: string): Map<string, { requests: number; failed: number }> {
  const lines = csv.split('\n').filter((l) => l !== '');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const [px, sv, req, ereq, h5] = ['pxname', 'svname', 'req_tot', 'ereq', 'hrsp_5xx'].map((c) =>
    header.indexOf(c),
  );
  const out = new Map<string, { requests: number; failed: number }>();
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    const n = (i: number | undefined): number => Number(f[i!] ?? 0) || 0;
    if (f[sv!] !== 'FRONTEND') continue;
    out.set(f[px!]!, { requests: Math.max(0, n(req) - n(ereq)), failed: n(h5) });
  }
  return out;
}

/** Parses `show stat` CSV into the figures of each server, keyed `backend/server`. */
export function parseShowStat(csv: string): Map<string, SlotStat> {
  const lines = csv.split('\n').filter((l) => l !== '');
  const header = (lines[0] ?? '').replace(/^# /, '').split(',');
  const col = (name: string): number => header.indexOf(name);
  const at = {
    px: col('pxname'),
    sv: col('svname'),
    scur: col('scur'),
    qcur: col('qcur'),
    stot: col('stot'),
    econ: col('econ'),
    eresp: col('eresp'),
    wredis: col('wredis'),
    ttime: col('ttime'),
    h: ['hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx'].map(col),
  };
  const out = new Map<string, SlotStat>();
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    const n = (i: number): number => Number(f[i] ?? 0) || 0;
    if (f[at.sv] === 'FRONTEND' || f[at.sv] === 'BACKEND') continue;
    const classes = at.h.map(n) as unknown as [number, number, number, number, number];
    const responses = classes.reduce((a, b) => a + b, 0);
    out.set(`${f[at.px]}/${f[at.sv]}`, {
      inFlight: n(at.scur) + n(at.qcur),
      counters: {
        requests: n(at.stot),
        classes,
        // A failure HAProxy hid by redispatching counts in wredis only, not in econ or eresp.
        errors: n(at.econ) + n(at.eresp) + n(at.wredis),
        retries: n(at.wredis),
        latencySumMs: n(at.ttime) * responses,
      },
    });
  }
  return out;
}

/** The master's reload counts and the current worker, from the master CLI's `show proc`. */
export interface HaproxyProcs {
  /** PID of the master process. */
  readonly master: number | undefined;
  readonly reloads: number;
  readonly failedReloads: number;
  /** PID of the newest worker. */
  readonly worker: number | undefined;
}

/** Parses the master CLI's `show proc`. */
export function parseShowProc(text: string): HaproxyProcs {
  const master = /^(\d+)\s+master\s+(\d+)\s+\[failed: (\d+)\]/m.exec(text);
  const worker = /^(\d+)\s+worker\s+0\s/m.exec(text);
  return {
    master: master === null ? undefined : Number(master[1]),
    reloads: Number(master?.[2] ?? 0),
    failedReloads: Number(master?.[3] ?? 0),
    worker: worker === null ? undefined : Number(worker[1]),
  };
}

/** Runs a program to completion; resolves with its exit code and stderr. */
export function run(file: string, args: readonly string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    // stdout is not read: HAProxy's daemon keeps what it inherits, so nothing of it is piped.
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      child.stderr.destroy();
      resolve({ code: code ?? -1, stderr });
    });
  });
}

/** A port on 127.0.0.1 free right now (the kernel's choice). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** True when 127.0.0.1:port accepts a connection. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Polls `check` every `intervalMs` until it is true (a throw counts as false); false when `timeoutMs` passed first. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}
