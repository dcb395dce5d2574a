/**
 * The built-in router and a backend whose host is lost: it stops answering altogether (a blackhole
 * in a network namespace the test made, see test/support/netns-host.ts), so connections to it hang
 * rather than fail. The router must not wait for the control plane to notice.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpBackends } from '../../test/support/http-backends.js';
import { netnsUnavailable, startNetnsHost, type NetnsHost } from '../../test/support/netns-host.js';
import { createLocalRouter, type LocalRouter } from './local-router.js';
import { DEFAULT_CONNECT_TIMEOUT_MS } from './proxy.js';

const unavailable = netnsUnavailable();
if (unavailable) console.warn(`skipping the lost-backend router tests: ${unavailable}`);

describe.skipIf(unavailable !== undefined)('built-in proxy, a backend on a lost host', () => {
  const http = new HttpBackends();
  let router: LocalRouter;
  let host: NetnsHost;

  beforeEach(async () => {
    router = createLocalRouter();
    host = await startNetnsHost();
  });
  afterEach(async () => {
    await router.close();
    await http.closeAll();
    await host.close();
  });

  /** The route `web`: the namespace host's server `lost`, then any loopback backends. */
  async function route(
    lostPort: number,
    ...others: { backend(w: number): { id: string; host: string; port: number; weight: number } }[]
  ) {
    const lost = { id: 'lost', host: host.address, port: lostPort, weight: 1 };
    return router.setRoute({
      service: 'web',
      listenPort: port,
      backends: [lost, ...others.map((b) => b.backend(1))],
    });
  }
  let port = 0;

  it(`fails a connection not made within ${DEFAULT_CONNECT_TIMEOUT_MS} ms, retries the GET elsewhere and skips the host after`, async () => {
    const lostPort = await host.serve('lost');
    const [b] = await http.start('b');
    expect(await (await fetch(`http://${host.address}:${lostPort}/`)).text()).toBe('lost');
    ({ listenPort: port } = await route(lostPort, b!));
    await host.cutOff();
    const bodies: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await http.request(port, '/');
      bodies.push(`${res.status} ${res.body}`);
    }
    expect(bodies).toEqual(Array(10).fill('200 b'));
    // One GET went to the host, and its connection timed out; it was retried on b, and the host
    // was skipped from then on: the other nine went straight to b.
    const lost = (await router.metrics()).find((m) => m.backendId === 'lost')!;
    expect(lost).toMatchObject({ requests: 1, errors: 1, retries: 1, inFlight: 0 });
    expect(b!.hits).toBe(10);
  }, 30_000);

  it('skips every backend on a host that took no connection, not just the one that timed out', async () => {
    const [port1, port2] = [await host.serve('lost1'), await host.serve('lost2')];
    const [b] = await http.start('b');
    ({ listenPort: port } = await router.setRoute({
      service: 'web',
      listenPort: port,
      backends: [
        { id: 'lost1', host: host.address, port: port1, weight: 1 },
        { id: 'lost2', host: host.address, port: port2, weight: 1 },
        b!.backend(1),
      ],
    }));
    await host.cutOff();
    for (let i = 0; i < 10; i++) expect((await http.request(port, '/')).body).toBe('b');
    // One connection timed out; its neighbour on the same lost host was never tried.
    const attempts = (await router.metrics())
      .filter((m) => m.backendId !== 'b')
      .map((m) => m.requests)
      .sort();
    expect(attempts).toEqual([0, 1]);
  }, 30_000);

  it('moves the GETs waiting on a host that took no connection to another backend', async () => {
    const lostPort = await host.serve('lost');
    const [b] = await http.start('b');
    // One GET while the host is up leaves the router one idle keep-alive socket to it.
    ({ listenPort: port } = await route(lostPort));
    expect((await http.request(port, '/')).body).toBe('lost');
    ({ listenPort: port } = await route(lostPort, b!));
    await host.cutOff();
    // Four at once, round robin: one goes out on the old socket and waits for an answer that
    // never comes; one needs a new connection, which times out and sends both to b.
    const answers = await Promise.all(
      [0, 1, 2, 3].map(() => http.request(port, '/').then((r) => `${r.status} ${r.body}`)),
    );
    expect(answers).toEqual(Array(4).fill('200 b'));
    expect(b!.hits).toBe(4);
    const lost = (await router.metrics()).find((m) => m.backendId === 'lost')!;
    expect(lost).toMatchObject({ requests: 3, errors: 2, retries: 2, inFlight: 0 });
  }, 30_000);
});
