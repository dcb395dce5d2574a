/**
 * The route table's conformance: every route the server answers, taken from ROUTES itself so a
 * new route is covered without touching this file, needs a live token (401 without one) and its
 * scope (403 without it), and every mutating route refused is in the audit log. The dashboard's
 * actions and paths no route has are held to the same.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OciStore } from '../oci/index.js';
import type { TokenScope } from '../state/index.js';
import { hasScope } from './auth.js';
import { REGISTRY_CHALLENGE } from './registry-http.js';
import { REGISTRY_ROUTES, type RegistryRoute } from './registry-routes.js';
import { ROUTES, type Route } from './routes.js';
import { call, errorOf, serve as serveFake } from './testkit.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

/** The value of each path parameter in the calls below. */
const PARAMS: Readonly<Record<string, string>> = {
  name: 'web',
  id: 'web-1',
  command: 'promote',
  session: 'exec-1',
  reference: 'latest',
  digest: `sha256:${'0'.repeat(64)}`,
  uuid: '00000000-0000-4000-8000-000000000000',
};

/** A concrete path for a route's pattern: `/v1/services/:name/rollout/:command` → `/v1/services/web/rollout/promote`. */
function pathOf(route: Route | RegistryRoute): string {
  return route.path.replace(/:([a-z]+)/g, (_, param: string) => PARAMS[param] ?? 'x');
}

const label = (route: Route) => `${route.method} ${route.path}`;
const mutating = ROUTES.filter((r) => r.method !== 'GET');

async function serve() {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-routes-store-'));
  undo.push(() => rm(dir, { recursive: true, force: true }));
  const s = await serveFake(undo, { registry: await OciStore.open(dir) });
  const bearer: Readonly<Record<TokenScope, string>> = {
    read: s.tokens.reader,
    deploy: s.tokens.ci,
    admin: s.tokens.admin,
  };
  const names: Readonly<Record<TokenScope, string>> = { read: 'reader', deploy: 'ci', admin: 'admin' };
  return { ...s, bearer, names };
}

