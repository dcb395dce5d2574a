import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, IntegrityError, KilnError } from '../errors/index.js';
import { migrate, MIGRATIONS, SCHEMA_VERSION, schemaVersion, type Migration } from './migrations.js';
import { catchError, DIGEST, StateFixture } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());
const now = (): string => '2026-01-01T00:00:00.000Z';

function tables(file: string): string[] {
  return fx
    .raw(file)
    .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .all()
    .map((r) => r.name);
}

describe('migrations', () => {
  it('numbers the shipped migrations 1, 2, 3… with distinct names', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    expect(new Set(MIGRATIONS.map((m) => m.name)).size).toBe(MIGRATIONS.length);
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
  });

  it('creates the whole schema on a fresh database and records every migration', () => {
    const file = fx.tempFile();
    const store = fx.open(file);
    expect(store.migration).toEqual({ from: 0, to: SCHEMA_VERSION, applied: MIGRATIONS.map((m) => m.name) });
    expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
    const recorded = fx
      .raw(file)
      .prepare('SELECT version, name FROM schema_migrations ORDER BY version')
      .all();
    expect(recorded).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    expect(tables(file)).toEqual(
      expect.arrayContaining(['services', 'releases', 'rollouts', 'instances', 'tokens', 'events', 'audit']),
    );
  });

  it('applies nothing when the database is current', () => {
    const file = fx.tempFile();
    fx.open(file).close();
    expect(fx.open(file).migration).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION, applied: [] });
  });

  it('upgrades a database an older kiln wrote, keeping its data', () => {
    const file = fx.tempFile();
    const old = fx.raw(file);
    migrate(old, MIGRATIONS.slice(0, 1), now);
    old.prepare("INSERT INTO services VALUES ('api', '{\"image\":\"api\"}', 'sha256:x', 't0', 't0')").run();
    old
      .prepare("INSERT INTO releases VALUES ('api', 1, ?, ?, '{}', 't0', 'old-kiln', 'deploy')")
      .run(DIGEST, DIGEST);
    old.close();

    const store = fx.open(file);
    expect(store.migration).toEqual({
      from: 1,
      to: SCHEMA_VERSION,
      applied: MIGRATIONS.slice(1).map((m) => m.name),
    });
    expect(store.releases.get('api', 'r1').createdBy).toBe('old-kiln');
    expect(store.releases.create({ ...input(), service: 'api' }).name).toBe('r2');
    expect(store.tokens.create('ci', ['read']).secret).toMatch(/^kiln_/);
    expect(
      store.rollouts.create({ service: 'api', fromRelease: 1, toRelease: 2, strategy: 'rolling' }).phase,
    ).toBe('pending');
  });

  it('refuses a database from a newer kiln, saying to upgrade, and leaves it untouched', () => {
    const file = fx.tempFile();
    fx.open(file).close();
    const raw = fx.raw(file);
    raw.prepare("INSERT INTO schema_migrations VALUES (?, 'from-the-future', 't')").run(SCHEMA_VERSION + 1);
    const err = catchError(() => fx.open(file));
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `schema version ${SCHEMA_VERSION + 1}, but this kiln knows versions up to ${SCHEMA_VERSION}`,
      ),
    );
    expect((err as Error).message).toMatch(/Upgrade kiln/);
    expect(schemaVersion(raw)).toBe(SCHEMA_VERSION + 1);
  });

  it('refuses a database whose recorded history differs from this build', () => {
    const file = fx.tempFile();
    fx.open(file).close();
    fx.raw(file).prepare("UPDATE schema_migrations SET name = 'something-else' WHERE version = 2").run();
    const err = catchError(() => fx.open(file));
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(/records migration 2 'something-else'.*'rollouts-and-instances'/);
  });

  it('rolls a failing upgrade back whole, leaving the old schema', () => {
    const file = fx.tempFile();
    const db = fx.raw(file);
    migrate(db, MIGRATIONS.slice(0, 1), now);
    const broken: Migration[] = [
      ...MIGRATIONS.slice(0, 1),
      { version: 2, name: 'good-part', sql: 'CREATE TABLE extra (x INTEGER) STRICT' },
      { version: 3, name: 'bad-part', sql: 'CREATE TABLE nonsense (' },
    ];
    expect(() => migrate(db, broken, now)).toThrow(/syntax error|incomplete input/);
    expect(schemaVersion(db)).toBe(1);
    expect(tables(file)).not.toContain('extra');
  });

  it('refuses a migration list that is not numbered in order', () => {
    const db = fx.raw(':memory:');
    const list: Migration[] = [{ version: 2, name: 'two', sql: '' }];
    expect(() => migrate(db, list, now)).toThrow(KilnError);
    expect(() => migrate(db, list, now)).toThrow(/numbered 2 but stands at position 1/);
  });

  it('says the file is not a state database when it is something else', () => {
    const file = fx.tempFile();
    writeFileSync(
      file,
      'this is not sqlite, it is a text file that is long enough to have a header\n'.repeat(20),
    );
    const err = catchError(() => fx.open(file));
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain(`${file} is not a readable kiln state database`);
  });
});

function input() {
  return { digest: DIGEST, configHash: DIGEST, spec: {}, createdBy: 'test', reason: 'deploy' };
}
