import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { MAX_READ_LIMIT } from './events.js';
import { StateFixture, TestClock } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());

const event = (service: string, kind = 'instance.started', i = 0) => ({
  kind,
  service,
  subject: `${service}-${i}`,
  reason: 'Started',
  message: `started ${service}-${i}`,
  data: { i },
});

describe('event log', () => {
  it('appends with increasing seq and the clock’s time', () => {
    const store = fx.open(undefined, { clock: new TestClock().now });
    expect(store.events.lastSeq()).toBe(0);
    const first = store.events.append(event('api'));
    expect(first).toEqual({
      seq: 1,
      at: '2026-01-01T00:00:00.000Z',
      kind: 'instance.started',
      service: 'api',
      subject: 'api-0',
      reason: 'Started',
      message: 'started api-0',
      data: { i: 0 },
    });
    const bare = store.events.append({ kind: 'controller.started', reason: 'Started', message: '' });
    expect(bare).toEqual({
      seq: 2,
      at: first.at,
      kind: 'controller.started',
      reason: 'Started',
      message: '',
      data: {},
    });
    expect(store.events.lastSeq()).toBe(2);
  });

  it('streams from a seq with filters and limits, and tails', () => {
    const store = fx.open();
    for (let i = 0; i < 10; i++) store.events.append(event(i % 2 ? 'web' : 'api', i < 5 ? 'a' : 'b', i));
    expect(store.events.since(0).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(store.events.since(7).map((e) => e.seq)).toEqual([8, 9, 10]);
    expect(store.events.since(0, { service: 'web' }).map((e) => e.seq)).toEqual([2, 4, 6, 8, 10]);
    expect(store.events.since(0, { service: 'api', kinds: ['b'] }).map((e) => e.seq)).toEqual([7, 9]);
    expect(store.events.since(2, { limit: 3 }).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(store.events.tail(3).map((e) => e.seq)).toEqual([8, 9, 10]);
    expect(store.events.tail(2, { service: 'api' }).map((e) => e.seq)).toEqual([7, 9]);
    expect(store.events.since(0, { limit: MAX_READ_LIMIT * 10 })).toHaveLength(10);
  });

  it('validates what it appends', () => {
    const store = fx.open();
    const err = (() => {
      try {
        store.events.append({ kind: '', reason: '', message: 'x', data: { n: Infinity } });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual(['kind', 'reason']);
    expect(() => store.events.append({ kind: 'k', reason: 'R', message: '', data: { n: Infinity } })).toThrow(
      /\[n\] Infinity cannot be stored as JSON/,
    );
    expect(store.events.lastSeq()).toBe(0);
  });
});

describe('audit log', () => {
  it('appends and reads back, by actor and from a seq', () => {
    const store = fx.open(undefined, { clock: new TestClock().now });
    const a = store.audit.append({
      actor: 'ci',
      action: 'deploy',
      target: 'api',
      result: 'ok',
      detail: 'r7',
    });
    store.audit.append({ actor: 'alice', action: 'token.create', target: 'bot', result: 'denied' });
    store.audit.append({ actor: 'ci', action: 'rollback', target: 'api', result: 'failed' });
    expect(a).toEqual({
      seq: 1,
      at: '2026-01-01T00:00:00.000Z',
      actor: 'ci',
      action: 'deploy',
      target: 'api',
      result: 'ok',
      detail: 'r7',
    });
    expect(store.audit.since(0, { actor: 'ci' }).map((r) => r.action)).toEqual(['deploy', 'rollback']);
    expect(store.audit.since(1).map((r) => r.seq)).toEqual([2, 3]);
    expect(store.audit.tail(1).map((r) => r.detail)).toEqual(['']);
    expect(() =>
      store.audit.append({ actor: 'ci', action: 'x', target: 'y', result: 'maybe' as 'ok' }),
    ).toThrow(ValidationError);
  });
});

describe('append-only enforcement in the database', () => {
  for (const [table, what] of [
    ['events', 'events'],
    ['audit', 'audit records'],
  ] as const) {
    it(`refuses UPDATE and DELETE on ${table}, whoever connects`, () => {
      const file = fx.tempFile();
      const store = fx.open(file);
      store.events.append(event('api'));
      store.audit.append({ actor: 'ci', action: 'deploy', target: 'api', result: 'ok' });
      const raw = fx.raw(file);
      const before = raw.prepare(`SELECT * FROM ${table}`).all();
      expect(() => raw.prepare(`UPDATE ${table} SET at = 'tampered'`).run()).toThrow(
        `${what} are append-only: UPDATE is refused`,
      );
      expect(() => raw.prepare(`DELETE FROM ${table}`).run()).toThrow(
        `${what} are append-only: DELETE is refused`,
      );
      expect(() => raw.prepare(`DELETE FROM ${table} WHERE seq = 1`).run()).toThrow(/append-only/);
      expect(() => raw.prepare(`INSERT OR REPLACE INTO ${table} SELECT * FROM ${table}`).run()).toThrow(
        `${what} are append-only: REPLACE of an existing record is refused`,
      );
      expect(raw.prepare(`SELECT * FROM ${table}`).all()).toEqual(before);
    });
  }
});
