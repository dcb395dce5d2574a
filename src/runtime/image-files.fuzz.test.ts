/**
 * The manifest of files computed from layers must be exactly what walking the root `unpackLayers`
 * makes lists: checked on hand-made layers for each rule (whiteouts, opaque directories, symlinked
 * parents, hard links, implicit directories), on random layers as a property, and seeded from a
 * base image's manifest.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { fuzzParams, fuzzTimeout } from '../../test/support/fuzz.js';
import { rawTar, type RawEntry } from '../../test/support/malicious-tars.js';
import { IntegrityError } from '../errors/index.js';
import { unpackLayers } from '../oci/index.js';
import { filesOfLayers } from './image-files.js';
import { walkTree } from './tree.js';

const temps: string[] = [];
afterEach(async () => {
  for (const t of temps.splice(0)) await rm(t, { recursive: true, force: true });
});

let n = 0;
/** What walking the unpacked root lists, or the error unpacking gave. */
async function unpacked(layers: readonly Buffer[]): Promise<unknown> {
  if (temps.length === 0) temps.push(await mkdtemp(path.join(tmpdir(), 'kiln-files-')));
  const dest = path.join(temps[0]!, `root-${n++}`);
  try {
    await unpackLayers(layers, dest, { preserveOwnership: true });
  } catch (err) {
    return err;
  }
  try {
    return await walkTree(dest);
  } finally {
    await rm(dest, { recursive: true, force: true });
  }
}

const computed = (layers: readonly Buffer[]) => filesOfLayers(layers).catch((err: unknown) => err);

describe('filesOfLayers', () => {
  it('lists what the unpacked root holds: whiteouts, opaque dirs, symlinked parents, hard links, implicit dirs', async () => {
    const layers = [
      rawTar([
        { name: 'usr/bin/sh', body: '#!sh', mode: 0o755 },
        { name: 'bin', type: '2', linkname: 'usr/bin' },
        { name: 'etc/', type: '5', mode: 0o750, uid: 3, gid: 4 },
        { name: 'etc/motd', body: 'hi\n', uid: 7, gid: 8 },
        { name: 'etc/old', body: 'x' },
        { name: 'opt/a/1', body: '1' },
        { name: 'opt/a/2', body: '2' },
        { name: 'run/fifo', type: '6', mode: 0o600 },
        { name: 'tmp/', type: '5', mode: 0o1777 },
      ]),
      gzipSync(
        rawTar([
          { name: 'bin/dash', body: 'dash', mode: 0o4755 },
          { name: 'usr/bin/ash', type: '1', linkname: 'usr/bin/sh' },
          { name: 'etc/.wh.old', body: '' },
          { name: 'opt/a/.wh..wh..opq', body: '' },
          { name: 'opt/a/3', body: '3' },
          { name: 'etc/', type: '5', mode: 0o755 },
          { name: 'lib', type: '2', linkname: '/usr/lib' },
          { name: 'usr/lib/', type: '5' },
          { name: 'lib/x.so', body: 'elf' },
        ]),
      ),
    ];
    const files = await filesOfLayers(layers);
    expect(files).toEqual(await unpacked(layers));
    expect(files.map((f) => f.path)).toContain('usr/bin/dash');
    expect(files.map((f) => f.path)).not.toContain('etc/old');
    expect(files.filter((f) => f.path.startsWith('opt/a/')).map((f) => f.path)).toEqual(['opt/a/3']);
    const sh = files.find((f) => f.path === 'usr/bin/sh')!;
    expect(files.find((f) => f.path === 'usr/bin/ash')).toEqual({ ...sh, path: 'usr/bin/ash' });
  });

  it('starts from a base manifest as if its layers had been applied', async () => {
    const base = [
      rawTar([
        { name: 'a/b', body: 'b' },
        { name: 'c', type: '2', linkname: 'a' },
        { name: 'a/h', type: '1', linkname: 'a/b' },
      ]),
    ];
    const top = [
      rawTar([
        { name: 'c/d', body: 'd' },
        { name: 'a/.wh.b', body: '' },
      ]),
    ];
    expect(await filesOfLayers(top, { onto: await filesOfLayers(base) })).toEqual(
      await filesOfLayers([...base, ...top]),
    );
  });

  it('refuses what the unpacker refuses', async () => {
    for (const layer of [
      rawTar([
        { name: 'a', body: 'x' },
        { name: 'a', body: 'y' },
      ]),
      rawTar([
        { name: 'a', body: 'x' },
        { name: 'a/b', body: 'y' },
      ]),
      rawTar([
        { name: 'l', type: '2', linkname: '/' },
        { name: 'l/x', body: 'y' },
      ]),
      rawTar([{ name: 'h', type: '1', linkname: 'nothing' }]),
      rawTar([{ name: 'dev/null', type: '3' }]),
    ]) {
      expect(await unpacked([layer])).toBeInstanceOf(IntegrityError);
      await expect(filesOfLayers([layer])).rejects.toThrow(IntegrityError);
    }
  });

  it(
    'agrees with unpacking on random layers: the same files, or both refuse',
    async () => {
      const segment = fc.constantFrom('a', 'b', 'c', 'a', 'b', '.wh.a', '.wh.b', '.wh..wh..opq');
      const name = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
      const target = fc.oneof(
        name,
        name.map((p) => `/${p}`),
        name.map((p) => `../${p}`),
      );
      const owner = { uid: fc.constantFrom(0, 1000), gid: fc.constantFrom(0, 50) };
      const entry: fc.Arbitrary<RawEntry> = fc.oneof(
        fc.record({
          name,
          body: fc.constantFrom('', 'x', 'yy'),
          mode: fc.constantFrom(0o644, 0o4755),
          ...owner,
        }),
        fc.record({ name, type: fc.constant('5'), mode: fc.constantFrom(0o755, 0o700, 0o1777), ...owner }),
        fc.record({ name, type: fc.constantFrom('2', '1'), linkname: target, ...owner }),
        fc.record({ name, type: fc.constant('6'), mode: fc.constant(0o600) }),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(entry, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 3 }),
          async (ls) => {
            const layers = ls.map((entries) => rawTar(entries));
            const want = await unpacked(layers);
            const got = await computed(layers);
            if (want instanceof Error)
              expect(got, `unpack refused: ${want.message}`).toBeInstanceOf(IntegrityError);
            else expect(got).toEqual(want);
          },
        ),
        fuzzParams(150, 0.05),
      );
    },
    fuzzTimeout(150, 0.05, 100),
  );
});
