import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, ValidationError } from '../errors/index.js';
import { IN_MEMORY, openState } from '../state/index.js';
import { ApiClient } from './client.js';
import { call, errorOf, serve as serveFake } from './testkit.js';
import { TokenAdmin } from './tokens.js';
import type { TokenCreatedJson, TokenJson } from './types.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

const serve = () => serveFake(undo);

/** What `promise` rejects with; fails the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

describe('TokenAdmin', () => {
  it('refuses to revoke the last live admin token, and allows it while another is live', async () => {
    const store = openState(IN_MEMORY);
    undo.push(() => store.close());
    const admin = new TokenAdmin(store);
    store.tokens.create('root', ['admin']);
    store.tokens.create('ci', ['deploy']);
    const last = await rejection(admin.revoke('root', 'root'));
    expect(last).toBeInstanceOf(ConflictError);
    expect((last as Error).message).toBe(
      "token 'root' is the last live admin token; revoking it would leave nobody able to manage tokens: " +
        'create another admin token first (kiln tokens create NAME --scope admin)',
    );
    const second = await admin.create({ name: 'alice', scopes: ['admin'] }, 'root');
    expect((await admin.revoke('root', 'alice')).revokedAt).toEqual(expect.any(String));
    // by id too, and now alice is the last one
    await expect(admin.revoke(second.token.id, 'alice')).rejects.toBeInstanceOf(ConflictError);
    expect((await admin.revoke('ci', 'alice')).name).toBe('ci');
    await expect(admin.revoke('ci', 'alice')).rejects.toBeInstanceOf(NotFoundError);
    expect(store.audit.since(0).map((a) => [a.actor, a.action, a.target, a.result])).toEqual([
      ['root', 'token.revoke', 'root', 'failed'],
      ['root', 'token.create', 'alice', 'ok'],
      ['alice', 'token.revoke', 'root', 'ok'],
      ['alice', 'token.revoke', second.token.id, 'failed'],
      ['alice', 'token.revoke', 'ci', 'ok'],
      ['alice', 'token.revoke', 'ci', 'failed'],
    ]);
  });
});

describe('token routes', () => {
  it('creates a token whose secret works at once, shown once and never listed', async () => {
    const { api, tokens, store } = await serve();
    const res = await call(api.url, '/v1/tokens', {
      method: 'POST',
      token: tokens.admin,
      body: JSON.stringify({ name: 'deployer', scopes: ['deploy'] }),
    });
    expect(res.status).toBe(201);
    const created = res.json() as TokenCreatedJson;
    expect(created.token).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{12}$/),
      name: 'deployer',
      scopes: ['deploy'],
      createdAt: expect.any(String),
    });
    expect(created.secret).toMatch(new RegExp(`^kiln_${created.token.id}_[A-Za-z0-9_-]{43}$`));
    expect((await call(api.url, '/v1/status', { token: created.secret })).status).toBe(200);
    const listed = await call(api.url, '/v1/tokens', { token: tokens.admin });
    expect(listed.status).toBe(200);
    expect((listed.json() as TokenJson[]).map((t) => [t.name, t.scopes])).toEqual([
      ['admin', ['admin']],
      ['reader', ['read']],
      ['ci', ['deploy']],
      ['deployer', ['deploy']],
    ]);
    const randomPart = created.secret.slice(`kiln_${created.token.id}_`.length);
    expect(listed.text).not.toContain(randomPart);
    expect(listed.text).not.toMatch(/"hash"|[0-9a-f]{64}/);
    const audit = store.audit.since(0);
    expect(audit.map((a) => [a.actor, a.action, a.target, a.result])).toEqual([
      ['admin', 'token.create', 'deployer', 'ok'],
    ]);
    expect(JSON.stringify(audit)).not.toContain(randomPart);
  });

  it('revokes a token at once, refusing the last live admin token with 409', async () => {
    const { api, tokens, store } = await serve();
    const revoked = await call(api.url, '/v1/tokens/ci/revoke', { method: 'POST', token: tokens.admin });
    expect(revoked.status).toBe(200);
    expect(revoked.json()).toMatchObject({ name: 'ci', revokedAt: expect.any(String) });
    expect((await call(api.url, '/v1/status', { token: tokens.ci })).status).toBe(401);
    const last = await call(api.url, '/v1/tokens/admin/revoke', { method: 'POST', token: tokens.admin });
    expect(last.status).toBe(409);
    expect(errorOf(last)).toMatchObject({
      code: 'conflict',
      message: expect.stringContaining('last live admin'),
    });
    expect((await call(api.url, '/v1/status', { token: tokens.admin })).status).toBe(200);
    const unknown = await call(api.url, '/v1/tokens/nobody/revoke', { method: 'POST', token: tokens.admin });
    expect(unknown.status).toBe(404);
    expect(store.audit.since(0).map((a) => [a.actor, a.action, a.target, a.result])).toEqual([
      ['admin', 'token.revoke', 'ci', 'ok'],
      ['admin', 'token.revoke', 'admin', 'failed'],
      ['admin', 'token.revoke', 'nobody', 'failed'],
    ]);
  });

  it('answers 400 naming the field and the fix for a bad request, and 409 for a name in use', async () => {
    const { api, tokens, store } = await serve();
    const post = (body: unknown) =>
      call(api.url, '/v1/tokens', { method: 'POST', token: tokens.admin, body: JSON.stringify(body) });
    const bad = await post({ name: 'x', scopes: ['root'] });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).issues).toEqual([
      {
        path: 'scopes.0',
        message: 'must be one of "read", "deploy", "admin"',
        fix: expect.stringContaining('["deploy"]'),
      },
    ]);
    expect(errorOf(await post({ name: 'bad name', scopes: ['read'] })).issues?.[0]).toMatchObject({
      path: 'name',
    });
    expect((await post({ scopes: [] })).status).toBe(400);
    const taken = await post({ name: 'reader', scopes: ['read'] });
    expect(taken.status).toBe(409);
    expect(errorOf(taken).message).toContain("a token named 'reader' already exists");
    expect(store.audit.since(0).map((a) => [a.action, a.target, a.result])).toEqual([
      ['token.create', '/v1/tokens', 'failed'],
      ['token.create', 'bad name', 'failed'],
      ['token.create', '/v1/tokens', 'failed'],
      ['token.create', 'reader', 'failed'],
    ]);
  });

  it('is reached through ApiClient, with the same errors', async () => {
    const { api, tokens } = await serve();
    const client = new ApiClient({ url: api.url, token: tokens.admin });
    const created = await client.createToken({ name: 'viewer', scopes: ['read'] });
    expect((await client.tokens()).map((t) => t.name)).toContain('viewer');
    expect(await client.revokeToken('viewer')).toMatchObject({ id: created.token.id, name: 'viewer' });
    expect(await rejection(client.revokeToken('admin'))).toBeInstanceOf(ConflictError);
    const reader = new ApiClient({ url: api.url, token: tokens.reader });
    const forbidden = await rejection(reader.tokens());
    expect(forbidden).toBeInstanceOf(ValidationError);
    expect((forbidden as Error).message).toContain("needs 'admin'");
  });
});
