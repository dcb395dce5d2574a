import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Digest } from '../oci/index.js';
import { collectRootfs, withUnpack } from './rootfs-gc.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-rootfs-gc-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const hex = (c: string) => c.repeat(64);
const digest = (c: string) => `sha256:${hex(c)}` as Digest;
const HOUR = 60 * 60 * 1000;

/** A root as ensureRootfs leaves it: `<hex>/` with a file, and `<hex>.files.json` beside it. */
async function root(name: string, record: object, ageMs = 2 * HOUR): Promise<void> {
  await mkdir(path.join(dir, name, 'bin'), { recursive: true });
  await writeFile(path.join(dir, name, 'bin', 'app'), 'x');
  await writeFile(path.join(dir, `${name}.files.json`), JSON.stringify(record));
  const then = new Date(Date.now() - ageMs);
  await utimes(path.join(dir, name), then, then);
}

describe('collectRootfs', () => {
  it('keeps kept images, the lower-layer roots they extend, and what instances run from; removes the rest', async () => {
    const [b1, b2, app1, app2] = [digest('1'), digest('2'), digest('3'), digest('4')];
    await root(hex('a'), { digest: digest('a'), layers: [b1, b2, app1] }); // r1: kept (a rollback target)
    await root(hex('b'), { digest: digest('b'), layers: [b1, b2, app2] }); // r0: nothing keeps it
    await root(hex('c'), { digest: 'layers:c', layers: [b1, b2] }); // the base both are built on
    await root(hex('d'), { digest: 'layers:d', layers: [digest('9')] }); // an old base nobody uses
    await root(hex('e'), { digest: digest('e'), layers: [digest('8')] }); // not kept, but an instance runs from it
    await root(hex('f'), { digest: digest('f'), layers: [digest('7')] }, 60_000); // unpacked a minute ago

    const result = await collectRootfs(dir, {
      keepImages: new Set([digest('a')]),
      inUse: new Set([path.join(dir, hex('e'))]),
    });

    expect(result.removed).toEqual([hex('b'), hex('d')]);
    const left = (await readdir(dir)).sort();
    expect(left).toEqual(['a', 'c', 'e', 'f'].flatMap((c) => [hex(c), `${hex(c)}.files.json`]).sort());
  });

  it('removes roots set aside once they are old and nobody runs from them', async () => {
    const old = `${hex('a')}.tainted-1700000000000`;
    const fresh = `${hex('b')}.unverified-0a1b2c3d`;
    const mounted = `${hex('c')}.tainted-1700000000001`;
    for (const name of [old, fresh, mounted]) await mkdir(path.join(dir, name, 'etc'), { recursive: true });
    const then = new Date(Date.now() - 2 * 24 * HOUR);
    await utimes(path.join(dir, old), then, then);
    await utimes(path.join(dir, mounted), then, then);

    const result = await collectRootfs(dir, {
      keepImages: new Set(),
      inUse: new Set([path.join(dir, mounted)]),
    });

    expect(result.removed).toEqual([old]);
    expect((await readdir(dir)).sort()).toEqual([fresh, mounted].sort());
  });

  it('says what would go without removing anything when dry', async () => {
    await root(hex('a'), { digest: digest('a'), layers: [digest('1')] });
    const result = await collectRootfs(dir, { keepImages: new Set(), inUse: new Set(), dryRun: true });
    expect(result.removed).toEqual([hex('a')]);
    expect(await readdir(dir)).toHaveLength(2);
  });

  it('waits for the unpacks in flight, and unpacks started meanwhile wait for it', async () => {
    const order: string[] = [];
    let finishUnpack!: () => void;
    const unpack = withUnpack(async () => {
      order.push('unpack 1 starts');
      await new Promise<void>((resolve) => (finishUnpack = resolve));
      order.push('unpack 1 ends');
    });
    await Promise.resolve();
    const gc = collectRootfs(dir, { keepImages: new Set(), inUse: new Set() }).then(() => order.push('gc'));
    const next = withUnpack(async () => {
      order.push('unpack 2');
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(order).toEqual(['unpack 1 starts']);
    finishUnpack();
    await Promise.all([unpack, gc, next]);
    expect(order).toEqual(['unpack 1 starts', 'unpack 1 ends', 'gc', 'unpack 2']);
  });
});
