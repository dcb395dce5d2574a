import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpBackends } from '../../test/support/http-backends.js';
import { UnavailableError } from '../errors/index.js';
import { runTrafficRouterConformance } from './conformance.js';
import { isProcessAlive } from './files.js';
import { startHaproxyRouter, type HaproxyRouter } from './haproxy.js';

const started: { router: HaproxyRouter; dir: string }[] = [];
const dirs: string[] = [];

afterEach(async () => {
  // Every HAProxy a test started, by its master's PID, then its directory, even if a stop fails.
  try {
    for (const { router } of started.splice(0)) await router.stop();
  } finally {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  }
});

async function start(dir?: string): Promise<HaproxyRouter> {
  const where = dir ?? (await mkdtemp(join(tmpdir(), 'kiln-haproxy-')));
  if (dir === undefined) dirs.push(where);
  const router = await startHaproxyRouter({ dir: where });
  if (!started.some((s) => s.router.pid === router.pid)) started.push({ router, dir: where });
  return router;
}

runTrafficRouterConformance('HAProxy', () => start());

describe('HaproxyRouter', () => {
  const http = new HttpBackends();
  afterEach(() => http.closeAll());

  it('names the package to install when HAProxy is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-haproxy-'));
    dirs.push(dir);
    const err = await startHaproxyRouter({ dir, haproxy: join(dir, 'no-haproxy') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain('apt-get install haproxy');
  });

  it('is adopted again after its handle is closed, serving the same routes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-haproxy-'));
    dirs.push(dir);
    const [a, b] = await http.start('a', 'b');
    const first = await start(dir);
    const { listenPort } = await first.setRoute({
      service: 'web',
      listenPort: 0,
      backends: [a!.backend(1), b!.backend(0)],
    });
    await first.close();
    expect((await http.request(listenPort)).body).toBe('a');
    const second = await start(dir);
    expect(second.pid).toBe(first.pid);
    expect(await second.routes()).toEqual([
      { service: 'web', listenPort, backends: [a!.backend(1), b!.backend(0)] },
    ]);
    await second.setRoute({ service: 'web', listenPort, backends: [b!.backend(1)] });
    expect(await http.countById(listenPort, 4)).toEqual({ b: 4 });
  });

  it('grows its server slots by reloading when a route outgrows them, keeping the counts', async () => {
    const router = await start();
    const backends = await http.start(...Array.from({ length: 10 }, (_, i) => `b${i}`));
    const { listenPort } = await router.setRoute({
      service: 'web',
      listenPort: 0,
      backends: backends.slice(0, 2).map((b) => b.backend(1)),
    });
    await http.countById(listenPort, 4);
    await expect.poll(async () => (await router.metrics()).reduce((n, m) => n + m.requests, 0)).toBe(4);
    await router.setRoute({ service: 'web', listenPort, backends: backends.map((b) => b.backend(1)) });
    const counts = await http.countById(listenPort, 20);
    expect(Object.keys(counts).sort()).toEqual(backends.map((b) => b.id).sort());
    await expect.poll(async () => (await router.metrics()).reduce((n, m) => n + m.requests, 0)).toBe(24);
  });

  it('ends HAProxy on stop', async () => {
    const router = await start();
    const pid = router.pid;
    expect(await isProcessAlive(pid, 'haproxy')).toBe(true);
    await router.stop();
    expect(await isProcessAlive(pid, 'haproxy')).toBe(false);
  });
});
