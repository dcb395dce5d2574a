import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RuntimeDriver } from '../runtime/index.js';
import { openState, type StateStore } from '../state/index.js';
import { RootfsCollector } from './rootfs-collector.js';

let dir: string;
let store: StateStore | undefined;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-collector-'));
});
afterEach(async () => {
  store?.close();
  await rm(dir, { recursive: true, force: true });
});

const hex = (k: number) => String(k).repeat(64);
const digest = (k: number) => `sha256:${hex(k)}`;

async function root(k: number): Promise<void> {
  await mkdir(path.join(dir, hex(k)));
  await writeFile(path.join(dir, `${hex(k)}.files.json`), JSON.stringify({ digest: digest(k), layers: [] }));
  const then = new Date(Date.now() - 2 * 60 * 60 * 1000);
  await utimes(path.join(dir, hex(k)), then, then);
}

describe('RootfsCollector', () => {
  it("keeps each service's newest 3 releases and what live instances run; removes the rest", async () => {
    store = openState(':memory:');
    store.services.put('api', { image: 'api' });
    for (let k = 1; k <= 5; k++) {
      store.releases.create({
        service: 'api',
        digest: digest(k),
        configHash: digest(k),
        spec: { image: 'api', k },
        createdBy: 'test',
        reason: 'test',
      });
    }
    // r1 still runs one instance (a canary's baseline, say), from its own root.
    const live = store.instances.create({ service: 'api', release: 1, port: 20000 });
    for (const k of [1, 2, 3, 4, 5, 9]) await root(k);
    const driver = {
      list: async () => [],
      describe: async (id: string) => (id === live.id ? { rootfs: path.join(dir, hex(1)) } : undefined),
    } as unknown as RuntimeDriver;
    const lines: string[] = [];

    const collector = new RootfsCollector({ store, driver, rootfsDir: dir, log: (l) => lines.push(l) });
    const result = await collector.collect();

    expect([...result.removed].sort()).toEqual([hex(2), hex(9)]);
    const left = (await readdir(dir)).filter((n) => !n.endsWith('.json')).sort();
    expect(left).toEqual([hex(1), hex(3), hex(4), hex(5)]);
    expect(lines).toEqual([expect.stringMatching(/removed 2 unused root\(s\)/)]);
    await collector.close();
  });
});
