import http from 'node:http';
import net from 'node:net';
import type { HealthSpec } from '../spec/index.js';

/** Runs a command inside an instance (the runtime driver's exec), for `exec` health checks. */
export type ExecProbe = (args: readonly string[], timeoutMs: number) => Promise<{ exitCode: number }>;

/**
 * One health probe of an instance at `host:port`: an HTTP GET that must answer 2xx/3xx, a TCP
 * connect, or a command that must exit 0 — each within `health.timeout`. Never throws: a probe
 * that cannot run has failed.
 */
export async function probe(
  health: HealthSpec,
  host: string,
  port: number,
  exec?: ExecProbe,
): Promise<boolean> {
  const timeoutMs = health.timeout;
  try {
    if (health.http !== undefined) return await httpProbe(host, port, health.http, timeoutMs);
    if (health.exec !== undefined) {
      if (!exec) return false;
      return (await exec(health.exec, timeoutMs)).exitCode === 0;
    }
    return await tcpProbe(host, port, timeoutMs);
  } catch {
    return false;
  }
}

function httpProbe(host: string, port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    // No keep-alive agent: a probe must open a fresh connection, as a new client would.
    const req = http.get(
      { host, port, path, agent: false, timeout: timeoutMs, headers: { 'user-agent': 'kiln-health' } },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        resolve(code >= 200 && code < 400);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
