import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, ValidationError } from '../errors/index.js';
import { setCondition } from './conditions.js';
import { TERMINAL_ROLLOUT_PHASES } from './rollouts.js';
import { catchError, seedReleases, StateFixture, TestClock } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());

function storeWithReleases(options = {}) {
  const store = fx.open(undefined, options);
  seedReleases(store, 'api', 3);
  seedReleases(store, 'web', 1);
  return store;
}

describe('rollouts', () => {
  it('creates a pending rollout at version 1', () => {
    const clock = new TestClock();
    const store = storeWithReleases({ clock: clock.now });
    const r = store.rollouts.create({
      id: 'ro-1',
      service: 'api',
      fromRelease: 'r1',
      toRelease: 'r2',
      strategy: 'canary',
    });
    expect(r).toEqual({
      id: 'ro-1',
      service: 'api',
      fromRelease: 1,
      toRelease: 2,
      strategy: 'canary',
      phase: 'pending',
      status: { conditions: [] },
      version: 1,
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
    expect(store.rollouts.get('ro-1')).toEqual(r);
    expect(store.rollouts.create({ service: 'web', toRelease: 1, strategy: 'rolling' }).id).toMatch(
      /^ro-[0-9a-f]{12}$/,
    );
  });

  it('applies an update at the expected version and bumps the version', () => {
    const clock = new TestClock();
    const store = storeWithReleases({ clock: clock.now });
    const r = store.rollouts.create({ service: 'api', fromRelease: 1, toRelease: 2, strategy: 'canary' });
    clock.tick(1000);
    const conditions = setCondition(
      [],
      { type: 'Progressing', status: 'True', reason: 'RolloutStarted', message: '' },
      clock.time,
    );
    const next = store.rollouts.update(r.id, 1, {
      phase: 'progressing',
      status: {
        currentStep: 0,
        steps: [{ name: 'setWeight 20', state: 'running' }],
        weights: { r1: 80, r2: 20 },
        conditions,
      },
    });
    expect(next).toMatchObject({ phase: 'progressing', version: 2, updatedAt: '2026-01-01T00:00:01.000Z' });
    expect(next.status.weights).toEqual({ r1: 80, r2: 20 });
    expect(next.finishedAt).toBeUndefined();
    expect(store.rollouts.get(r.id)).toEqual(next);
  });

  it('refuses an update from a stale version and changes nothing', () => {
    const file = fx.tempFile();
    const a = fx.open(file);
    const b = fx.open(file);
    seedReleases(a, 'api', 2);
    const r = a.rollouts.create({ service: 'api', fromRelease: 1, toRelease: 2, strategy: 'rolling' });
    const readByA = a.rollouts.get(r.id);
    const readByB = b.rollouts.get(r.id);
    b.rollouts.update(readByB.id, readByB.version, { phase: 'paused' });
    const err = catchError(() => a.rollouts.update(readByA.id, readByA.version, { phase: 'progressing' }));
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(`rollout ${r.id} is at version 2, not 1`);
    expect(a.rollouts.get(r.id)).toMatchObject({ phase: 'paused', version: 2 });
  });

  it('stamps finishedAt on a terminal phase and refuses changes after it', () => {
    const clock = new TestClock();
    const store = storeWithReleases({ clock: clock.now });
    for (const phase of TERMINAL_ROLLOUT_PHASES) {
      const r = store.rollouts.create({ service: 'api', toRelease: 3, strategy: 'rolling' });
      clock.tick(1000);
      const done = store.rollouts.update(r.id, r.version, { phase });
      expect(done).toMatchObject({ phase, finishedAt: clock.time.toISOString(), version: 2 });
      expect(() => store.rollouts.update(r.id, 2, { phase: 'progressing' })).toThrow(/already finished/);
    }
  });

  it('keeps one active rollout per service, naming it when a second is started', () => {
    const store = storeWithReleases();
    const first = store.rollouts.create({
      service: 'api',
      fromRelease: 1,
      toRelease: 2,
      strategy: 'rolling',
    });
    const other = store.rollouts.create({ service: 'web', toRelease: 1, strategy: 'rolling' });
    expect(store.rollouts.active('api')?.id).toBe(first.id);
    expect(store.rollouts.active('web')?.id).toBe(other.id);
    for (const phase of ['progressing', 'paused', 'analysing'] as const) {
      const current = store.rollouts.get(first.id);
      store.rollouts.update(first.id, current.version, { phase });
      const err = catchError(() =>
        store.rollouts.create({ service: 'api', toRelease: 3, strategy: 'canary' }),
      );
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as Error).message).toBe(
        `service 'api' already has an active rollout ${first.id} (${phase}, to r2); wait for it to finish or abort it first`,
      );
    }
    store.rollouts.update(first.id, 4, { phase: 'succeeded' });
    expect(store.rollouts.active('api')).toBeUndefined();
    const second = store.rollouts.create({
      service: 'api',
      fromRelease: 2,
      toRelease: 3,
      strategy: 'canary',
    });
    expect(store.rollouts.active('api')?.id).toBe(second.id);
    expect(store.rollouts.list('api').map((r) => r.id)).toEqual([second.id, first.id]);
  });

  it('enforces one active rollout per service in the database itself', () => {
    const file = fx.tempFile();
    const store = fx.open(file);
    seedReleases(store, 'api', 2);
    store.rollouts.create({ service: 'api', toRelease: 1, strategy: 'rolling' });
    const raw = fx.raw(file);
    const insert = raw.prepare(
      `INSERT INTO rollouts (id, service, to_release, strategy, phase, status, version, created_at, updated_at)
       VALUES (?, 'api', 2, 'rolling', ?, '{}', 1, 't', 't')`,
    );
    expect(() => insert.run('sneaky', 'progressing')).toThrow(/UNIQUE constraint failed: rollouts.service/);
    expect(() => insert.run('finished', 'failed')).not.toThrow();
    expect(() => insert.run('bogus', 'exploded')).toThrow(/CHECK constraint failed/);
  });

  it('names the missing release or rollout', () => {
    const store = storeWithReleases();
    expect(() =>
      store.rollouts.create({ service: 'api', fromRelease: 'r1', toRelease: 'r9', strategy: 'rolling' }),
    ).toThrow(
      new NotFoundError("cannot roll out 'api': release r9 does not exist; create the release first"),
    );
    expect(() => store.rollouts.get('ro-nope')).toThrow(NotFoundError);
    expect(() => store.rollouts.update('ro-nope', 1, { phase: 'paused' })).toThrow(NotFoundError);
    expect(store.rollouts.find('ro-nope')).toBeUndefined();
  });

  it('validates strategy, service and phase', () => {
    const store = storeWithReleases();
    const err = catchError(() =>
      store.rollouts.create({ service: 'API', toRelease: 1, strategy: 'yolo' as 'rolling' }),
    );
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual(['service', 'strategy']);
    const r = store.rollouts.create({ service: 'api', toRelease: 1, strategy: 'rolling' });
    expect(() => store.rollouts.update(r.id, 1, { phase: 'done' as 'succeeded' })).toThrow(ValidationError);
  });
});
