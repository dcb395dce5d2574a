/**
 * The one conformance suite every `TrafficRouter` runs (like hono's `runTest({ newRouter })`),
 * with real HTTP backends on 127.0.0.1. Not part of the build: test files import it.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpBackends, type TestBackend } from '../../test/support/http-backends.js';
import { NotFoundError, ValidationError } from '../errors/index.js';
import type { BackendMetrics, TrafficRouter } from './router.js';

/** How tests start the router process from source: Node with jiti's TypeScript loader. */
export const ROUTER_FROM_SOURCE = {
  entry: fileURLToPath(new URL('./router-main.ts', import.meta.url)),
  nodeArgs: ['--import', import.meta.resolve('jiti/register')],
} as const;

const POLL = { timeout: 10_000, interval: 50 };

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  await expect.poll(check, { ...POLL, message: what }).toBe(true);
}

function byBackend(metrics: readonly BackendMetrics[], service: string): Record<string, BackendMetrics> {
  return Object.fromEntries(metrics.filter((m) => m.service === service).map((m) => [m.backendId, m]));
}

/**
 * Registers the conformance suite for a router made by `makeRouter` (called once per test; the
 * suite closes what it returns; the caller ends any process it started, in its own afterEach).
 *
 * @example
 * runTrafficRouterConformance('local', async () => createLocalRouter());
 */
