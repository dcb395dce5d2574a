import { statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { StateStore } from './db.js';
import { StateFixture } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());

/** The database is whole: SQLite's own check passes and every foreign key resolves. */
function expectConsistent(file: string): void {
  const raw = fx.raw(file);
  expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
  expect(raw.pragma('foreign_key_check')).toEqual([]);
}

function releaseNumbers(store: StateStore): number[] {
  return store.releases.list('api').map((r) => r.number);
}

describe('a writer killed with SIGKILL', () => {
  it('leaves nothing of the transaction it was in, even what already reached the WAL file', async () => {
    const file = fx.tempFile();
    const before = fx.open(file);
    before.services.put('api', {});
    before.releases.create({
      service: 'api',
      digest: `sha256:${'d'.repeat(64)}`,
      configHash: `sha256:${'d'.repeat(64)}`,
      spec: {},
      createdBy: 'parent',
      reason: 'seed',
    });
    before.close();

    const child = fx.child(file, 'hang');
    await child.waitFor('in-transaction');
    // 30 MB of releases overflow the page cache (16 MB in better-sqlite3), so uncommitted pages are on disk.
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(4 * 1024 * 1024);
    child.process.kill('SIGKILL');
    expect((await child.exited).signal).toBe('SIGKILL');

    expectConsistent(file);
    const after = fx.open(file);
    expect(releaseNumbers(after)).toEqual([1]);
    expect(after.releases.get('api', 1).createdBy).toBe('parent');
    expect(after.events.lastSeq()).toBe(0);
    expect(
      after.releases.create({
        service: 'api',
        digest: `sha256:${'e'.repeat(64)}`,
        configHash: `sha256:${'e'.repeat(64)}`,
        spec: {},
        createdBy: 'parent',
        reason: 'after crash',
      }).name,
    ).toBe('r2');
  });

  it('keeps every transaction it committed whole: each release with its event, numbers without gaps', async () => {
    const file = fx.tempFile();
    fx.open(file).services.put('api', {});
    const child = fx.child(file, 'loop');
    await child.waitFor('looping');
    await sleep(50 + Math.floor(Math.random() * 100));
    child.process.kill('SIGKILL');
    expect((await child.exited).signal).toBe('SIGKILL');

    expectConsistent(file);
    const store = fx.open(file);
    const numbers = releaseNumbers(store);
    expect(numbers.length).toBeGreaterThan(20);
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    const events = store.events.since(0, { limit: 10_000 });
    expect(events.map((e) => e.data.number)).toEqual(numbers);
    expect(events.map((e) => e.subject)).toEqual(numbers.map((n) => `r${n}`));
  });
});
