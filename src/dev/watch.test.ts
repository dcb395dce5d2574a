import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Debouncer, ignoreMatcher, watchFolder, type ChangeBatch, type DebounceClock } from './watch.js';

/** A clock whose timers run only when the test moves time on. */
class FakeClock implements DebounceClock {
  time = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now = () => this.time;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, fn });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.#timers.delete(id as number);
  };
  advance(ms: number): void {
    this.time += ms;
    for (const [id, t] of [...this.#timers]) {
      if (t.at <= this.time) {
        this.#timers.delete(id);
        t.fn();
      }
    }
  }
}

describe('Debouncer', () => {
  it('flushes one batch once changes have been quiet for the debounce time', () => {
    const clock = new FakeClock();
    const batches: ChangeBatch[] = [];
    const d = new Debouncer(50, (b) => batches.push(b), clock);
    clock.time = 1000;
    d.add('b.js');
    clock.advance(30);
    d.add('a.js');
    clock.advance(30);
    d.add('b.js');
    clock.advance(49);
    expect(batches).toEqual([]);
    clock.advance(1);
    expect(batches).toEqual([{ paths: ['a.js', 'b.js'], firstAt: 1000 }]);

    d.add('c.js');
    clock.advance(50);
    expect(batches[1]).toEqual({ paths: ['c.js'], firstAt: 1110 });
  });

  it('drops what is pending when cancelled', () => {
    const clock = new FakeClock();
    const batches: ChangeBatch[] = [];
    const d = new Debouncer(50, (b) => batches.push(b), clock);
    d.add('a.js');
    d.cancel();
    clock.advance(100);
    expect(batches).toEqual([]);
  });
});

describe('ignoreMatcher', () => {
  it.each([
    ['.git/index', true],
    ['.git', true],
    ['.kiln/store/x', true],
    ['src/.git/x', false],
    ['server.js', false],
    ['node_modules/x/index.js', false],
  ])('%s ignored: %s', (p, ignored) => {
    expect(ignoreMatcher(['.git/**', '.kiln/**'])(p)).toBe(ignored);
  });

  it('ignores nothing without globs', () => {
    expect(ignoreMatcher([])('.git/index')).toBe(false);
  });
});

describe('watchFolder', () => {
  const dirs: string[] = [];
  const stops: (() => void)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0)) s();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('reports a change below the folder, and not one under an ignored glob', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-dev-watch-'));
    dirs.push(dir);
    await mkdir(path.join(dir, 'www'));
    await mkdir(path.join(dir, '.git'));
    const batches: ChangeBatch[] = [];
    let seen: () => void = () => {};
    const first = new Promise<void>((resolve) => (seen = resolve));
    stops.push(
      watchFolder(dir, {
        ignore: ['.git/**'],
        debounceMs: 20,
        onChange: (b) => {
          batches.push(b);
          seen();
        },
      }),
    );
    await writeFile(path.join(dir, '.git', 'HEAD'), 'ref\n');
    await writeFile(path.join(dir, 'www', 'index.html'), 'v2\n');
    await first;
    await new Promise((r) => setTimeout(r, 100));
    expect(batches).toHaveLength(1);
    expect(batches[0]!.paths).toEqual(['www/index.html']);
  });
});
