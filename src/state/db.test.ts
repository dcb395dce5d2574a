import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IN_MEMORY, openState } from './db.js';
import { DIGEST, seedReleases, StateFixture } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());

const release = { service: 'api', digest: DIGEST, configHash: DIGEST, spec: {}, createdBy: 't', reason: 'r' };
const event = { kind: 'release.created', service: 'api', reason: 'Created', message: '' };

describe('openState', () => {
  it('opens a file with WAL, synchronous=NORMAL, foreign keys and the busy timeout, creating its directory', () => {
    const file = path.join(path.dirname(fx.tempFile()), 'nested', '.kiln', 'state.db');
    const store = fx.open(file, { busyTimeoutMs: 1234 });
    expect(store.settings()).toMatchObject({
      journalMode: 'wal',
      synchronous: 1,
      foreignKeys: true,
      busyTimeoutMs: 1234,
    });
    seedReleases(store);
    expect(existsSync(`${file}-wal`)).toBe(true);
    expect(store.file).toBe(file);
  });

  it('gives each in-memory store its own database', () => {
    const a = fx.open(IN_MEMORY);
    const b = fx.open(IN_MEMORY);
    a.services.put('api', {});
    expect(a.settings()).toMatchObject({ journalMode: 'memory', foreignKeys: true });
    expect(b.services.list()).toEqual([]);
  });

  it('closes once, and closing again is harmless', () => {
    const store = openState(IN_MEMORY);
    store.close();
    expect(() => store.close()).not.toThrow();
    expect(() => store.services.list()).toThrow(/not open/);
  });
});

describe('StateStore.transaction', () => {
  it('commits several repositories’ writes together', () => {
    const store = fx.open();
    store.services.put('api', {});
    const r = store.transaction(() => {
      const created = store.releases.create(release);
      store.events.append({ ...event, subject: created.name });
      return created;
    });
    expect(r.name).toBe('r1');
    expect(store.events.tail(1)[0]?.subject).toBe('r1');
  });

  it('rolls every write back when the function throws, and rethrows', () => {
    const store = fx.open();
    store.services.put('api', {});
    expect(() =>
      store.transaction(() => {
        store.releases.create(release);
        store.events.append(event);
        throw new Error('executor failed');
      }),
    ).toThrow('executor failed');
    expect(store.releases.list('api')).toEqual([]);
    expect(store.events.lastSeq()).toBe(0);
    expect(store.releases.create(release).name).toBe('r1');
    expect(store.events.append(event).seq).toBe(1);
  });

  it('rolls back only the inner part when a nested transaction throws and the outer one goes on', () => {
    const store = fx.open();
    store.services.put('api', {});
    store.transaction(() => {
      store.releases.create(release);
      expect(() =>
        store.transaction(() => {
          store.events.append(event);
          throw new Error('inner');
        }),
      ).toThrow('inner');
    });
    expect(store.releases.list('api')).toHaveLength(1);
    expect(store.events.lastSeq()).toBe(0);
  });

  it('refuses an async function and keeps nothing it wrote', () => {
    const store = fx.open();
    expect(() => store.transaction(async () => store.services.put('api', {}))).toThrow(
      /cannot return a promise/,
    );
    expect(store.services.list()).toEqual([]);
  });
});
