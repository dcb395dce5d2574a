/**
 * Hostile bytes against readLayer, which needs no disk and so takes many runs: random bytes, and
 * tar headers with every field chosen by the fuzzer but a valid checksum (so the reader cannot
 * stop at the checksum). Each run must resolve or reject with an IntegrityError, within the
 * per-run time limit (a reader waiting forever fails the property), and whatever it returns must
 * be safe to unpack.
 */
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../errors/index.js';
import { expectKilnError, fuzzParams, fuzzTimeout } from '../../test/support/fuzz.js';
import { fuzzedRawEntry, rawTar } from '../../test/support/malicious-tars.js';
import { MAX_NAME_BYTES, MAX_PATH_BYTES, readLayer } from './tar-read.js';
import type { LayerEntry } from './types.js';

/** Reads `blob`; returns the entries, or undefined after checking the error is an IntegrityError. */
async function readChecked(blob: Buffer): Promise<LayerEntry[] | undefined> {
  try {
    const entries = await readLayer(blob, { maxTotalBytes: 1024 ** 2, maxEntries: 100 });
    for (const e of entries) expectSafe(e);
    return entries;
  } catch (err) {
    expectKilnError(err, 'readLayer');
    expect(err).toBeInstanceOf(IntegrityError);
    return undefined;
  }
}

/** What unpacking relies on: a clean relative path, a clean hard link target, owners in range. */
function expectSafe(e: LayerEntry): void {
  for (const path of e.type === 'link' ? [e.path, e.linkname!] : [e.path]) {
    expect(path).not.toBe('');
    expect(path.startsWith('/'), path).toBe(false);
    expect(
      path.split('/').every((s) => s !== '' && s !== '.' && s !== '..'),
      path,
    ).toBe(true);
    expect(path.includes('\0')).toBe(false);
    expect(Buffer.byteLength(path)).toBeLessThanOrEqual(MAX_PATH_BYTES);
    expect(path.split('/').every((s) => Buffer.byteLength(s) <= MAX_NAME_BYTES)).toBe(true);
  }
  if (e.type === 'symlink') expect(e.linkname && !e.linkname.includes('\0')).toBeTruthy();
  for (const id of [e.uid, e.gid]) expect(Number.isSafeInteger(id) && id >= 0 && id < 2 ** 32).toBe(true);
  expect(e.mode & ~0o7777).toBe(0);
}

describe('readLayer properties', () => {
  it(
    'random bytes, plain or gzip: entries or an IntegrityError, never a hang',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), fc.boolean(), async (bytes, gz) => {
          await readChecked(gz ? gzipSync(bytes) : Buffer.from(bytes));
        }),
        fuzzParams(200, 0.5),
      );
    },
    fuzzTimeout(200, 0.5, 5),
  );

  it(
    'headers with fuzzed fields and a valid checksum: safe entries or an IntegrityError',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fuzzedRawEntry, { minLength: 1, maxLength: 5 }),
          fc.boolean(),
          fc.boolean(),
          async (entries, gz, end) => {
            const tar = rawTar(entries, { end });
            await readChecked(gz ? gzipSync(tar) : tar);
          },
        ),
        fuzzParams(200, 0.5),
      );
    },
    fuzzTimeout(200, 0.5, 5),
  );

  it('accepts the well-formed: what it reads back is what was written', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.stringMatching(/^[a-z]{1,8}(\/[a-z]{1,8}){0,2}$/), { minLength: 1, maxLength: 6 }),
        fc.string({ maxLength: 100 }),
        async (names, body) => {
          // Directories are not listed, so no name is both a file and a parent.
          const files = names.filter((n) => !names.some((m) => m.startsWith(`${n}/`)));
          const back = await readLayer(gzipSync(rawTar(files.map((name) => ({ name, body })))));
          expect(back.map((e) => [e.path, e.type, e.content!.toString()])).toEqual(
            files.map((n) => [n, 'file', body]),
          );
        },
      ),
      fuzzParams(100, 0.1),
    );
  });
});
