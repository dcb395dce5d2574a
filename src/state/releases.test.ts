import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, UnavailableError, ValidationError } from '../errors/index.js';
import { parseReleaseRef, ReleaseRepository } from './releases.js';
import { catchError, DIGEST, seedReleases, StateFixture, TestClock } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());

const release = (service = 'api') => ({
  service,
  digest: DIGEST,
  configHash: `sha256:${'b'.repeat(64)}`,
  spec: { image: service },
  createdBy: 'ci',
  reason: 'deploy',
});

describe('releases', () => {
  it('numbers releases r1, r2… per service and keeps what was released', () => {
    const clock = new TestClock();
    const store = fx.open(undefined, { clock: clock.now });
    store.services.put('api', {});
    store.services.put('web', {});
    expect(store.releases.create(release('api')).name).toBe('r1');
    expect(store.releases.create(release('web')).name).toBe('r1');
    clock.tick(1000);
    const r2 = store.releases.create(release('api'));
    expect(r2).toEqual({
      service: 'api',
      number: 2,
      name: 'r2',
      digest: DIGEST,
      configHash: `sha256:${'b'.repeat(64)}`,
      spec: { image: 'api' },
      createdAt: '2026-01-01T00:00:01.000Z',
      createdBy: 'ci',
      reason: 'deploy',
    });
    expect(store.releases.get('api', 'r2')).toEqual(r2);
    expect(store.releases.get('api', 2)).toEqual(r2);
    expect(store.releases.list('api').map((r) => r.name)).toEqual(['r1', 'r2']);
    expect(store.releases.latest('api')?.name).toBe('r2');
    expect(store.releases.latest('web')?.name).toBe('r1');
    expect(store.releases.latest('none')).toBeUndefined();
  });

  it('says which releases exist when one is missing', () => {
    const store = fx.open();
    seedReleases(store, 'api', 3);
    store.services.put('web', {});
    expect(store.releases.find('api', 'r9')).toBeUndefined();
    expect(() => store.releases.get('api', 'r9')).toThrow(NotFoundError);
    expect(() => store.releases.get('api', 'r9')).toThrow(
      "release r9 of 'api' does not exist; its releases are r1 to r3",
    );
    expect(() => store.releases.get('web', 1)).toThrow("'web' has no releases yet");
  });

  it('refuses a release of an undeclared service', () => {
    const store = fx.open();
    expect(() => store.releases.create(release('ghost'))).toThrow(NotFoundError);
    expect(() => store.releases.create(release('ghost'))).toThrow(/record its spec first/);
  });

  it('reports every invalid field at once', () => {
    const store = fx.open();
    const err = catchError(() =>
      store.releases.create({ ...release(), digest: 'latest', configHash: 'abc', createdBy: '', reason: '' }),
    );
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual([
      'digest',
      'configHash',
      'createdBy',
      'reason',
    ]);
  });

  it('parses release references', () => {
    expect(parseReleaseRef('r12')).toBe(12);
    expect(parseReleaseRef('12')).toBe(12);
    expect(parseReleaseRef(3)).toBe(3);
    for (const bad of ['r0', 'r-1', 'x1', '', 1.5, 'r01'])
      expect(() => parseReleaseRef(bad)).toThrow(ValidationError);
  });

  it('has no way to change a release, and the database refuses UPDATE and DELETE', () => {
    expect(Object.getOwnPropertyNames(ReleaseRepository.prototype).sort()).toEqual(
      ['constructor', 'create', 'find', 'get', 'latest', 'list'].sort(),
    );
    const file = fx.tempFile();
    seedReleases(fx.open(file), 'api', 1);
    const raw = fx.raw(file);
    expect(() => raw.prepare("UPDATE releases SET digest = 'x'").run()).toThrow(/releases are immutable/);
    expect(() => raw.prepare('DELETE FROM releases').run()).toThrow(/releases are immutable/);
    expect(() =>
      raw
        .prepare(
          "INSERT OR REPLACE INTO releases SELECT service, number, 'forged', config_hash, spec, created_at, created_by, reason FROM releases",
        )
        .run(),
    ).toThrow(/REPLACE of an existing release is refused/);
    expect(() =>
      raw
        .prepare(
          "INSERT INTO releases SELECT service, number, digest, config_hash, spec, created_at, created_by, reason FROM releases WHERE true ON CONFLICT DO UPDATE SET digest = 'forged'",
        )
        .run(),
    ).toThrow(/immutable/);
    expect(raw.prepare('SELECT digest FROM releases').pluck().all()).toEqual([DIGEST]);
  });

  it('keeps numbers unique and in order when two connections to one file interleave', () => {
    const file = fx.tempFile();
    const a = fx.open(file);
    const b = fx.open(file);
    a.services.put('api', {});
    const made: { by: string; number: number }[] = [];
    for (let i = 0; i < 50; i++) {
      made.push({ by: 'a', number: a.releases.create(release()).number });
      made.push({ by: 'b', number: b.releases.create(release()).number });
      expect(b.releases.latest('api')?.number).toBe(a.releases.latest('api')?.number);
    }
    expect(made.map((m) => m.number)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(a.releases.list('api')).toHaveLength(100);
  });

  it('makes a writer wait for another connection’s transaction, then fail clearly after the busy timeout', () => {
    const file = fx.tempFile();
    const a = fx.open(file);
    const b = fx.open(file, { busyTimeoutMs: 50 });
    a.services.put('api', {});
    a.transaction(() => {
      expect(a.releases.create(release()).name).toBe('r1');
      const err = catchError(() => b.releases.create(release()));
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toMatch(
        /is locked by another writer \(SQLITE_BUSY, after waiting up to 50 ms\)/,
      );
    });
    expect(b.releases.create(release()).name).toBe('r2');
  });

  it('keeps numbers unique, gap-free and increasing when two processes create at once', async () => {
    const file = fx.tempFile();
    fx.open(file).services.put('api', {});
    const children = [fx.child(file, 'create', '300'), fx.child(file, 'create', '300')];
    await Promise.all(children.map((c) => c.waitFor('ready')));
    writeFileSync(`${file}.go`, '');
    const results = await Promise.all(children.map((c) => c.exited));
    for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });
    const [one, two] = results.map((r) => JSON.parse(r.stdout.split('\n').at(-2)!) as number[]);
    for (const got of [one!, two!]) expect(got).toEqual([...got].sort((x, y) => x - y));
    expect([...one!, ...two!].sort((x, y) => x - y)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    // Both wrote while the other did: neither got one solid block of numbers.
    expect(one!.at(-1)! - one![0]!).toBeGreaterThanOrEqual(300);
    expect(two!.at(-1)! - two![0]!).toBeGreaterThanOrEqual(300);
  });
});
