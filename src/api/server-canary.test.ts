import { afterEach, describe, expect, it } from 'vitest';
import { call, errorOf, serve as serveFake } from './testkit.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

const serve = () => serveFake(undo);

describe('API server: rollout and ring routes', () => {
  const digest = (c: string) => `sha256:${c.repeat(64)}`;
  const ring = {
    base: 'base',
    baseDigest: digest('a'),
    targets: [{ service: 'web', image: 'app', digest: digest('b') }],
  };

  /** A server whose fake has a canary of web in progress. */
  async function serveCanary() {
    const served = await serve();
    served.plane.rolloutDetails.set('web', {
      id: 'rollout-1',
      service: 'web',
      from: 'r1',
      to: 'r2',
      strategy: 'canary',
      phase: 'analysing',
      done: false,
      createdAt: 'x',
      updatedAt: 'x',
      conditions: [],
    });
    return served;
  }

  const routes: readonly [method: 'GET' | 'POST', path: string, body: string | undefined, status: number][] =
    [
      ['GET', '/v1/services/web/rollout', undefined, 200],
      ['GET', '/v1/rings?limit=2', undefined, 200],
      ['POST', '/v1/services/web/rollout/pause', undefined, 200],
      ['POST', '/v1/services/web/rollout/promote', '{"full":true}', 200],
      ['POST', '/v1/rings', JSON.stringify(ring), 202],
    ];

  it('answers 401 without a token, 403 for a read token on POST, and serves read and deploy tokens', async () => {
    // Given a canary of web in progress
    const { api, plane, tokens } = await serveCanary();
    // When each route is called without a token, then with a read token, then with a deploy token
    for (const [method, path, body] of routes) {
      const res = await call(api.url, path, { method, ...(body === undefined ? {} : { body }) });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(errorOf(res).code).toBe('unauthorized');
    }
    for (const [method, path, body, status] of routes) {
      const res = await call(api.url, path, { method, token: tokens.reader, ...(body ? { body } : {}) });
      expect(res.status, `${method} ${path}`).toBe(method === 'GET' ? status : 403);
      if (method === 'POST') expect(errorOf(res).message).toContain("needs 'deploy'");
    }
    for (const [method, path, body, status] of routes) {
      const res = await call(api.url, path, { method, token: tokens.ci, ...(body ? { body } : {}) });
      expect(res.status, `${method} ${path}`).toBe(status);
    }
    // Then the plane saw the GETs twice (read token, then deploy token) and each POST once, as ci
    expect(plane.calls).toEqual([
      { method: 'serviceRollout', args: ['web'] },
      { method: 'rings', args: [2] },
      { method: 'serviceRollout', args: ['web'] },
      { method: 'rings', args: [2] },
      { method: 'controlRollout', args: ['web', 'pause', {}, 'ci'] },
      { method: 'controlRollout', args: ['web', 'promote', { full: true }, 'ci'] },
      { method: 'startRing', args: [ring, 'ci'] },
    ]);
  });

  it('answers 400 naming command and the valid ones for an unknown rollout command', async () => {
    const { api, plane, tokens } = await serveCanary();
    const res = await call(api.url, '/v1/services/web/rollout/restart', { method: 'POST', token: tokens.ci });
    expect(res.status).toBe(400);
    expect(errorOf(res).issues).toEqual([
      {
        path: 'command',
        message: '"restart" is not a rollout command',
        fix: 'use one of promote, abort, pause, resume',
      },
    ]);
    const full = await call(api.url, '/v1/services/web/rollout/promote', {
      method: 'POST',
      token: tokens.ci,
      body: '{"full":"yes"}',
    });
    expect(full.status).toBe(400);
    expect(errorOf(full).issues?.[0]).toMatchObject({
      path: 'full',
      message: 'must be a boolean, not string "yes"',
    });
    expect(plane.calls).toEqual([]);
  });

  it.each<[string, object, string, string | RegExp]>([
    [
      'a digest that is not sha256',
      { ...ring, baseDigest: 'md5:abc' },
      'baseDigest',
      'must be a sha256 digest',
    ],
    [
      "a target's bad digest",
      { ...ring, targets: [{ ...ring.targets[0], digest: digest('A') }] },
      'targets.0.digest',
      'must be a sha256 digest',
    ],
    ['no targets', { ...ring, targets: [] }, 'targets', /at least 1|>=1/],
    [
      'a missing base',
      { baseDigest: ring.baseDigest, targets: ring.targets },
      'base',
      'must be a string, not missing',
    ],
    ['an unknown field', { ...ring, wave: 1 }, '', 'unknown field "wave"'],
  ])('answers 400 for a ring with %s, naming the field', async (_, body, path, message) => {
    const { api, plane, tokens } = await serve();
    const res = await call(api.url, '/v1/rings', {
      method: 'POST',
      token: tokens.ci,
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(400);
    const issues = errorOf(res).issues ?? [];
    expect(issues.map((i) => i.path)).toEqual([path]);
    expect(issues[0]?.message).toMatch(message);
    expect(plane.calls).toEqual([]);
  });

  it('answers 400 for a rings limit out of range', async () => {
    const { api, plane, tokens } = await serve();
    for (const limit of ['0', '1000', 'x']) {
      const res = await call(api.url, `/v1/rings?limit=${limit}`, { token: tokens.reader });
      expect(res.status, limit).toBe(400);
      expect(errorOf(res).issues?.[0]).toMatchObject({
        path: 'limit',
        fix: expect.stringContaining('?limit=5'),
      });
    }
    expect(plane.calls).toEqual([]);
  });
});
