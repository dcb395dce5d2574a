import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, ValidationError } from '../errors/index.js';
import { catchError, DIGEST, seedReleases, StateFixture, TestClock } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());
const RANGE = { from: 20000, to: 20002 };

function seeded(options = {}) {
  const store = fx.open(undefined, options);
  seedReleases(store, 'api', 2);
  return store;
}

describe('instances', () => {
  it('records a starting instance with the release’s digest', () => {
    const clock = new TestClock();
    const store = seeded({ clock: clock.now });
    const inst = store.instances.create({ id: 'api-1', service: 'api', release: 'r2', port: 8080 });
    expect(inst).toEqual({
      id: 'api-1',
      service: 'api',
      release: 2,
      digest: DIGEST,
      port: 8080,
      state: 'starting',
      stateSince: '2026-01-01T00:00:00.000Z',
      desiredState: 'running',
      health: { status: 'unknown', failures: 0 },
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    });
    expect(store.instances.create({ service: 'api', release: 1 }).id).toMatch(/^api-r1-[0-9a-f]{12}$/);
  });

  it('allocates the lowest port no live instance holds, reusing ports of stopped ones', () => {
    const store = seeded();
    const ports = () => store.instances.list().map((i) => i.port);
    const a = store.instances.create({ service: 'api', release: 1, portRange: RANGE });
    const b = store.instances.create({ service: 'api', release: 1, portRange: RANGE });
    expect([a.port, b.port]).toEqual([20000, 20001]);
    store.instances.update(a.id, { state: 'stopped' });
    expect(store.instances.allocatePort(RANGE)).toBe(20000);
    store.instances.create({ service: 'api', release: 2, port: 20002 });
    expect(store.instances.create({ service: 'api', release: 2, portRange: RANGE }).port).toBe(20000);
    expect(ports()).toEqual([20001, 20002, 20000]);
  });

  it('says when the range is full or a fixed port is held, and records nothing', () => {
    const store = seeded();
    for (let i = 0; i < 3; i++)
      store.instances.create({ id: `api-${i}`, service: 'api', release: 1, portRange: RANGE });
    expect(() => store.instances.allocatePort(RANGE)).toThrow(
      new ConflictError(
        'no free port in 20000–20002: live instances hold all 3; widen the port range or stop instances',
      ),
    );
    expect(() => store.instances.create({ service: 'api', release: 1, port: 20001 })).toThrow(
      'port 20001 is held by live instance api-1; choose another port or use portRange',
    );
    expect(() => store.instances.create({ id: 'api-0', service: 'api', release: 1 })).toThrow(
      "instance 'api-0' already exists",
    );
    expect(store.instances.list()).toHaveLength(3);
  });

  it('never hands out one port twice across connections taking turns', () => {
    const file = fx.tempFile();
    const a = fx.open(file);
    const b = fx.open(file);
    seedReleases(a, 'api', 1);
    const range = { from: 30000, to: 30099 };
    const got = Array.from({ length: 50 }, () => [
      a.instances.create({ service: 'api', release: 1, portRange: range }).port,
      b.instances.create({ service: 'api', release: 1, portRange: range }).port,
    ]).flat();
    expect(new Set(got).size).toBe(100);
    expect(() => b.instances.allocatePort(range)).toThrow(ConflictError);
  });

  it('refuses a second live instance on one port in the database itself', () => {
    const file = fx.tempFile();
    const store = fx.open(file);
    seedReleases(store, 'api', 1);
    store.instances.create({ id: 'one', service: 'api', release: 1, port: 9000 });
    const insert = fx.raw(file).prepare(
      `INSERT INTO instances (id, service, release, digest, port, state, state_since, health, created_at, updated_at)
       VALUES (?, 'api', 1, 'd', 9000, ?, 't', '{}', 't', 't')`,
    );
    expect(() => insert.run('two', 'healthy')).toThrow(/UNIQUE constraint failed: instances.port/);
    expect(() => insert.run('old', 'stopped')).not.toThrow();
  });

  it('moves through its lifecycle, stamping stoppedAt, and is final once stopped', () => {
    const clock = new TestClock();
    const store = seeded({ clock: clock.now });
    const inst = store.instances.create({ service: 'api', release: 1, port: 9000 });
    const health = {
      status: 'failing' as const,
      failures: 2,
      checkedAt: clock.time.toISOString(),
      message: 'HTTP 503',
    };
    clock.tick(1000);
    expect(store.instances.update(inst.id, { state: 'unhealthy', health })).toMatchObject({
      state: 'unhealthy',
      stateSince: '2026-01-01T00:00:01.000Z',
      health,
    });
    clock.tick(1000);
    const worse = store.instances.update(inst.id, { health: { ...health, failures: 3 } });
    expect(worse).toMatchObject({
      stateSince: '2026-01-01T00:00:01.000Z',
      updatedAt: '2026-01-01T00:00:02.000Z',
    });
    store.instances.update(inst.id, { state: 'draining', desiredState: 'stopped' });
    clock.tick(5000);
    const stopped = store.instances.update(inst.id, { state: 'stopped' });
    expect(stopped).toMatchObject({
      state: 'stopped',
      desiredState: 'stopped',
      stateSince: '2026-01-01T00:00:07.000Z',
      stoppedAt: '2026-01-01T00:00:07.000Z',
    });
    expect(() => store.instances.update(inst.id, { state: 'healthy' })).toThrow(
      /is stopped and cannot change/,
    );
    expect(store.instances.list()).toEqual([]);
    expect(store.instances.list({ all: true }).map((i) => i.id)).toEqual([inst.id]);
  });

  it('records a taint with the tainted state, keeping the first cause', () => {
    const clock = new TestClock();
    const store = seeded({ clock: clock.now });
    const inst = store.instances.create({ service: 'api', release: 1, port: 9100 });
    store.instances.update(inst.id, {
      state: 'tainted',
      taint: { reason: 'DriftDetected', message: '/etc/passwd changed' },
    });
    clock.tick(1000);
    const again = store.instances.update(inst.id, {
      state: 'draining',
      taint: { reason: 'ExecDetected', message: 'exec sh' },
    });
    expect(again.taint).toEqual({
      reason: 'DriftDetected',
      message: '/etc/passwd changed',
      at: '2026-01-01T00:00:00.000Z',
    });
    expect(again.state).toBe('draining');
    expect(() => store.instances.create({ service: 'api', release: 1, port: 9100 })).toThrow(
      /held by live instance/,
    );
  });

  it('lists by service, oldest first', () => {
    const store = seeded();
    seedReleases(store, 'web', 1);
    const ids = ['api', 'web', 'api'].map((service) => store.instances.create({ service, release: 1 }).id);
    expect(store.instances.list({ service: 'api' }).map((i) => i.id)).toEqual([ids[0], ids[2]]);
    expect(store.instances.list().map((i) => i.id)).toEqual(ids);
  });

  it('names what is missing or wrong', () => {
    const store = seeded();
    expect(() => store.instances.create({ service: 'api', release: 'r7' })).toThrow(
      new NotFoundError("cannot record an instance of 'api' r7: that release does not exist"),
    );
    expect(() => store.instances.get('nope')).toThrow(NotFoundError);
    const err = catchError(() =>
      store.instances.create({ service: 'api', release: 1, port: 70000, portRange: RANGE }),
    );
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual(['port', 'port']);
    expect(() => store.instances.allocatePort({ from: 10, to: 5 })).toThrow(ValidationError);
  });
});
