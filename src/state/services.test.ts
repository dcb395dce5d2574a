import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '../errors/index.js';
import { catchError, StateFixture, TestClock } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());

describe('services', () => {
  it('stores the spec canonically with its hash, and reads it back', () => {
    const clock = new TestClock();
    const store = fx.open(undefined, { clock: clock.now });
    const put = store.services.put('api', { replicas: 3, image: 'api', env: { B: '2', A: '1' } });
    expect(put).toEqual({
      name: 'api',
      spec: { env: { A: '1', B: '2' }, image: 'api', replicas: 3 },
      specHash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
    expect(store.services.get('api')).toEqual(put);
    expect(Object.keys(store.services.get('api').spec)).toEqual(['env', 'image', 'replicas']);
  });

  it('gives equal specs the same hash whatever their key order, and leaves them unchanged', () => {
    const clock = new TestClock();
    const store = fx.open(undefined, { clock: clock.now });
    const first = store.services.put('api', { a: 1, b: { c: [1, 2], d: null } });
    clock.tick(1000);
    const again = store.services.put('api', { b: { d: null, c: [1, 2] }, a: 1 });
    expect(again).toEqual(first);
  });

  it('replaces a changed spec and moves updatedAt only', () => {
    const clock = new TestClock();
    const store = fx.open(undefined, { clock: clock.now });
    const first = store.services.put('api', { replicas: 1 });
    clock.tick(1000);
    const second = store.services.put('api', { replicas: 2 });
    expect(second.specHash).not.toBe(first.specHash);
    expect(second.createdAt).toBe(first.createdAt);
    expect(second.updatedAt).toBe('2026-01-01T00:00:01.000Z');
    expect(store.services.list().map((s) => s.spec)).toEqual([{ replicas: 2 }]);
  });

  it('lists services by name', () => {
    const store = fx.open();
    for (const name of ['web', 'api', 'worker']) store.services.put(name, {});
    expect(store.services.list().map((s) => s.name)).toEqual(['api', 'web', 'worker']);
  });

  it('reports every problem with a put at once, with paths', () => {
    const store = fx.open();
    const err = catchError(() => store.services.put('Bad Name', []));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual(['name', 'spec']);
    const json = catchError(() =>
      store.services.put('api', { replicas: Number.NaN, nested: { f: () => 1 } }),
    );
    expect((json as ValidationError).issues.map((i) => i.path)).toEqual(['nested.f', 'replicas']);
    expect(store.services.list()).toEqual([]);
  });

  it('names the declared services when one is missing', () => {
    const store = fx.open();
    store.services.put('api', {});
    store.services.put('web', {});
    expect(store.services.find('nope')).toBeUndefined();
    expect(() => store.services.get('nope')).toThrow(NotFoundError);
    expect(() => store.services.get('nope')).toThrow("service 'nope' is not declared (declared: api, web)");
  });
});
