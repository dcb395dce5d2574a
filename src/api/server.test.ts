import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../errors/index.js';
import { INTERNAL_ERROR_MESSAGE, MAX_BODY_BYTES } from './http.js';
import { call, errorOf, serve as serveFake } from './testkit.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

const serve = () => serveFake(undo);

describe('API server: authentication and scopes', () => {
  it('answers health to any live token, and 401 without one', async () => {
    const { api, tokens } = await serve();
    expect((await call(api.url, '/v1/health')).status).toBe(401);
    const res = await call(api.url, '/v1/health', { token: tokens.reader });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.json()).toEqual({ ok: true, version: '9.9.9', pid: process.pid });
  });

  it('answers 401 with WWW-Authenticate: Bearer for a missing, malformed, unknown or revoked token', async () => {
    const { api, store, tokens } = await serve();
    const revoked = store.tokens.create('old', ['admin']);
    store.tokens.revoke('old');
    const attempts: (string | undefined)[] = [
      undefined,
      '',
      'kiln_nope',
      tokens.admin.slice(0, -1) + (tokens.admin.endsWith('A') ? 'B' : 'A'),
      revoked.secret,
    ];
    for (const token of attempts) {
      const res = await call(api.url, '/v1/status', token === undefined ? {} : { token });
      expect(res.status, String(token)).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(errorOf(res).code).toBe('unauthorized');
    }
    const basic = await fetch(`${api.url}/v1/status`, {
      headers: { authorization: `Basic ${tokens.admin}` },
    });
    expect(basic.status).toBe(401);
  });

  it('answers 403 when the scope is missing, and lets admin do everything', async () => {
    const { api, tokens, plane } = await serve();
    const readDeploy = await call(api.url, '/v1/services/web/deploy', {
      method: 'POST',
      token: tokens.reader,
    });
    expect(readDeploy.status).toBe(403);
    expect(errorOf(readDeploy)).toEqual({
      code: 'forbidden',
      message:
        "token 'reader' has scope read, but POST /v1/services/:name/deploy needs 'deploy' (or 'admin'): " +
        'use a token with that scope',
    });
    // deploy implies read (a CI token follows its own rollout); read implies nothing more
    expect((await call(api.url, '/v1/status', { token: tokens.ci })).status).toBe(200);
    expect((await call(api.url, '/v1/status', { token: tokens.reader })).status).toBe(200);
    expect(
      (await call(api.url, '/v1/services/web/deploy', { method: 'POST', token: tokens.ci })).status,
    ).toBe(202);
    expect((await call(api.url, '/v1/status', { token: tokens.admin })).status).toBe(200);
    expect(
      (await call(api.url, '/v1/services/web/rollback', { method: 'POST', token: tokens.admin })).status,
    ).toBe(
      400, // the fake has only r1: there is nothing to go back to
    );
    expect(plane.calls.map((c) => c.method)).toEqual(['status', 'status', 'deploy', 'status', 'rollback']);
  });
});

