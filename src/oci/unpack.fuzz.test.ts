/**
 * Hostile layers against unpackLayers: a corpus of malicious tars, each refused in full, and
 * properties over random entry sequences and mutated bytes. Every case unpacks into `work/rootfs`
 * beside a sentinel directory `outside`, and checks after it that `work` holds the rootfs or
 * nothing (never a partial tree or a temp dir) and that nothing under `outside` changed (not a
 * byte, a mode, a link count).
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { IntegrityError } from '../errors/index.js';
import { expectKilnError, fuzzParams, fuzzTimeout, snapshotTree } from '../../test/support/fuzz.js';
import { maliciousCorpus, rawTar, type RawEntry } from '../../test/support/malicious-tars.js';
import type { ReadLayerLimits } from './tar-read.js';
import { unpackLayers } from './unpack.js';

const temps: string[] = [];
afterEach(async () => {
  for (const t of temps.splice(0)) await rm(t, { recursive: true, force: true });
});

interface Arena {
  readonly base: string;
  readonly outside: string;
  readonly work: string;
  readonly dest: string;
  /** From inside the image root up to `outside`. */
  readonly up: string;
}

async function arena(): Promise<Arena> {
  const base = await mkdtemp(join(tmpdir(), 'kiln-fuzz-unpack-'));
  temps.push(base);
  const outside = join(base, 'outside');
  await mkdir(join(outside, 'dir'), { recursive: true });
  await writeFile(join(outside, 'victim'), 'original');
  await writeFile(join(outside, 'dir', 'inner'), 'original');
  const work = join(base, 'work');
  await mkdir(work);
  const dest = join(work, 'rootfs');
  return { base, outside, work, dest, up: relative(dest, outside) };
}

/**
 * Unpacks and checks what every hostile input must leave: a KilnError or success; nothing under
 * `outside` changed; `work` empty after a failure, holding only `rootfs` after a success.
 */
async function unpackChecked(
  a: Arena,
  layers: readonly Buffer[],
  limits?: ReadLayerLimits,
): Promise<unknown> {
  const before = await snapshotTree(a.outside);
  const err = await unpackLayers(layers, a.dest, limits ? { limits } : {}).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err !== undefined) expectKilnError(err, 'unpackLayers');
  expect(await snapshotTree(a.outside)).toEqual(before);
  expect(await readdir(a.work)).toEqual(err === undefined ? ['rootfs'] : []);
  if (err === undefined) await rm(a.dest, { recursive: true, force: true });
  return err;
}

