import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { TokenScope } from '../../state/index.js';
import type { TokenVerifier } from '../auth.js';
import { ApiClient } from '../client.js';
import { FAKE_DIGEST, FAKE_TIME, FakeControlPlane } from '../fake.js';
import { startApiServer } from '../server.js';
import type { RolloutDetailJson } from '../types.js';
import { escapeHtml, html, raw } from './html.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

const SECRETS: Readonly<Record<string, { name: string; scopes: TokenScope[] }>> = {
  'kiln_admin-secret': { name: 'alice', scopes: ['admin'] },
  'kiln_deploy-secret': { name: 'ci', scopes: ['deploy'] },
  'kiln_read-secret': { name: 'viewer', scopes: ['read'] },
};
const tokens: TokenVerifier = { verify: (secret) => SECRETS[secret] };
const ADMIN = 'kiln_admin-secret';
const READER = 'kiln_read-secret';

async function serve() {
  const plane = new FakeControlPlane();
  plane.seedService('web');
  await plane.deploy('web', { reason: 'first' }, 'alice');
  const api = await startApiServer({ plane, tokens, version: '9.9.9', log: () => {} });
  undo.push(() => api.close());
  return { api, plane };
}

interface Got {
  status: number;
  headers: Headers;
  text: string;
}

async function get(
  url: string,
  init: { method?: string; session?: string; hx?: boolean; form?: Record<string, string> } = {},
): Promise<Got> {
  const headers: Record<string, string> = {};
  if (init.session !== undefined) headers.cookie = `kiln_session=${init.session}`;
  if (init.hx) headers['hx-request'] = 'true';
  if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers,
    redirect: 'manual',
    ...(init.form ? { body: new URLSearchParams(init.form).toString() } : {}),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const canary = (over: Partial<RolloutDetailJson> = {}): RolloutDetailJson => ({
  id: 'rollout-9',
  service: 'web',
  from: 'r1',
  to: 'r2',
  strategy: 'canary',
  phase: 'analysing',
  done: false,
  createdAt: FAKE_TIME,
  updatedAt: FAKE_TIME,
  conditions: [],
  canary: {
    step: 1,
    steps: [{ weight: 25 }, { weight: 100 }],
    weight: 25,
    looks: [
      {
        step: 1,
        weight: 25,
        look: 1,
        looks: 3,
        at: FAKE_TIME,
        score: 90,
        decision: 'continue',
        reason: 'so far so good',
        samples: { baseline: 100, canary: 30 },
        warnings: [],
        metrics: [
          {
            name: 'latency',
            classification: 'pass',
            kind: 'continuous',
            direction: 'increase',
            critical: false,
            group: 'latency',
            pValue: 0.4,
            alpha: 0.01,
            u: 1,
            z: 0.2,
            effect: 0.01,
            tolerance: 0.2,
            shift: { estimate: 1, lower: 0, upper: 2, confidence: 0.95 },
            baseline: { n: 100, median: 10, mean: 11 },
            canary: { n: 30, median: 10, mean: 11 },
            reason: 'no slower',
          },
        ],
      },
    ],
  },
  ...over,
});

describe('html', () => {
  it('escapes interpolations, keeps nested fragments and raw markup', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`<p>${inner}${[1, '<', null, undefined, false]}${raw('<br>')}</p>`.value).toBe(
      '<p><b>&lt;i&gt;</b>1&lt;<br></p>',
    );
  });
});

