/**
 * Hostile text against the Debian parsers: deb822 paragraphs, relation fields, `Packages` records,
 * `Release` files and apt sources. Each must return or throw a kiln error (a ValidationError or
 * IntegrityError naming the file), in bounded time; and what is well formed must come back as
 * written.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KilnError, ValidationError } from '../../errors/index.js';
import { expectKilnError, fuzzParams, fuzzTimeout } from '../../../test/support/fuzz.js';
import { parseParagraphs, parseProvides, parseRelations } from './control.js';
import { buildPackageIndex, recordsFromParagraphs } from './package-index.js';
import { parseRelease } from './release.js';
import { archiveSpec, parseDeb822Sources, parseOneLineSources } from './sources.js';

/** Calls `fn`; a throw must be a kiln error, and the call must not take long (no regex blow-up). */
function settle<T>(what: string, fn: () => T): T | KilnError {
  const started = performance.now();
  try {
    return fn();
  } catch (err) {
    expectKilnError(err, what);
    return err;
  } finally {
    expect(performance.now() - started, `${what} took too long`).toBeLessThan(2_000);
  }
}

/** Text made of the characters these formats care about, so the fuzzer hits their syntax. */
function syntaxText(alphabet: string, maxLength = 200): fc.Arbitrary<string> {
  return fc.oneof(
    fc.array(fc.constantFrom(...alphabet), { maxLength }).map((c) => c.join('')),
    fc.string({ maxLength }),
    fc.string({ unit: 'binary', maxLength: 40 }),
  );
}

const DEB822 = 'ab:- \t\n#\r.SPackage:Version:Depends:';
const RELATION = 'ab0:(<=>)[!]<> ,|-.+~ \tanyamd64';

describe('deb822 and relation parsers', () => {
  it(
    'parseParagraphs: paragraphs or a ValidationError naming the file and line',
    () => {
      fc.assert(
        fc.property(syntaxText(DEB822, 400), (text) => {
          const out = settle('parseParagraphs', () => parseParagraphs(text, 'Packages'));
          if (out instanceof KilnError) {
            expect(out).toBeInstanceOf(ValidationError);
            expect((out as ValidationError).file).toBe('Packages');
            expect((out as ValidationError).issues.every((i) => /^line \d+/.test(i.path))).toBe(true);
          }
        }),
        fuzzParams(300),
      );
    },
    fuzzTimeout(300),
  );

  it('parseParagraphs: well-formed paragraphs come back as written, `__proto__` included', () => {
    const name = fc.oneof(
      fc.stringMatching(/^[A-Z][a-z]{0,8}(-[A-Z][a-z]{0,6})?$/),
      fc.constantFrom('__proto__', 'Constructor', 'Tostring', 'Hasownproperty'),
    );
    const value = fc.stringMatching(/^[!-~]([ -~]{0,20}[!-~])?$/);
    const paragraph = fc.dictionary(name, value, { minKeys: 1, maxKeys: 6 });
    fc.assert(
      fc.property(fc.array(paragraph, { minLength: 1, maxLength: 4 }), (paragraphs) => {
        const text = paragraphs
          .map((p) =>
            Object.entries(p)
              .map(([k, v]) => `${k}: ${v}\n`)
              .join(''),
          )
          .join('\n');
        const back = parseParagraphs(text, 'x').map((p) => Object.entries(p));
        expect(back).toEqual(paragraphs.map((p) => Object.entries(p)));
      }),
      fuzzParams(200),
    );
  });

  it(
    'parseRelations and parseProvides: relations or a ValidationError naming the field',
    () => {
      const options = fc.record({
        arch: fc.option(fc.constantFrom('amd64', 'arm64', 'linux-any'), { nil: undefined }),
        profiles: fc.option(fc.array(fc.constantFrom('stage1', 'nocheck', '!x')), { nil: undefined }),
      });
      fc.assert(
        fc.property(syntaxText(RELATION, 300), options, (text, opts) => {
          const parsers: [string, () => { name: string }[]][] = [
            [
              'parseRelations',
              () => parseRelations(text, { ...opts, field: 'hello: Depends', file: 'P' }).flat(),
            ],
            ['parseProvides', () => parseProvides(text, { ...opts, field: 'hello: Provides', file: 'P' })],
          ];
          for (const [what, parse] of parsers) {
            const out = settle(what, parse);
            if (out instanceof ValidationError) expect(out.issues[0]?.path).toMatch(/^hello: /);
            else if (!(out instanceof KilnError)) {
              for (const r of out) expect(r.name).toMatch(/^[a-zA-Z0-9][a-zA-Z0-9+.\-_]*$/);
            }
          }
        }),
        fuzzParams(300),
      );
    },
    fuzzTimeout(300),
  );

  it('parseRelations: long near-misses stay fast (no catastrophic backtracking)', () => {
    for (const text of [
      `a${' '.repeat(50_000)}!`,
      `a (${'>= '.repeat(20_000)}`,
      `a [${'!amd64 '.repeat(20_000)}`,
      `a ${'<stage1> '.repeat(20_000)}<`,
      `a:${'b-'.repeat(20_000)}!`,
    ]) {
      settle('parseRelations', () => parseRelations(text));
    }
  });
});