export function runTrafficRouterConformance(name: string, makeRouter: () => Promise<TrafficRouter>): void {
  describe(`TrafficRouter conformance: ${name}`, () => {
    const http = new HttpBackends();
    let router: TrafficRouter | undefined;
    const make = async (): Promise<TrafficRouter> => (router = await makeRouter());

    afterEach(async () => {
      await router?.close();
      router = undefined;
      await http.closeAll();
    });

    it('routes requests to the only backend', async () => {
      const r = await make();
      const [a] = await http.start('a');
      const { listenPort } = await r.setRoute({ service: 'web', listenPort: 0, backends: [a!.backend(1)] });
      const res = await http.request(listenPort, '/hello');
      expect([res.status, res.body]).toEqual([200, 'a']);
      expect(a!.hits).toBe(1);
    });

    it('spreads requests by weight', async () => {
      const r = await make();
      const [a, b] = await http.start('a', 'b');
      const { listenPort } = await r.setRoute({
        service: 'web',
        listenPort: 0,
        backends: [a!.backend(1), b!.backend(3)],
      });
      const counts = await http.countById(listenPort, 1000);
      expect(counts.a! + counts.b!).toBe(1000);
      expect(counts.a).toBeGreaterThanOrEqual(200);
      expect(counts.a).toBeLessThanOrEqual(300);
    });

    it('switches the whole backend set atomically under load', async () => {
      const r = await make();
      const [a, b, c, d] = await http.start('a', 'b', 'c', 'd');
      const { listenPort } = await r.setRoute({
        service: 'web',
        listenPort: 0,
        backends: [a!.backend(1), b!.backend(1)],
      });
      const seen: { id: string; afterSwitch: boolean }[] = [];
      const failures: string[] = [];
      let switched = false;
      let stop = false;
      const loop = async (): Promise<void> => {
        while (!stop) {
          const afterSwitch = switched;
          try {
            const res = await http.request(listenPort);
            if (res.status === 200) seen.push({ id: res.body, afterSwitch });
            else failures.push(`status ${res.status}`);
          } catch (err) {
            failures.push(String(err));
          }
        }
      };
      const loops = Array.from({ length: 8 }, loop);
      await until(() => seen.length >= 100, 'requests before the switch');
      await r.setRoute({ service: 'web', listenPort, backends: [c!.backend(1), d!.backend(2)] });
      switched = true;
      await until(() => seen.filter((s) => s.afterSwitch).length >= 100, 'requests after the switch');
      stop = true;
      await Promise.all(loops);
      expect(failures).toEqual([]);
      expect(new Set(seen.filter((s) => !s.afterSwitch).map((s) => s.id))).toContain('a');
      expect([...new Set(seen.filter((s) => s.afterSwitch).map((s) => s.id))].sort()).toEqual(['c', 'd']);
    });

    it('sends no new requests to a weight-0 backend', async () => {
      const r = await make();
      const [a, b] = await http.start('a', 'b');
      const { listenPort } = await r.setRoute({
        service: 'web',
        listenPort: 0,
        backends: [a!.backend(0), b!.backend(1)],
      });
      expect(await http.countById(listenPort, 50)).toEqual({ b: 50 });
      expect(a!.hits).toBe(0);
    });

    it('answers 503 when no backend has a weight', async () => {
      const r = await make();
      const [a] = await http.start('a');
      const { listenPort } = await r.setRoute({ service: 'web', listenPort: 0, backends: [a!.backend(0)] });
      expect((await http.request(listenPort)).status).toBe(503);
      expect(a!.hits).toBe(0);
    });

    it('drains: the in-flight request finishes with 200, new ones go elsewhere, then the backend is dropped', async () => {
      const r = await make();
      const [a, b] = await http.start('a', 'b');
      const { listenPort } = await r.setRoute({ service: 'web', listenPort: 0, backends: [a!.backend(1)] });
      const slow = http.request(listenPort, '/?delay=1500');
      await until(() => a!.active === 1, 'the slow request reaches a');
      await r.setRoute({ service: 'web', listenPort, backends: [a!.backend(1), b!.backend(1)] });
      // When the drain ends, a must have answered the slow request already (it answers before the router does).
      const activeOnA = r.drain('web', 'a', { timeoutMs: 20_000 }).then(() => a!.active);
      await until(
        async () => (await r.routes())[0]?.backends.find((x) => x.id === 'a')?.weight === 0,
        'a at weight 0',
      );
      expect(await http.countById(listenPort, 20)).toEqual({ b: 20 });
      const res = await slow;
      expect(await activeOnA).toBe(0);
      expect([res.status, res.body]).toEqual([200, 'a']);
      expect((await r.routes())[0]?.backends.map((x) => x.id)).toEqual(['b']);
    });

    it('drain gives up after its timeout: it cuts the request still in flight and drops the backend', async () => {
      const r = await make();
      const [a, b] = await http.start('a', 'b');
      const { listenPort } = await r.setRoute({ service: 'web', listenPort: 0, backends: [a!.backend(1)] });
      // a would answer after 10 minutes: only the drain's timeout can end this test in time.
      let answered = false;
      const slow = http.request(listenPort, '/?delay=600000').then(
        (res) => (answered = res.status === 200),
        () => undefined,
      );
      await until(() => a!.active === 1, 'the slow request reaches a');
      await r.setRoute({ service: 'web', listenPort, backends: [a!.backend(1), b!.backend(1)] });
      await r.drain('web', 'a', { timeoutMs: 300 });
      expect(answered).toBe(false);
      expect((await r.routes())[0]?.backends.map((x) => x.id)).toEqual(['b']);
      await until(() => a!.active === 0, 'the request on a is cut');
      expect(await http.countById(listenPort, 5)).toEqual({ b: 5 });
      await http.closeAll();
      await slow;
    });

    it.each<{ how: string; fault: (backend: TestBackend) => Promise<void> }>([
      { how: 'refuses connections', fault: (x) => x.stop() },
      { how: 'resets connections before answering', fault: async (x) => void (x.mode = 'reset') },
    ])('retries a GET on another backend when one $how', async ({ fault }) => {
      const r = await make();
      const [a, b] = await http.start('a', 'b');
      await fault(a!);
      const { listenPort } = await r.setRoute({
        service: 'web',
        listenPort: 0,
        backends: [a!.backend(1), b!.backend(1)],
      });
      expect(await http.countById(listenPort, 40)).toEqual({ b: 40 });
      await until(async () => {
        const m = byBackend(await r.metrics(), 'web');
        return m.a!.errors > 0 && m.a!.retries > 0;
      }, 'errors and retries counted on a');
    });

    it('counts requests per backend and status class', async () => {
      const r = await make();
      const [a, b] = await http.start('a', 'b');
      b!.mode = 'fail';
      const { listenPort } = await r.setRoute({
        service: 'web',
        listenPort: 0,
        backends: [a!.backend(1), b!.backend(1)],
      });
      const counts = await http.countById(listenPort, 20);
      await until(async () => {
        const m = byBackend(await r.metrics(), 'web');
        return m.a!.requests + m.b!.requests === 20;
      }, 'all 20 requests counted');
      const m = byBackend(await r.metrics(), 'web');
      expect(m.a!.requests).toBe(counts.a);
      expect(m.b!.requests).toBe(counts['status 500']);
      expect(m.a!.responses).toEqual({ '1xx': 0, '2xx': counts.a, '3xx': 0, '4xx': 0, '5xx': 0 });
      expect(m.b!.responses).toEqual({ '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': counts['status 500'] });
      expect([m.a!.errors, m.a!.inFlight, m.b!.errors, m.b!.inFlight]).toEqual([0, 0, 0, 0]);
      expect(m.a!.latencyMs.count).toBe(m.a!.requests);
    });

    it('totals what clients saw per service, and keeps it when backends leave the route', async () => {
      const r = await make();
      const [a, b] = await http.start('a', 'b');
      b!.mode = 'fail';
      const route = { service: 'web', listenPort: 0, backends: [a!.backend(1), b!.backend(1)] };
      const { listenPort } = await r.setRoute(route);
      const counts = await http.countById(listenPort, 20);
      await until(
        async () => (await r.totals()).find((t) => t.service === 'web')?.requests === 20,
        '20 requests',
      );
      expect(await r.totals()).toEqual([{ service: 'web', requests: 20, failed: counts['status 500'] }]);
      await r.setRoute({ ...route, listenPort, backends: [a!.backend(1)] });
      await http.countById(listenPort, 10);
      await until(async () => (await r.totals())[0]?.requests === 30, '30 requests');
      expect(await r.totals()).toEqual([{ service: 'web', requests: 30, failed: counts['status 500'] }]);
    });

    it('round-trips routes, sorted by service, with the ports in use', async () => {
      const r = await make();
      const [a, b] = await http.start('a', 'b');
      const web = { service: 'web', listenPort: 0, backends: [b!.backend(5), a!.backend(0)] };
      const api = { service: 'api', listenPort: 0, backends: [a!.backend(256)] };
      const webPort = (await r.setRoute(web)).listenPort;
      const apiPort = (await r.setRoute(api)).listenPort;
      expect(await r.routes()).toEqual([
        { ...api, listenPort: apiPort },
        { ...web, listenPort: webPort },
      ]);
      expect((await r.setRoute({ ...web, backends: [a!.backend(1)] })).listenPort).toBe(webPort);
    });

    it('stops the listener on removeRoute, and removing an absent route is fine', async () => {
      const r = await make();
      const [a] = await http.start('a');
      const { listenPort } = await r.setRoute({ service: 'web', listenPort: 0, backends: [a!.backend(1)] });
      expect((await http.request(listenPort)).status).toBe(200);
      await r.removeRoute('web');
      await http.closeAll();
      await expect(http.request(listenPort)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(await r.routes()).toEqual([]);
      await r.removeRoute('web');
    });

    it('rejects an invalid route with every problem, and drains of unknown services', async () => {
      const r = await make();
      const bad = {
        service: 'web',
        listenPort: 0,
        backends: [
          { id: 'a', host: '127.0.0.1', port: 1, weight: 300 },
          { id: 'a', host: 'not an ip', port: 0, weight: 1 },
        ],
      };
      const err = await r.setRoute(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).issues.map((i) => i.path)).toEqual([
        'backends[0].weight',
        'backends[1].id',
        'backends[1].host',
        'backends[1].port',
      ]);
      await expect(r.drain('nope', 'a')).rejects.toBeInstanceOf(NotFoundError);
      const [a] = await http.start('a');
      await r.setRoute({ service: 'web', listenPort: 0, backends: [a!.backend(1)] });
      await r.drain('web', 'not-there');
      expect((await r.routes())[0]?.backends.map((x) => x.id)).toEqual(['a']);
    });
  });
}