describe('every route of the table', () => {
  it('has a scope, and every mutating route one above read and a name in the audit log', () => {
    expect(ROUTES.length).toBeGreaterThan(20);
    for (const route of ROUTES) expect(['read', 'deploy', 'admin'], label(route)).toContain(route.scope);
    expect(mutating.length).toBeGreaterThan(0);
    for (const route of mutating) {
      expect(route.scope, label(route)).not.toBe('read');
      expect(route.audit, label(route)).toBeTypeOf('function');
    }
  });

  it('answers 401 with WWW-Authenticate: Bearer without a token, and with an unknown one', async () => {
    const { api, plane } = await serve();
    for (const route of ROUTES) {
      for (const token of [undefined, 'kiln_000000000000_' + 'A'.repeat(43)]) {
        const res = await call(api.url, pathOf(route), {
          method: route.method,
          ...(token === undefined ? {} : { token }),
        });
        expect(res.status, `${label(route)} with ${token ?? 'no token'}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
        expect(errorOf(res).code).toBe('unauthorized');
      }
    }
    expect(plane.calls).toEqual([]);
  });

  it('answers 403 to a token without the scope, and lets one with it through', async () => {
    const { api, bearer } = await serve();
    for (const route of ROUTES) {
      for (const scope of ['read', 'deploy', 'admin'] as const) {
        const res = await call(api.url, pathOf(route), { method: route.method, token: bearer[scope] });
        const what = `${label(route)} with a ${scope} token`;
        if (hasScope([scope], route.scope)) {
          expect([401, 403], `${what}: ${res.text}`).not.toContain(res.status);
        } else {
          expect(res.status, what).toBe(403);
          expect(errorOf(res)).toMatchObject({
            code: 'forbidden',
            message: expect.stringContaining(route.scope),
          });
        }
      }
    }
  });

  it('answers 403 to a read token on every mutating route, and lets it read every read route', async () => {
    const { api, bearer, plane } = await serve();
    for (const route of mutating) {
      const res = await call(api.url, pathOf(route), { method: route.method, token: bearer.read });
      expect(res.status, label(route)).toBe(403);
    }
    for (const route of ROUTES.filter((r) => r.method === 'GET' && r.scope === 'read')) {
      const res = await call(api.url, pathOf(route), { token: bearer.read });
      expect([401, 403], label(route)).not.toContain(res.status);
    }
    expect(plane.calls.every((c) => !['deploy', 'rollback', 'createToken'].includes(c.method))).toBe(true);
  });

  it('records every refused mutating call in the audit log: who, what, on what, denied', async () => {
    const { api, bearer, store } = await serve();
    const before = store.audit.since(0).length;
    for (const route of mutating) {
      await call(api.url, pathOf(route), { method: route.method });
      await call(api.url, pathOf(route), { method: route.method, token: bearer.read });
    }
    // Refused reads are not audited.
    for (const route of ROUTES.filter((r) => r.method === 'GET')) await call(api.url, pathOf(route));
    const records = store.audit.since(0).slice(before);
    const expected = mutating.flatMap((route) => {
      const { action, target } = route.audit!(PARAMS);
      return [
        { actor: 'anonymous', action, target, result: 'denied' },
        { actor: 'reader', action, target, result: 'denied' },
      ];
    });
    expect(records.map(({ actor, action, target, result }) => ({ actor, action, target, result }))).toEqual(
      expected,
    );
    expect(records[1]!.detail).toMatch(/^token 'reader' has scope read, but POST .* needs '(deploy|admin)'/);
    expect(records.every((r) => r.at !== '')).toBe(true);
  });

  it('records a mutating call the server refuses as a bad request as failed', async () => {
    const { api, bearer, store } = await serve();
    const res = await call(api.url, '/v1/services/web/deploy', {
      method: 'POST',
      token: bearer.deploy,
      body: '{"stratgy": "rolling"}',
    });
    expect(res.status).toBe(400);
    expect(
      store.audit.since(0).map(({ actor, action, target, result }) => [actor, action, target, result]),
    ).toEqual([['ci', 'deploy', 'web', 'failed']]);
    expect(store.audit.since(0)[0]!.detail).toContain('unknown field "stratgy"');
  });
});

describe('paths no route has', () => {
  it('answer 401 without a token, so nothing is learnt of the API, and 404 with one', async () => {
    const { api, bearer } = await serve();
    for (const path of ['/v1/nope', '/v1', '/v2', '/v2/web/nope', '/v1/status/x']) {
      expect((await call(api.url, path)).status, path).toBe(401);
      expect((await call(api.url, path, { method: 'POST' })).status, path).toBe(401);
      expect((await call(api.url, path, { token: bearer.read })).status, path).toBe(404);
    }
  });
});

describe('every route of the registry', () => {
  const registryLabel = (route: RegistryRoute) => `${route.method} ${route.path}`;
  const pushing = REGISTRY_ROUTES.filter((r) => r.method !== 'GET' && r.method !== 'HEAD');
  const registryCode = (text: string) => (JSON.parse(text) as { errors: { code: string }[] }).errors[0]!.code;

  it('needs read to pull and deploy for every part of a push, and names each mutating route in the audit log', () => {
    expect(REGISTRY_ROUTES.length).toBeGreaterThanOrEqual(13);
    for (const route of REGISTRY_ROUTES) {
      const push = route.method !== 'GET' && route.method !== 'HEAD';
      const session = route.path.includes('/uploads/');
      expect(route.scope, registryLabel(route)).toBe(push || session ? 'deploy' : 'read');
      if (push) expect(route.audit, registryLabel(route)).toBeTypeOf('function');
    }
  });

  it('answers 401 with a Basic challenge registry clients answer, without a token and with an unknown one', async () => {
    const { api } = await serve();
    for (const route of REGISTRY_ROUTES) {
      for (const token of [undefined, 'kiln_000000000000_' + 'A'.repeat(43)]) {
        const res = await call(api.url, pathOf(route), {
          method: route.method,
          ...(token === undefined ? {} : { token }),
        });
        expect(res.status, `${registryLabel(route)} with ${token ?? 'no token'}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe(REGISTRY_CHALLENGE);
        if (route.method !== 'HEAD') expect(registryCode(res.text)).toBe('UNAUTHORIZED');
      }
    }
  });

  it('answers 403 DENIED to a read token on every part of a push, and lets read and Basic auth pull', async () => {
    const { api, bearer } = await serve();
    for (const route of REGISTRY_ROUTES) {
      for (const scope of ['read', 'deploy', 'admin'] as const) {
        const res = await call(api.url, pathOf(route), { method: route.method, token: bearer[scope] });
        const what = `${registryLabel(route)} with a ${scope} token`;
        if (hasScope([scope], route.scope))
          expect([401, 403], `${what}: ${res.text}`).not.toContain(res.status);
        else {
          expect(res.status, what).toBe(403);
          expect(registryCode(res.text), what).toBe('DENIED');
        }
      }
    }
    for (const [user, token] of [
      ['kiln', bearer.read],
      ['', bearer.read],
      ['anyone', bearer.deploy],
    ]) {
      const res = await fetch(`${api.url}/v2/`, {
        headers: { authorization: `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}` },
      });
      expect(res.status, `Basic ${user}`).toBe(200);
      expect(await res.text()).toBe('{}');
    }
    const wrong = await fetch(`${api.url}/v2/`, {
      headers: { authorization: `Basic ${Buffer.from('kiln:not-a-token').toString('base64')}` },
    });
    expect(wrong.status).toBe(401);
  });

  it('records every refused part of a push in the audit log: who, what, on what, denied', async () => {
    const { api, bearer, store } = await serve();
    for (const route of pushing) {
      await call(api.url, pathOf(route), { method: route.method });
      await call(api.url, pathOf(route), { method: route.method, token: bearer.read });
    }
    for (const route of REGISTRY_ROUTES.filter((r) => !pushing.includes(r)))
      await call(api.url, pathOf(route));
    const records = store.audit.since(0);
    const expected = pushing.flatMap((route) => {
      const { action, target } = route.audit!(PARAMS, new URLSearchParams());
      return [
        { actor: 'anonymous', action, target, result: 'denied' },
        { actor: 'reader', action, target, result: 'denied' },
      ];
    });
    expect(records.map(({ actor, action, target, result }) => ({ actor, action, target, result }))).toEqual(
      expected,
    );
    expect(records[1]!.detail).toMatch(/^token 'reader' has scope read, but POST .* needs 'deploy'/);
  });
});

describe('the dashboard', () => {
  const ACTIONS = [
    '/ui/services/web/deploy',
    '/ui/services/web/rollback',
    '/ui/services/web/rollout/promote',
    '/ui/services/web/rollout/abort',
  ];
  const form = async (url: string, session?: string) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'hx-request': 'true', ...(session ? { cookie: `kiln_session=${session}` } : {}) },
      redirect: 'manual',
    });
    await res.text();
    return res.status;
  };

  it('answers 401 to an action without a session and 403 to a read session, recording who was refused', async () => {
    const { api, bearer, store, plane } = await serve();
    for (const action of [...ACTIONS, '/ui/logout'])
      expect(await form(`${api.url}${action}`), action).toBe(401);
    for (const action of ACTIONS) expect(await form(`${api.url}${action}`, bearer.read), action).toBe(403);
    expect(plane.calls).toEqual([]);
    expect(
      store.audit.since(0).map(({ actor, action, target, result }) => [actor, action, target, result]),
    ).toEqual([
      ['reader', 'deploy', 'web', 'denied'],
      ['reader', 'rollback', 'web', 'denied'],
      ['reader', 'rollout.promote', 'web', 'denied'],
      ['reader', 'rollout.abort', 'web', 'denied'],
    ]);
  });

  it('records a deploy whose form it refuses as failed, and leaves the rest to the plane', async () => {
    const { api, bearer, store, plane } = await serve();
    const res = await fetch(`${api.url}/ui/services/web/deploy`, {
      method: 'POST',
      headers: {
        'hx-request': 'true',
        cookie: `kiln_session=${bearer.deploy}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ image: 'x'.repeat(600) }).toString(),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('class="error"');
    expect(plane.calls.map((c) => c.method)).not.toContain('deploy');
    const [record] = store.audit.since(0);
    expect(record).toMatchObject({ actor: 'ci', action: 'deploy', target: 'web', result: 'failed' });
    expect(record!.detail).toMatch(/^dashboard: request body: invalid/);
  });

  it('sends every page to the login form without a session', async () => {
    const { api } = await serve();
    for (const page of ['/ui/', '/ui/images', '/ui/audit', '/ui/services/web', '/ui/events']) {
      const res = await fetch(`${api.url}${page}`, { redirect: 'manual' });
      await res.text();
      expect(res.status, page).toBe(303);
      expect(res.headers.get('location')).toBe('/ui/login');
    }
  });
});
