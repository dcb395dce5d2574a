import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, isAlive } from './fleet.js';
import { startLoad, stopAllLoads } from './loadgen.js';

let server: http.Server | undefined;

afterEach(async () => {
  await stopAllLoads();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

/** A server answering `page` (200), every 10th request 503, every 25th by resetting the socket. */
async function flakyServer(): Promise<string> {
  let n = 0;
  server = http.createServer((req, res) => {
    n++;
    if (n % 25 === 0) return req.socket.destroy();
    if (n % 10 === 0) return res.writeHead(503).end('busy');
    res.writeHead(200).end(n % 2 ? 'odd' : 'even');
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

describe('the load generator', () => {
  it('sends at the rate asked, open loop, and counts every failure by reason', async () => {
    // Given a server that fails some requests with 503 and resets others
    const url = await flakyServer();
    // When 400 req/s run against it for about a second
    const load = await startLoad({ url, rate: 400, bodies: true });
    await sleep(1_000);
    const summary = await load.stop();
    // Then it sent about 400, each counted once as ok or failed
    expect(summary.sent).toBeGreaterThanOrEqual(360);
    expect(summary.sent).toBeLessThanOrEqual(500);
    expect(summary.ok + summary.failed).toBe(summary.sent);
    expect(summary.rate).toBeGreaterThan(360);
    // And the 503s and resets are failures, by reason
    expect(summary.failures['status 503']).toBeGreaterThan(0);
    expect(summary.failures.ECONNRESET).toBeGreaterThan(0);
    expect(summary.failed).toBe(Object.values(summary.failures).reduce((a, b) => a + b, 0));
    // And the bodies are counted (of every response); latency is measured
    expect(Object.keys(summary.bodies!).sort()).toEqual(['busy', 'even', 'odd']);
    expect(summary.latencyMs.p50).toBeGreaterThanOrEqual(0);
    // And the process is gone
    expect(await isAlive(load.pid)).toBe(false);
  });

  it('counts refused connections as failures', async () => {
    const load = await startLoad({ url: `http://127.0.0.1:${await freePort()}/`, rate: 200 });
    await sleep(300);
    const summary = await load.stop();
    expect(summary.sent).toBeGreaterThan(0);
    expect(summary.ok).toBe(0);
    expect(summary.failures).toEqual({ ECONNREFUSED: summary.sent });
  });
});