describe('unpackLayers against a corpus of malicious tars', () => {
  it('refuses each in full, with a clear IntegrityError, touching nothing outside', async () => {
    const a = await arena();
    const corpus = maliciousCorpus(a.outside, a.up);
    expect(corpus.length).toBeGreaterThan(40);
    for (const c of corpus) {
      const err = await unpackChecked(a, c.layers, c.limits);
      expect(err, c.name).toBeInstanceOf(IntegrityError);
      expect((err as Error).message, c.name).toMatch(/^unpacking layer \d+ \(sha256:[0-9a-f]{64}\): /);
      expect((err as Error).message, c.name).toMatch(c.error);
    }
  });

  it('stops a gzip bomb fast and without inflating it', async () => {
    const a = await arena();
    const bomb = maliciousCorpus(a.outside, a.up).find((c) => c.name.startsWith('gzip bomb'))!;
    const started = Date.now();
    const err = await unpackChecked(a, bomb.layers);
    expect((err as Error).message).toMatch(
      /over 100 times its \d+ compressed bytes; refusing it as a possible gzip bomb/,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('keeps what the image spec allows: setuid modes, FIFOs, a directory listed twice', async () => {
    const a = await arena();
    const layer = rawTar([
      { name: 'usr/', type: '5' },
      { name: 'usr/', type: '5', mode: 0o750 },
      { name: 'usr/su', body: 'su', mode: 0o4755 },
      { name: 'run/ctl', type: '6', mode: 0o600 },
      { name: 'lib', type: '2', linkname: '/usr' },
      { name: 'lib/su2', type: '1', linkname: 'usr/su' },
    ]);
    const before = await snapshotTree(a.outside);
    await unpackLayers([layer], a.dest);
    const tree = await snapshotTree(a.dest);
    expect([...tree.keys()].sort()).toEqual(['.', 'lib', 'run', 'run/ctl', 'usr', 'usr/su', 'usr/su2']);
    expect(Number(tree.get('usr/su')!.split(' ')[0]) & 0o7777).toBe(0o4755);
    expect(Number(tree.get('usr')!.split(' ')[0]) & 0o7777).toBe(0o750);
    expect(await snapshotTree(a.outside)).toEqual(before);
  });
});

/**
 * Layers of a few entries over a tiny namespace (`a`, `b`, `c`, whiteouts), so that symlinks, hard
 * links, whiteouts and later entries meet each other often; now and then a hostile name or target
 * aimed at the arena's `outside`.
 */
function hostileEntries(a: Arena): fc.Arbitrary<RawEntry[]> {
  const segment = fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom('a', 'b', 'c') },
    { weight: 2, arbitrary: fc.constantFrom('.wh.a', '.wh.b', '.wh..wh..opq') },
    { weight: 1, arbitrary: fc.constantFrom('..', '.', '', '.wh...', 'x'.repeat(256)) },
  );
  const path = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
  const name = fc.oneof(
    { weight: 20, arbitrary: path },
    {
      weight: 1,
      arbitrary: fc.constantFrom(`${a.up}/victim`, `${a.outside}/victim`, '/', './', `a/${a.up}/x`),
    },
  );
  const target = fc.oneof(
    { weight: 10, arbitrary: path },
    { weight: 3, arbitrary: path.map((p) => `/${p}`) },
    { weight: 3, arbitrary: path.map((p) => `../${p}`) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        a.up,
        `${a.up}/victim`,
        a.outside,
        `${a.outside}/victim`,
        '/',
        '../../..',
        '',
      ),
    },
  );
  const file = fc.record({
    name,
    type: fc.constant('0'),
    body: fc.constantFrom('', 'pwned'),
    mode: fc.constantFrom(0o644, 0o4755, 0o000),
  });
  const dir = fc.record({ name, type: fc.constant('5'), mode: fc.constantFrom(0o755, 0o000, 0o1777) });
  const link = fc.record({ name, type: fc.constantFrom('2', '2', '1'), linkname: target });
  const other = fc.record({ name, type: fc.constantFrom('6', '3', '4', '7', 'V') });
  const entry: fc.Arbitrary<RawEntry> = fc.oneof(
    { weight: 4, arbitrary: file },
    { weight: 3, arbitrary: dir },
    { weight: 4, arbitrary: link },
    { weight: 1, arbitrary: other },
  );
  return fc.array(entry, { minLength: 1, maxLength: 8 });
}

describe('unpackLayers properties', () => {
  it(
    'random hostile entries: unpacked inside the root or refused in full, never touching outside',
    async () => {
      const a = await arena();
      await fc.assert(
        fc.asyncProperty(
          fc.array(hostileEntries(a), { minLength: 1, maxLength: 3 }),
          fc.boolean(),
          async (layers, gz) => {
            const blobs = layers.map((entries) => (gz ? gzipSync(rawTar(entries)) : rawTar(entries)));
            await unpackChecked(a, blobs);
          },
        ),
        fuzzParams(40, 0.1),
      );
    },
    fuzzTimeout(40, 0.1, 200),
  );

  it(
    'mutated layer bytes: unpacked inside the root or refused in full',
    async () => {
      const a = await arena();
      const good = rawTar([
        { name: 'etc/', type: '5' },
        { name: 'etc/motd', body: 'hello\n'.repeat(100) },
        { name: 'bin', type: '2', linkname: 'usr/bin' },
        { name: 'usr/bin/sh', body: '#!', mode: 0o755 },
        { name: 'usr/bin/dash', type: '1', linkname: 'usr/bin/sh' },
      ]);
      const mutation = fc.record({
        gz: fc.boolean(),
        flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        cut: fc.option(fc.nat(), { nil: undefined }),
      });
      await fc.assert(
        fc.asyncProperty(mutation, async ({ gz, flips, cut }) => {
          const blob = Buffer.from(gz ? gzipSync(good) : good);
          for (const [at, byte] of flips) blob[at % blob.length] = byte;
          await unpackChecked(a, [cut === undefined ? blob : blob.subarray(0, cut % (blob.length + 1))]);
        }),
        fuzzParams(40, 0.1),
      );
    },
    fuzzTimeout(40, 0.1, 200),
  );
});
