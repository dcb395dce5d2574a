import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { probe } from './health.js';
import { transition, type InstanceHealth } from './lifecycle.js';

const servers: (http.Server | net.Server)[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(() => r(undefined)));
});

async function listen(server: http.Server | net.Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const base = { interval: 1000, timeout: 300, threshold: 3 };

describe('probe', () => {
  it('passes an HTTP check on 2xx/3xx and fails it on 5xx, a hang, or a closed port', async () => {
    const port = await listen(
      http.createServer((req, res) => {
        if (req.url === '/ok') res.writeHead(204).end();
        else if (req.url === '/moved') res.writeHead(302, { location: '/ok' }).end();
        else if (req.url === '/hang') return;
        else res.writeHead(503).end();
      }),
    );
    expect(await probe({ ...base, http: '/ok' }, '127.0.0.1', port)).toBe(true);
    expect(await probe({ ...base, http: '/moved' }, '127.0.0.1', port)).toBe(true);
    expect(await probe({ ...base, http: '/bad' }, '127.0.0.1', port)).toBe(false);
    expect(await probe({ ...base, http: '/hang' }, '127.0.0.1', port)).toBe(false);
    expect(await probe({ ...base, http: '/ok' }, '127.0.0.1', await closedPort())).toBe(false);
  });

  it('passes a TCP check when something accepts, fails it otherwise', async () => {
    const port = await listen(net.createServer((s) => s.end()));
    expect(await probe({ ...base, tcp: true }, '127.0.0.1', port)).toBe(true);
    expect(await probe({ ...base, tcp: true }, '127.0.0.1', await closedPort())).toBe(false);
  });

  it('runs an exec check through the driver and needs exit 0', async () => {
    const exec = async (args: readonly string[]) => ({ exitCode: args[0] === 'true' ? 0 : 1 });
    expect(await probe({ ...base, exec: ['true'] }, '127.0.0.1', 1, exec)).toBe(true);
    expect(await probe({ ...base, exec: ['false'] }, '127.0.0.1', 1, exec)).toBe(false);
    expect(await probe({ ...base, exec: ['true'] }, '127.0.0.1', 1)).toBe(false);
  });
});

describe('transition', () => {
  const s = (phase: InstanceHealth['phase'], failures = 0): InstanceHealth => ({ phase, failures, since: 0 });
  it.each<[InstanceHealth, Parameters<typeof transition>[1], InstanceHealth['phase'], number]>([
    [s('starting'), { type: 'probe', ok: true }, 'healthy', 0],
    [s('starting', 5), { type: 'probe', ok: false }, 'starting', 6],
    [s('healthy'), { type: 'probe', ok: false }, 'healthy', 1],
    [s('healthy', 2), { type: 'probe', ok: false }, 'unhealthy', 3],
    [s('unhealthy', 3), { type: 'probe', ok: true }, 'healthy', 0],
    [s('healthy', 2), { type: 'probe', ok: true }, 'healthy', 0],
    [s('healthy'), { type: 'drain' }, 'draining', 0],
    [s('draining'), { type: 'probe', ok: false }, 'draining', 0],
    [s('healthy'), { type: 'tainted', reason: 'drift' }, 'tainted', 0],
    [s('tainted'), { type: 'probe', ok: true }, 'tainted', 0],
    [s('healthy'), { type: 'exited' }, 'stopped', 0],
    [s('stopped'), { type: 'probe', ok: true }, 'stopped', 0],
  ])('%o + %o → %s (%i failures)', (state, event, phase, failures) => {
    const next = transition(state, event, 3, 10);
    expect(next.phase).toBe(phase);
    expect(next.failures).toBe(failures);
    if (phase !== state.phase) expect(next.since).toBe(10);
  });

  it('returns the same object when nothing changed, so no event fires', () => {
    const healthy = s('healthy');
    expect(transition(healthy, { type: 'probe', ok: true }, 3, 10)).toBe(healthy);
  });
});