describe('archive indexes and sources', () => {
  const field = (names: string[], value: fc.Arbitrary<string>) =>
    fc.dictionary(fc.constantFrom(...names), value, { maxKeys: names.length });
  const value = fc.oneof(
    fc.constantFrom(
      'hello',
      '1.0-1',
      'amd64',
      'all',
      '12',
      '-1',
      '1e3',
      'a'.repeat(64),
      'libc6 (>= 2',
      'a | b',
    ),
    syntaxText(RELATION, 40),
  );
  const paragraph = field(
    [
      'Package',
      'Version',
      'Architecture',
      'Filename',
      'Size',
      'SHA256',
      'Depends',
      'Pre-Depends',
      'Provides',
      'Source',
      'Installed-Size',
      'Essential',
    ],
    value,
  );

  it(
    'recordsFromParagraphs and buildPackageIndex: records or a ValidationError naming the index',
    () => {
      const from = {
        suite: 'bookworm',
        uri: 'http://127.0.0.1:1/debian',
        url: 'http://127.0.0.1:1/Packages',
      };
      fc.assert(
        fc.property(fc.array(paragraph, { maxLength: 6 }), (paragraphs) => {
          const records = settle('recordsFromParagraphs', () => recordsFromParagraphs(paragraphs, from));
          if (records instanceof KilnError) {
            expect((records as ValidationError).file).toBe(from.url);
            return;
          }
          const index = settle('buildPackageIndex', () => buildPackageIndex(records, ['bookworm'], 'amd64'));
          expect(index).not.toBeInstanceOf(KilnError);
          for (const r of records) {
            expect(Number.isSafeInteger(r.size)).toBe(true);
            const depends = settle('depends', () => r.depends);
            if (depends instanceof ValidationError) expect(depends.file).toBe(from.url);
          }
        }),
        fuzzParams(300),
      );
    },
    fuzzTimeout(300),
  );

  it(
    'parseRelease: a Release or a ValidationError/IntegrityError naming the URL',
    () => {
      const url = 'http://127.0.0.1:1/dists/bookworm/InRelease';
      const sha = fc.oneof(
        fc.constantFrom(
          ` ${'a'.repeat(64)} 123 main/binary-amd64/Packages.xz`,
          ' zz 1 x',
          ` ${'b'.repeat(64)} -1 x`,
          ` ${'c'.repeat(64)} 99999999999999999999 main/binary-amd64/Packages`,
        ),
        syntaxText('0123456789abcdef /\n', 100),
      );
      const text = fc
        .record(
          {
            Suite: fc.constantFrom('bookworm', 'trixie', ''),
            Codename: fc.constantFrom('bookworm', 'sid'),
            Date: fc.constantFrom(
              'Sat, 11 Jul 2026 10:16:37 UTC',
              '31 Feb 2026 99:99:99 +9999',
              'yesterday',
              '',
            ),
            'Valid-Until': fc.constantFrom(
              'Sat, 11 Jul 2099 10:16:37 UTC',
              'Mon, 1 Jan 2001 00:00:00 GMT',
              'x',
            ),
            SHA256: fc.array(sha, { maxLength: 4 }).map((l) => l.map((x) => `\n ${x}`).join('')),
          },
          { requiredKeys: [] },
        )
        .map((f) =>
          Object.entries(f)
            .map(([k, v]) => `${k}: ${v}`)
            .join('\n'),
        );
      fc.assert(
        fc.property(fc.oneof(text, syntaxText(DEB822, 300)), fc.boolean(), (t, allowExpired) => {
          const out = settle('parseRelease', () =>
            parseRelease(t, { suite: 'bookworm', url, now: new Date('2026-07-12T00:00:00Z'), allowExpired }),
          );
          if (out instanceof KilnError) expect(out.message).toContain(url);
          else for (const f of out.files.values()) expect(Number.isSafeInteger(f.size)).toBe(true);
        }),
        fuzzParams(300),
      );
    },
    fuzzTimeout(300),
  );

  it(
    'apt sources, one-line and deb822: sources or a ValidationError naming the file',
    () => {
      const line = fc.oneof(
        fc.constantFrom(
          'deb http://127.0.0.1:1/debian bookworm main',
          'deb [signed-by=/k.gpg arch=amd64] http://127.0.0.1:1/d bookworm-security main contrib',
          'deb-src http://x y z',
          'deb [ http://x y',
          'deb',
          '# comment',
          'Types: deb\nURIs: http://127.0.0.1:1/d\nSuites: bookworm\nComponents: main\nSigned-By: /k.gpg',
          'Types: deb\nURIs:\nSuites: x',
          'Signed-By:\n -----BEGIN PGP',
          'Enabled: no',
        ),
        syntaxText('deb []=/:.\n #-abc', 80),
      );
      fc.assert(
        fc.property(fc.array(line, { maxLength: 6 }), (lines) => {
          const text = lines.join('\n');
          for (const [what, parse] of [
            ['parseOneLineSources', () => parseOneLineSources(text, 'sources.list')],
            ['parseDeb822Sources', () => parseDeb822Sources(text, 'debian.sources')],
          ] as const) {
            const out = settle(what, parse);
            if (out instanceof KilnError) {
              expect(out).toBeInstanceOf(ValidationError);
              continue;
            }
            settle('archiveSpec', () => archiveSpec({ suite: 'bookworm', sources: out, arch: 'amd64' }));
          }
        }),
        fuzzParams(300),
      );
    },
    fuzzTimeout(300),
  );
});