describe('API server: routes', () => {
  it('passes each route its parameters, query and the token name as the actor', async () => {
    const { api, plane, tokens } = await serve();
    const token = tokens.admin;
    plane.logText.set('web-1', 'a\nb\nc\n');
    expect((await call(api.url, '/v1/status?service=web', { token })).status).toBe(200);
    expect((await call(api.url, '/v1/services/web/releases', { token })).json()).toEqual([]);
    expect((await call(api.url, '/v1/instances?service=web', { token })).json()).toEqual([]);
    const logs = await call(api.url, '/v1/instances/web-1/logs?tail=2', { token });
    expect(logs.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(logs.text).toBe('b\nc\n');
    const deployed = await call(api.url, '/v1/services/web/deploy', {
      method: 'POST',
      token,
      body: JSON.stringify({ strategy: 'bluegreen', reason: 'new login page' }),
    });
    expect(deployed.status).toBe(202);
    const id = (deployed.json() as { rollout: { id: string } }).rollout.id;
    expect((await call(api.url, `/v1/rollouts/${id}`, { token })).json()).toMatchObject({ id, to: 'r1' });
    await call(api.url, '/v1/services/web/deploy', { method: 'POST', token });
    expect(
      (await call(api.url, '/v1/services/web/rollback', { method: 'POST', token, body: '{"to":"r1"}' }))
        .status,
    ).toBe(202);
    expect((await call(api.url, '/v1/events?since=5&service=web&limit=10', { token })).json()).toEqual([]);
    expect((await call(api.url, '/v1/events', { token })).status).toBe(200);
    expect(plane.calls).toEqual([
      { method: 'status', args: ['web'] },
      { method: 'releases', args: ['web'] },
      { method: 'instances', args: ['web'] },
      { method: 'logs', args: ['web-1', 2] },
      { method: 'deploy', args: ['web', { strategy: 'bluegreen', reason: 'new login page' }, 'admin'] },
      { method: 'rollout', args: [id] },
      { method: 'deploy', args: ['web', {}, 'admin'] },
      { method: 'rollback', args: ['web', { to: 'r1' }, 'admin'] },
      { method: 'events', args: [5, 'web', 10] },
      { method: 'events', args: [0] },
    ]);
  });

  it('decodes path parameters', async () => {
    const { api, plane, tokens } = await serve();
    plane.seedService('a b');
    expect((await call(api.url, '/v1/services/a%20b/releases', { token: tokens.reader })).status).toBe(200);
    expect(plane.calls).toEqual([{ method: 'releases', args: ['a b'] }]);
    const bad = await call(api.url, '/v1/services/%E0%A4%A/releases', { token: tokens.reader });
    expect(bad.status).toBe(400);
  });

  it('answers 404 for an unknown route and 405 with Allow for a wrong method', async () => {
    const { api, tokens } = await serve();
    for (const path of ['/v1/nope', '/v2/status', '/v1/status/', '/v1/services//releases', '/v1']) {
      const res = await call(api.url, path, { token: tokens.admin });
      expect(res.status, path).toBe(404);
      expect(errorOf(res).code).toBe('not-found');
    }
    const post = await call(api.url, '/v1/status', { method: 'POST', token: tokens.admin });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
    const get = await call(api.url, '/v1/services/web/deploy', { token: tokens.admin });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(errorOf(get).code).toBe('method-not-allowed');
  });
});

describe('API server: errors', () => {
  it('maps kiln errors to 400, 404, 409 and 503 with their message', async () => {
    const { api, plane, tokens } = await serve();
    const cases = [
      [
        new ValidationError('kiln.yaml', [{ path: 'services[0]', message: 'bad', fix: 'fix it' }]),
        400,
        'validation',
      ],
      [new NotFoundError('no service api is declared'), 404, 'not-found'],
      [new ConflictError('a rollout of web is in progress'), 409, 'conflict'],
      [new UnavailableError('the runtime is gone'), 503, 'unavailable'],
    ] as const;
    for (const [err, status, code] of cases) {
      plane.failNext('status', err);
      const res = await call(api.url, '/v1/status', { token: tokens.reader });
      expect(res.status).toBe(status);
      expect(errorOf(res)).toMatchObject({ code, message: err.message });
    }
    plane.failNext('status', cases[0][0]);
    expect(errorOf(await call(api.url, '/v1/status', { token: tokens.reader }))).toEqual({
      code: 'validation',
      message: cases[0][0].message,
      file: 'kiln.yaml',
      issues: [{ path: 'services[0]', message: 'bad', fix: 'fix it' }],
    });
  });

  it('answers anything else 500 with a generic message and logs the real one', async () => {
    const { api, plane, tokens, logs } = await serve();
    plane.failNext('instances', new Error('database password is hunter2'));
    const res = await call(api.url, '/v1/instances', { token: tokens.reader });
    expect(res.status).toBe(500);
    expect(errorOf(res)).toEqual({ code: 'internal', message: INTERNAL_ERROR_MESSAGE });
    expect(res.text).not.toContain('hunter2');
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain('GET /v1/instances failed: Error: database password is hunter2');
  });

  it('answers 400 naming the field and the fix for bad JSON and wrong field types', async () => {
    const { api, plane, tokens } = await serve();
    const post = async (path: string, body: string) =>
      errorOf(await call(api.url, path, { method: 'POST', token: tokens.admin, body }));
    expect(await post('/v1/services/web/deploy', '{"image": ')).toMatchObject({
      code: 'validation',
      file: 'request body',
      issues: [{ path: '', message: expect.stringMatching(/^is not JSON/), fix: expect.any(String) }],
    });
    expect((await post('/v1/services/web/deploy', '{"image": 5, "strategy": "blue"}')).issues).toEqual([
      {
        path: 'image',
        message: 'must be a string, not number 5',
        fix: "give an image name in the server's store, a digest (sha256:…), or registry/repository@sha256:… to pull, as a string",
      },
      {
        path: 'strategy',
        message: 'must be one of "rolling", "bluegreen", "canary"',
        fix: 'use "rolling", "bluegreen" or "canary", or leave it out to use the service\'s own',
      },
    ]);
    expect((await post('/v1/services/web/deploy', '{"stratgy": "rolling"}')).issues).toEqual([
      {
        path: '',
        message: 'unknown field "stratgy"',
        fix: 'remove it or check its spelling; the fields are image, strategy, reason',
      },
    ]);
    expect((await post('/v1/services/web/deploy', '[]')).issues?.[0]?.message).toBe('must be a JSON object');
    expect((await post('/v1/services/web/rollback', '{"to": "3"}')).issues?.[0]).toMatchObject({
      path: 'to',
      fix: expect.stringContaining('"r3"'),
    });
    expect(plane.calls).toEqual([]);
  });

  it('answers 400 for bad query parameters, naming each', async () => {
    const { api, plane, tokens } = await serve();
    const get = async (path: string) => errorOf(await call(api.url, path, { token: tokens.admin }));
    expect((await get('/v1/instances/x/logs?tail=-1')).issues).toEqual([
      { path: 'tail', message: 'tail must be a whole number ≥ 0', fix: expect.stringContaining('?tail=100') },
    ]);
    expect((await get('/v1/events?limit=0&since=x')).issues?.map((i) => i.path)).toEqual(['since', 'limit']);
    expect((await get('/v1/status?services=web')).issues?.[0]?.message).toBe('unknown field "services"');
    expect((await get('/v1/status?service=a&service=b')).issues?.[0]).toEqual({
      path: 'service',
      message: 'is given more than once',
      fix: 'give it once',
    });
    expect((await get('/v1/services/web/releases?x=1')).issues?.[0]?.fix).toBe(
      'remove it: none is taken here',
    );
    expect(plane.calls).toEqual([]);
  });

  it('answers 413 for a body over 1 MiB, read or only declared', async () => {
    const { api, plane, tokens } = await serve();
    const big = Buffer.alloc(MAX_BODY_BYTES + 1, 0x20);
    const res = await call(api.url, '/v1/services/web/deploy', {
      method: 'POST',
      token: tokens.admin,
      body: big,
    });
    expect(res.status).toBe(413);
    expect(errorOf(res).code).toBe('payload-too-large');
    // exactly the limit is fine (spaces around an empty object)
    big[0] = 0x7b;
    const fits = big.subarray(0, MAX_BODY_BYTES);
    fits[MAX_BODY_BYTES - 1] = 0x7d;
    expect(
      (await call(api.url, '/v1/services/web/deploy', { method: 'POST', token: tokens.admin, body: fits }))
        .status,
    ).toBe(202);
    const declared = await new Promise<{ status: number; connection: string | undefined }>(
      (resolve, reject) => {
        const req = http.request(`${api.url}/v1/services/web/deploy`, {
          method: 'POST',
          headers: { authorization: `Bearer ${tokens.admin}`, 'content-length': String(1 << 30) },
        });
        req.on('response', (r) => {
          r.resume();
          resolve({ status: r.statusCode ?? 0, connection: r.headers.connection });
        });
        req.on('error', reject);
        req.flushHeaders();
      },
    );
    expect(declared).toEqual({ status: 413, connection: 'close' });
    expect(plane.calls.map((c) => c.method)).toEqual(['deploy']);
  });
});

describe('API server: lifecycle', () => {
  it('listens on loopback, reports its URL and refuses connections once closed', async () => {
    const { api, tokens } = await serve();
    expect(api.url).toBe(`http://127.0.0.1:${api.port}`);
    expect((await call(api.url, '/v1/status', { token: tokens.admin })).status).toBe(200);
    await api.close();
    await api.close(); // twice is harmless
    await expect(fetch(`${api.url}/v1/health`)).rejects.toThrow();
  });
});