describe('dashboard: sessions', () => {
  it('redirects / to /ui/ and pages without a session to the login form', async () => {
    const { api } = await serve();
    const root = await get(`${api.url}/`);
    expect(root.status).toBe(303);
    expect(root.headers.get('location')).toBe('/ui/');
    for (const path of ['/ui/', '/ui/services/web', '/ui/images', '/ui/chaos', '/ui/audit', '/ui/events']) {
      const res = await get(`${api.url}${path}`);
      expect(res.status, path).toBe(303);
      expect(res.headers.get('location')).toBe('/ui/login');
    }
    const bad = await get(`${api.url}/ui/`, { session: 'kiln_nope' });
    expect(bad.headers.get('location')).toBe('/ui/login');
    expect((await get(`${api.url}/ui/services/web/rollback`, { method: 'POST', hx: true })).status).toBe(401);
    const login = await get(`${api.url}/ui/login`);
    expect(login.status).toBe(200);
    expect(login.text).toContain('<form id="login" method="post" action="/ui/login">');
    expect(login.text).toContain('<input id="token" name="token" type="password"');
    expect(login.text).toContain('<button type="submit">');
  });

  it('logs in with a good token (HttpOnly, SameSite=Strict cookie) and refuses a bad one', async () => {
    const { api } = await serve();
    const good = await get(`${api.url}/ui/login`, { method: 'POST', form: { token: ADMIN } });
    expect(good.status).toBe(303);
    expect(good.headers.get('location')).toBe('/ui/');
    expect(good.headers.get('set-cookie')).toBe(`kiln_session=${ADMIN}; HttpOnly; SameSite=Strict; Path=/ui`);
    const bad = await get(`${api.url}/ui/login`, { method: 'POST', form: { token: 'kiln_wrong' } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('set-cookie')).toBeNull();
    expect(bad.text).toMatch(/<p id="login-error"[^>]*>That token is malformed, unknown or revoked/);
    expect(bad.text).toContain('<form id="login"');
    const page = await get(`${api.url}/ui/`, { session: ADMIN });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.text).toContain('<span id="whoami">alice (admin)</span>');
    expect(page.text).not.toContain(ADMIN);
    for (const href of ['/ui/', '/ui/images', '/ui/chaos', '/ui/audit'])
      expect(page.text).toContain(`href="${href}"`);
    const out = await get(`${api.url}/ui/logout`, { method: 'POST', session: ADMIN });
    expect(out.status).toBe(303);
    expect(out.headers.get('set-cookie')).toContain('kiln_session=;');
    expect(out.headers.get('set-cookie')).toContain('Max-Age=0');
  });

  it('serves the assets with long cache headers', async () => {
    const { api } = await serve();
    for (const name of [
      'htmx.min.js',
      'uPlot.iife.min.js',
      'uPlot.min.css',
      'dashboard.js',
      'dashboard.css',
    ]) {
      const res = await get(`${api.url}/ui/assets/${name}`);
      expect(res.status, name).toBe(200);
      expect(res.headers.get('cache-control')).toMatch(/max-age=\d{5,}/);
      expect(res.text.length).toBeGreaterThan(100);
    }
    expect((await get(`${api.url}/ui/assets/nope.js`)).status).toBe(404);
  });
});

