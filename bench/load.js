#!/usr/bin/env node
// The load generator of the router benchmarks, run as its own process so it never shares a core's
// event loop with the router or the backend. `connections` keep-alive connections (one
// http.Agent) each send GET / back to back; after `warmupMs`, responses are counted and timed for
// `durationMs`. Prints one JSON line: requests, errors, seconds, requests/s, latency percentiles.
//
//   node bench/load.js '{"port":8080,"connections":32,"warmupMs":1000,"durationMs":5000}'
import http from 'node:http';
import { setTimeout } from 'node:timers';

const { port, connections, warmupMs, durationMs, host = '127.0.0.1' } = JSON.parse(process.argv[2] ?? '{}');
if (!Number.isInteger(port) || !Number.isInteger(connections) || connections < 1) {
  process.stderr.write('usage: load.js \'{"port":N,"connections":N,"warmupMs":N,"durationMs":N}\'\n');
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
const latencies = [];
let phase = 'warmup';
let errors = 0;
let newConnections = 0;

const now = () => Number(process.hrtime.bigint()) / 1e6;

function once() {
  return new Promise((resolve) => {
    const t0 = now();
    const req = http.request({ host, port, path: '/', agent }, (res) => {
      res.resume();
      res.on('end', () => {
        if (phase === 'measure') {
          if (res.statusCode === 200) latencies.push(now() - t0);
          else errors++;
        }
        resolve();
      });
      res.on('error', () => {
        if (phase === 'measure') errors++;
        resolve();
      });
    });
    req.on('socket', (socket) => {
      if (!req.reusedSocket) newConnections++;
      socket.setNoDelay(true);
    });
    req.on('error', () => {
      if (phase === 'measure') errors++;
      resolve();
    });
    req.end();
  });
}

async function worker() {
  while (phase !== 'done') await once();
}

let start = 0;
let end = 0;
setTimeout(() => {
  phase = 'measure';
  start = now();
}, warmupMs);
setTimeout(() => {
  phase = 'done';
  end = now();
}, warmupMs + durationMs);
await Promise.all(Array.from({ length: connections }, worker));
agent.destroy();

latencies.sort((a, b) => a - b);
const pick = (p) =>
  latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil(p * latencies.length) - 1))];
const seconds = (end - start) / 1000;
process.stdout.write(
  `${JSON.stringify({
    connections,
    requests: latencies.length,
    errors,
    newConnections,
    seconds,
    rps: latencies.length / seconds,
    p50Ms: pick(0.5),
    p90Ms: pick(0.9),
    p99Ms: pick(0.99),
    maxMs: latencies.at(-1),
  })}\n`,
);
