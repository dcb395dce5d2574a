import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, ValidationError } from '../errors/index.js';
import { catchError, StateFixture, TestClock } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());

describe('tokens', () => {
  it('returns the secret once and verifies it', () => {
    const store = fx.open(undefined, { clock: new TestClock().now });
    const { token, secret } = store.tokens.create('ci', ['deploy', 'read']);
    expect(secret).toMatch(new RegExp(`^kiln_${token.id}_[A-Za-z0-9_-]{43}$`));
    expect(token).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{12}$/),
      name: 'ci',
      scopes: ['read', 'deploy'],
      createdAt: '2026-01-01T00:00:00.000Z',
    });
    expect(store.tokens.verify(secret)).toEqual(token);
    expect(store.tokens.create('ci2', ['read']).secret).not.toBe(secret);
  });

  it('stores only the SHA-256 of the secret', () => {
    const file = fx.tempFile();
    const store = fx.open(file);
    const { token, secret } = store.tokens.create('ci', ['admin']);
    const rows = fx.raw(file).prepare('SELECT * FROM tokens').all() as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    expect(rows[0]!.hash).toBe(createHash('sha256').update(secret).digest('hex'));
    const randomPart = secret.slice(`kiln_${token.id}_`.length);
    for (const value of Object.values(rows[0]!)) {
      expect(String(value)).not.toContain(randomPart);
    }
    expect(JSON.stringify(store.tokens.list())).not.toContain(randomPart);
    expect(JSON.stringify(store.tokens.list())).not.toContain(rows[0]!.hash);
  });

  it('rejects wrong, malformed and revoked secrets alike', () => {
    const store = fx.open();
    const { token, secret } = store.tokens.create('ci', ['read']);
    const flipped = secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A');
    for (const bad of [
      flipped,
      '',
      'kiln_',
      secret.slice(0, -1),
      `kiln_000000000000_${secret.slice(-43)}`,
      secret + 'x',
    ]) {
      expect(store.tokens.verify(bad)).toBeUndefined();
    }
    store.tokens.revoke(token.id);
    expect(store.tokens.verify(secret)).toBeUndefined();
  });

  it('revokes by id or name, harmlessly twice, and frees the name', () => {
    const clock = new TestClock();
    const store = fx.open(undefined, { clock: clock.now });
    const first = store.tokens.create('ci', ['read']);
    expect(() => store.tokens.create('ci', ['deploy'])).toThrow(ConflictError);
    clock.tick(1000);
    expect(store.tokens.revoke('ci').revokedAt).toBe('2026-01-01T00:00:01.000Z');
    clock.tick(1000);
    expect(store.tokens.revoke(first.token.id).revokedAt).toBe('2026-01-01T00:00:01.000Z');
    const second = store.tokens.create('ci', ['deploy']);
    expect(store.tokens.verify(second.secret)?.scopes).toEqual(['deploy']);
    expect(store.tokens.list().map((t) => [t.name, t.revokedAt !== undefined])).toEqual([
      ['ci', true],
      ['ci', false],
    ]);
    expect(() => store.tokens.revoke('nobody')).toThrow(NotFoundError);
  });

  it('validates the name and scopes together', () => {
    const store = fx.open();
    const err = catchError(() => store.tokens.create('bad name', ['read', 'root' as 'admin']));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual(['name', 'scopes[1]']);
    expect(() => store.tokens.create('ci', [])).toThrow(/at least one scope/);
    expect(store.tokens.list()).toEqual([]);
  });
});
