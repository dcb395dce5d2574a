#!/usr/bin/env node
// The fleet tests' load generator, run as its own process (test/support/loadgen.ts starts it) so
// its event loop is never the test's. Open loop: request i is due at start + i / rate, whatever
// happened to the ones before; due requests go out on a keep-alive agent with no socket limit.
// It runs until SIGTERM or SIGINT, then stops sending, waits (up to `drainMs`) for the requests in
// flight, counts those still unanswered as failed (`unfinished`), and prints one JSON line:
//
//   { sent, ok, failed, failures: { "ECONNRESET": 1, "status 503": 2, … }, seconds, rate,
//     latencyMs: { p50, p99, max }, bodies?: { "<first 80 chars>": count } }
//
// Failed = a network error or a status outside 2xx. Latency is from the moment a request was due
// (not when it went out), so a stalled sender shows up in the figures.
//
//   node test/support/loadgen-main.mjs '{"url":"http://127.0.0.1:8080/","rate":500}'
import http from 'node:http';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { URL } from 'node:url';

const options = JSON.parse(process.argv[2] ?? '{}');
const url = new URL(options.url ?? '');
const rate = options.rate ?? 500;
const timeoutMs = options.timeoutMs ?? 10_000;
const drainMs = options.drainMs ?? 5_000;
const countBodies = options.bodies === true;
if (url.protocol !== 'http:' || !(rate > 0)) {
  process.stderr.write('usage: loadgen-main.mjs \'{"url":"http://127.0.0.1:PORT/","rate":500}\'\n');
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, scheduling: 'fifo' });
const now = () => Number(process.hrtime.bigint()) / 1e6;
const started = now();
const latencies = [];
const failures = {};
const bodies = {};
let sent = 0;
let ok = 0;
let failed = 0;
let inFlight = 0;
let stopping = false;
let stoppedAt = 0;
let wake;

function fail(reason) {
  failed++;
  failures[reason] = (failures[reason] ?? 0) + 1;
}

function send(dueAt) {
  sent++;
  inFlight++;
  let settled = false;
  const settle = (reason) => {
    if (settled) return;
    settled = true;
    inFlight--;
    if (reason === undefined) {
      ok++;
      latencies.push(now() - dueAt);
    } else fail(reason);
    if (stopping && inFlight === 0) wake?.();
  };
  const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
    const chunks = [];
    res.on('data', (chunk) => {
      if (countBodies) chunks.push(chunk);
    });
    res.on('end', () => {
      const status = res.statusCode ?? 0;
      if (countBodies) {
        const body = Buffer.concat(chunks).toString('utf8').slice(0, 80);
        bodies[body] = (bodies[body] ?? 0) + 1;
      }
      settle(status >= 200 && status < 300 ? undefined : `status ${status}`);
    });
    res.on('error', (err) => settle(err.code ?? err.message));
    res.on('aborted', () => settle('aborted'));
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
  req.on('error', (err) => settle(err.code ?? err.message));
}

// One tick per millisecond at most; each sends every request that has come due since the last.
const timer = setInterval(() => {
  const due = Math.floor(((now() - started) * rate) / 1000);
  while (sent < due && !stopping) send(started + (sent * 1000) / rate);
}, 1);

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return Math.round(sorted[i] * 100) / 100;
}

async function stop() {
  if (stopping) return;
  stopping = true;
  stoppedAt = now();
  clearInterval(timer);
  if (inFlight > 0) {
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, drainMs).unref();
    });
  }
  if (inFlight > 0) {
    failed += inFlight;
    failures.unfinished = inFlight;
  }
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const seconds = (stoppedAt - started) / 1000;
  const summary = {
    url: url.href,
    targetRate: rate,
    sent,
    ok,
    failed,
    failures,
    seconds: Math.round(seconds * 1000) / 1000,
    rate: Math.round((sent / seconds) * 10) / 10,
    latencyMs: {
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      max: percentile(latencies, 1),
    },
    ...(countBodies ? { bodies } : {}),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(0));
}

process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.stdout.write('loadgen: running\n');
