import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpBackends } from '../../test/support/http-backends.js';
import { createLocalRouter, type LocalRouter } from './local-router.js';

describe('built-in proxy', () => {
  const http = new HttpBackends();
  let router: LocalRouter | undefined;

  afterEach(async () => {
    await router?.close();
    router = undefined;
    await http.closeAll();
  });

  async function serve(...ids: string[]) {
    router = createLocalRouter();
    const backends = await http.start(...ids);
    const { listenPort } = await router.setRoute({
      service: 'web',
      listenPort: 0,
      backends: backends.map((b) => b.backend(1)),
    });
    return { port: listenPort, backends };
  }

  it('drops hop-by-hop headers and adds x-forwarded-for, x-forwarded-proto and via', async () => {
    const { port } = await serve('a');
    const res = await http.request(port, '/?echo=headers', {
      headers: {
        connection: 'keep-alive, x-secret',
        'x-secret': 'no',
        'x-keep': 'yes',
        'x-forwarded-for': '10.0.0.1',
        te: 'trailers',
      },
    });
    const seen = JSON.parse(res.body) as Record<string, string>;
    expect(seen['x-keep']).toBe('yes');
    expect(seen['x-secret']).toBeUndefined();
    expect(seen.te).toBeUndefined();
    expect(seen['x-forwarded-for']).toBe('10.0.0.1, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen.via).toBe('1.1 kiln');
    expect(res.headers.via).toBe('1.1 kiln');
    expect(res.headers['x-backend']).toBe('a');
  });

  it('streams a large request body through and back unchanged', async () => {
    const { port } = await serve('a');
    const body = randomBytes(4 << 20);
    const res = await http.request(port, '/?echo=body', { method: 'POST', body });
    expect(res.status).toBe(200);
    expect(res.raw.equals(body)).toBe(true);
  });

  it('does not retry a POST whose connection was reset', async () => {
    const { port, backends } = await serve('a', 'b');
    backends[0]!.mode = 'reset';
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++)
      statuses.push((await http.request(port, '/', { method: 'POST', body: 'x' })).status);
    expect(statuses.filter((s) => s === 502).length).toBe(backends[0]!.hits);
    expect(statuses.filter((s) => s === 200).length).toBe(backends[1]!.hits);
    expect(backends[0]!.hits).toBeGreaterThan(0);
  });

  it('retries a PUT with a body on another backend when the connection is refused', async () => {
    const { port, backends } = await serve('a', 'b');
    await backends[0]!.stop();
    for (let i = 0; i < 5; i++) {
      const res = await http.request(port, '/?echo=body', { method: 'PUT', body: `payload ${i}` });
      expect([res.status, res.body, res.headers['x-backend']]).toEqual([200, `payload ${i}`, 'b']);
    }
  });

  it('answers 502 naming the backend when no other backend is left to retry on', async () => {
    const { port, backends } = await serve('a');
    await backends[0]!.stop();
    const res = await http.request(port, '/');
    expect(res.status).toBe(502);
    expect(res.body).toMatch(/backend a failed \(ECONNREFUSED\)/);
  });

  it('cuts requests still in flight when a drain times out', async () => {
    const { port, backends } = await serve('a');
    const [a] = backends;
    const [b] = await http.start('b');
    const slow = http.request(port, '/?delay=60000', { method: 'POST', body: 'x' });
    await expect.poll(() => a!.active).toBe(1);
    await router!.setRoute({ service: 'web', listenPort: port, backends: [a!.backend(1), b!.backend(1)] });
    await router!.drain('web', 'a', { timeoutMs: 100 });
    expect((await slow).status).toBe(502);
    await expect.poll(() => a!.active).toBe(0);
    expect(b!.hits).toBe(0);
  });

  it('moves a GET waiting on a backend that left the route (a lost node answers nothing) to one left', async () => {
    const { port, backends } = await serve('a');
    const [a] = backends;
    const [b] = await http.start('b');
    a!.mode = 'hang';
    const waiting = http.request(port, '/');
    await expect.poll(() => a!.active).toBe(1);
    await router!.setRoute({ service: 'web', listenPort: port, backends: [b!.backend(1)] });
    const res = await waiting;
    expect([res.status, res.headers['x-backend']]).toEqual([200, 'b']);
    expect([a!.hits, b!.hits]).toEqual([1, 1]);
  });

  it('leaves a POST waiting on a backend that left the route where it is: it is not safe to send twice', async () => {
    const { port, backends } = await serve('a');
    const [a] = backends;
    const [b] = await http.start('b');
    a!.mode = 'hang';
    let settled = false;
    const posted = http.request(port, '/', { method: 'POST', body: 'x' }).finally(() => (settled = true));
    await expect.poll(() => a!.active).toBe(1);
    await router!.setRoute({ service: 'web', listenPort: port, backends: [b!.backend(1)] });
    expect((await http.request(port, '/')).headers['x-backend']).toBe('b');
    expect(settled).toBe(false);
    expect(b!.hits).toBe(1);
    await a!.stop();
    await posted.catch(() => undefined);
  });

  it('passes status codes, including 4xx, through as they are', async () => {
    const { port } = await serve('a');
    expect((await http.request(port, '/?status=404')).status).toBe(404);
    expect((await http.request(port, '/?status=204')).status).toBe(204);
    const m = await router!.metrics();
    expect(m[0]!.responses).toMatchObject({ '2xx': 1, '4xx': 1 });
  });
});