describe('dashboard: pages', () => {
  it('shows the fleet, escaping what the store holds', async () => {
    const { api, plane } = await serve();
    plane.seedService('<script>alert(1)</script>');
    await plane.deploy('web', { reason: '<script>alert("r")</script>' }, 'alice');
    const overview = await get(`${api.url}/ui/`, { session: READER });
    expect(overview.text).toContain('<table id="services"');
    expect(overview.text).toMatch(/<tr data-service="web">/);
    expect(overview.text).toMatch(/<td class="release">r2 /);
    expect(overview.text).toContain('data-service="&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(overview.text).not.toContain('<script>alert');
    const service = await get(`${api.url}/ui/services/web`, { session: READER });
    expect(service.status).toBe(200);
    expect(service.text).toContain('<tr data-release="r2" class="current">');
    expect(service.text).toContain('&lt;script&gt;alert(&quot;r&quot;)&lt;/script&gt;');
    expect(service.text).not.toContain('<script>alert');
    const missing = await get(`${api.url}/ui/services/nope`, { session: READER });
    expect(missing.status).toBe(404);
    expect(missing.text).toContain('class="error"');
  });

  it('renders a canary: phase, weights, scores and verdicts, with promote and abort', async () => {
    const { api, plane } = await serve();
    plane.rolloutDetails.set('web', canary());
    const page = await get(`${api.url}/ui/services/web`, { session: ADMIN });
    expect(page.text).toContain('<span class="phase analysing">analysing</span>');
    expect(page.text).toContain('<table class="weights">');
    expect(page.text).toContain('data-scores="[90]"');
    expect(page.text).toContain('<tr data-metric="latency">');
    for (const a of ['rollback', 'promote', 'abort']) expect(page.text).toContain(`data-action="${a}"`);
    expect(page.text).toContain('<form id="deploy" class="actions" hx-post="/ui/services/web/deploy"');
    const fragment = await get(`${api.url}/ui/services/web/fragment/rollout`, { session: ADMIN });
    expect(fragment.text.startsWith('<section id="rollout"')).toBe(true);
  });

  it('lists images, chaos terminations and the audit log', async () => {
    const { api, plane } = await serve();
    plane.imageList = [
      {
        name: 'web:latest',
        digest: FAKE_DIGEST,
        created: FAKE_TIME,
        base: 'debian:bookworm',
        baseDigest: null,
        size: 2048,
        layers: 2,
        sbom: { digest: FAKE_DIGEST, packages: [{ name: 'libc6', version: '2.36' }] },
        signature: { keyid: 'sha256:abcdef', verified: true },
      },
    ];
    plane.auditLog = [
      { seq: 1, at: FAKE_TIME, actor: 'alice', action: 'deploy', target: 'web', result: 'ok', detail: '<b>' },
    ];
    const images = await get(`${api.url}/ui/images`, { session: READER });
    expect(images.text).toContain('<tr data-image="web:latest">');
    expect(images.text).toContain('libc6');
    expect(images.text).toContain('kiln outdated');
    const chaos = await get(`${api.url}/ui/chaos`, { session: READER });
    expect(chaos.status).toBe(200);
    expect(chaos.text).toContain('id="no-chaos"');
    expect(chaos.text).toContain('data-mttr="[]"');
    const audit = await get(`${api.url}/ui/audit`, { session: READER });
    expect(audit.text).toContain('<tr data-seq="1">');
    expect(audit.text).toContain('&lt;b&gt;');
  });
});

describe('dashboard: actions', () => {
  it('hides the controls from a read token and refuses its POST with 403', async () => {
    const { api, plane } = await serve();
    plane.rolloutDetails.set('web', canary());
    const page = await get(`${api.url}/ui/services/web`, { session: READER });
    expect(page.text).not.toContain('data-action=');
    expect(page.text).not.toContain('id="deploy"');
    const res = await get(`${api.url}/ui/services/web/rollback`, {
      method: 'POST',
      session: READER,
      hx: true,
    });
    expect(res.status).toBe(403);
    expect(plane.calls.filter((c) => c.method === 'rollback')).toEqual([]);
  });

  it('refuses a POST without HX-Request (CSRF) with 403', async () => {
    const { api, plane } = await serve();
    const res = await get(`${api.url}/ui/services/web/rollback`, { method: 'POST', session: ADMIN });
    expect(res.status).toBe(403);
    expect(plane.calls.filter((c) => c.method === 'rollback')).toEqual([]);
  });

  it('rolls back, deploys and promotes as the session token, answering the #rollout section', async () => {
    const { api, plane } = await serve();
    await plane.deploy('web', {}, 'alice');
    const back = await get(`${api.url}/ui/services/web/rollback`, {
      method: 'POST',
      session: ADMIN,
      hx: true,
    });
    expect(back.status).toBe(200);
    expect(back.text.startsWith('<section id="rollout"')).toBe(true);
    expect(plane.calls.find((c) => c.method === 'rollback')?.args).toEqual(['web', {}, 'alice']);
    await get(`${api.url}/ui/services/web/deploy`, {
      method: 'POST',
      session: 'kiln_deploy-secret',
      hx: true,
      form: { image: 'web:latest', reason: 'from the dashboard' },
    });
    expect(plane.calls.filter((c) => c.method === 'deploy').at(-1)?.args).toEqual([
      'web',
      { image: 'web:latest', reason: 'from the dashboard' },
      'ci',
    ]);
    // A refused change answers the section with the reason.
    const promote = await get(`${api.url}/ui/services/web/rollout/promote`, {
      method: 'POST',
      session: ADMIN,
      hx: true,
    });
    expect(promote.status).toBe(200);
    expect(promote.text).toContain('<p class="error">web has no rollout in progress</p>');
    plane.rolloutDetails.set('web', canary());
    await get(`${api.url}/ui/services/web/rollout/abort`, { method: 'POST', session: ADMIN, hx: true });
    expect(plane.calls.filter((c) => c.method === 'controlRollout').at(-1)?.args).toEqual([
      'web',
      'abort',
      {},
      'alice',
    ]);
  });
});

describe('API: audit and images', () => {
  it('serves GET /v1/audit (newest first, limited) and GET /v1/images to a read token', async () => {
    const { api, plane } = await serve();
    const record = (seq: number) => ({
      seq,
      at: FAKE_TIME,
      actor: 'ci',
      action: 'deploy',
      target: 'web',
      result: 'ok' as const,
      detail: '',
    });
    plane.auditLog = [record(1), record(2), record(3)];
    const client = new ApiClient({ url: api.url, token: READER });
    expect((await client.audit(2)).map((r) => r.seq)).toEqual([3, 2]);
    expect(await client.images()).toEqual([]);
    expect(plane.calls.filter((c) => c.method === 'audit' || c.method === 'images')).toEqual([
      { method: 'audit', args: [2] },
      { method: 'images', args: [] },
    ]);
    const bad = await fetch(`${api.url}/v1/audit?limit=0`, {
      headers: { authorization: `Bearer ${READER}` },
    });
    expect(bad.status).toBe(400);
  });
});

describe('dashboard: server events', () => {
  it('sends a change for each event after the stream opened', async () => {
    const { api, plane } = await serve();
    plane.eventLog.push({ seq: 1, at: FAKE_TIME, kind: 'old', reason: 'x', message: 'before' });
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.get(
        `${api.url}/ui/events`,
        { headers: { cookie: `kiln_session=${READER}` } },
        (res) => {
          expect(res.statusCode).toBe(200);
          expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
            if (text.includes(': connected')) {
              plane.eventLog.push({
                seq: 2,
                at: FAKE_TIME,
                kind: 'rollout.progress',
                service: 'web',
                reason: 'y',
                message: 'r2 at 50 %',
              });
            }
            if (text.includes('event: change')) {
              req.destroy();
              resolve(text);
            }
          });
        },
      );
      req.on('error', reject);
    });
    expect(body).toContain(
      'event: change\nid: 2\ndata: {"kind":"rollout.progress","service":"web","message":"r2 at 50 %"}\n\n',
    );
    expect(body).not.toContain('before');
  });
});
