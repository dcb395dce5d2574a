import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../errors/index.js';
import {
  canonicalFieldName,
  parseParagraphs,
  parseProvides,
  parseRelations,
  relationText,
} from './control.js';
import { recordsFromParagraphs } from './package-index.js';

describe('parseParagraphs', () => {
  it('splits paragraphs on blank lines and keeps multi-line values', () => {
    const text = [
      '# a comment',
      'Package: hello',
      'Depends: libc6 (>= 2.34),',
      ' libfoo',
      'Description: greets',
      ' Long text.',
      ' .',
      ' More.',
      '',
      '',
      'Origin: Debian',
      'SHA256:',
      ' 0123 10 main/binary-amd64/Packages',
      ' 4567 20 main/binary-amd64/Packages.xz',
      '  ',
    ].join('\n');
    expect(parseParagraphs(text)).toEqual([
      { Package: 'hello', Depends: 'libc6 (>= 2.34),\nlibfoo', Description: 'greets\nLong text.\n.\nMore.' },
      {
        Origin: 'Debian',
        SHA256: '0123 10 main/binary-amd64/Packages\n4567 20 main/binary-amd64/Packages.xz',
      },
    ]);
  });

  it('canonicalises field names case-insensitively', () => {
    expect(parseParagraphs('package: a\nPRE-DEPENDS: b\nsha256: c\nuris: d\nmd5SUM: e\r\n')).toEqual([
      { Package: 'a', 'Pre-Depends': 'b', SHA256: 'c', URIs: 'd', MD5sum: 'e' },
    ]);
    expect(canonicalFieldName('installed-size')).toBe('Installed-Size');
  });

  it('reports every malformed line with the file name', () => {
    const err = (() => {
      try {
        parseParagraphs(' leading continuation\nPackage: a\nno colon here\nPackage: b\n', 'Packages');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ValidationError);
    const v = err as ValidationError;
    expect(v.file).toBe('Packages');
    expect(v.issues.map((i) => i.path)).toEqual(['line 1', 'line 3', 'line 4: Package']);
    expect(v.message).toContain('appears twice');
  });
});

describe('parseRelations', () => {
  it.each([
    ['', []],
    ['libc6', [[{ name: 'libc6' }]]],
    ['libc6 (>= 2.34), libgcc-s1', [[{ name: 'libc6', op: '>=', version: '2.34' }], [{ name: 'libgcc-s1' }]]],
    [
      'default-mta | mail-transport-agent (>>1:2)',
      [[{ name: 'default-mta' }, { name: 'mail-transport-agent', op: '>>', version: '1:2' }]],
    ],
    [
      'python3:any (<< 3.12), perl:native',
      [
        [{ name: 'python3', archQualifier: 'any', op: '<<', version: '3.12' }],
        [{ name: 'perl', archQualifier: 'native' }],
      ],
    ],
    [
      'foo (< 1), bar (> 2)',
      [[{ name: 'foo', op: '<=', version: '1' }], [{ name: 'bar', op: '>=', version: '2' }]],
    ],
    [
      'libc6 (>= 2.34),\n libfoo (= 1.0-1) ,',
      [[{ name: 'libc6', op: '>=', version: '2.34' }], [{ name: 'libfoo', op: '=', version: '1.0-1' }]],
    ],
  ])('%j', (field, expected) => {
    expect(parseRelations(field)).toEqual(expected);
  });

  it('drops alternatives for other architectures and inactive profiles', () => {
    const field =
      'a [amd64], b [!amd64] | c [linux-any], d [arm64 armhf], e <!nocheck>, f <stage1>, g <stage1> <!cross>';
    expect(parseRelations(field, { arch: 'amd64' }).map((g) => g.map((r) => r.name))).toEqual([
      ['a'],
      ['c'],
      ['e'],
      ['g'],
    ]);
    expect(
      parseRelations(field, { arch: 'arm64', profiles: ['stage1'] }).map((g) => g.map((r) => r.name)),
    ).toEqual([['b', 'c'], ['d'], ['e'], ['f'], ['g']]);
  });

  it('names the file and field of a bad relation', () => {
    expect(() => parseRelations('libc6 (>= )', { file: 'Packages.xz', field: 'hello: Depends' })).toThrow(
      /Packages\.xz[\s\S]*\[hello: Depends\] cannot parse relation "libc6 \(>= \)"/,
    );
    expect(() => parseRelations('libc6 (~= 1)')).toThrow(ValidationError);
  });

  it('writes relations back in Debian syntax', () => {
    expect(parseRelations('libc6:any (>= 2.36) | musl').flat().map(relationText)).toEqual([
      'libc6:any (>= 2.36)',
      'musl',
    ]);
  });
});

describe('parseProvides', () => {
  it('reads plain and versioned provides', () => {
    expect(parseProvides('mail-transport-agent, node-types-node (= 18.18.14~18.20.4)')).toEqual([
      { name: 'mail-transport-agent' },
      { name: 'node-types-node', version: '18.18.14~18.20.4' },
    ]);
  });

  it('refuses alternatives and inequalities', () => {
    expect(() => parseProvides('a | b')).toThrow(ValidationError);
    expect(() => parseProvides('a (>= 1)', { file: 'Packages' })).toThrow(
      /Packages[\s\S]*invalid provide "a \(>= 1\)"/,
    );
  });
});

describe('a real Packages sample (from apt-cache show on Debian bookworm)', () => {
  it('reads every paragraph into a record', async () => {
    const text = await readFile(new URL('./testdata/Packages.sample', import.meta.url), 'utf8');
    const paragraphs = parseParagraphs(text, 'Packages.sample');
    const records = recordsFromParagraphs(paragraphs, {
      suite: 'bookworm',
      uri: 'http://archive.invalid/debian',
      url: 'Packages.sample',
    });
    const byName = new Map(records.map((r) => [r.name, r]));
    expect([...byName.keys()]).toEqual(['libc6', 'bash', 'libnode108', 'nodejs']);

    const bash = byName.get('bash');
    expect(bash?.essential).toBe(true);
    expect(bash?.priority).toBe('required');
    expect(bash?.source).toBe('bash');
    expect(bash?.sourceVersion).toBe('5.2.15-2');
    // Pre-Depends come first, then Depends.
    expect(bash?.depends.map((g) => g.map(relationText).join(' | '))).toEqual([
      'libc6 (>= 2.36)',
      'libtinfo6 (>= 6)',
      'base-files (>= 2.1.12)',
      'debianutils (>= 5.6-0.1)',
    ]);

    const libc = byName.get('libc6');
    expect(libc?.source).toBe('glibc');
    expect(libc?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(libc?.size).toBe(Number(paragraphs[0]?.['Size']));
    const breaks = parseRelations(libc?.fields['Breaks'] ?? '');
    expect(breaks.length).toBe((libc?.fields['Breaks'] ?? '').split(',').length);
    expect(breaks.flat().find((r) => r.name === 'hurd')).toEqual({
      name: 'hurd',
      op: '<<',
      version: '1:0.9.git20220301-2',
    });

    const node = byName.get('nodejs');
    expect(node?.provides).toEqual([{ name: 'node-types-node', version: '18.18.14~18.20.4+dfsg-1~deb12u3' }]);
    expect(node?.depends.flat().find((r) => r.name === 'libnode108')).toEqual({
      name: 'libnode108',
      op: '=',
      version: '18.20.4+dfsg-1~deb12u3',
    });
    expect(
      byName
        .get('libnode108')
        ?.depends.flat()
        .find((r) => r.name === 'libicu72')?.version,
    ).toBe('72.1~rc-1~');
  });

  it('names the index and package when a required field is missing', () => {
    expect(() =>
      recordsFromParagraphs([{ Package: 'x', Version: '1' }], {
        suite: 's',
        uri: 'u',
        url: 'http://h/Packages.xz',
      }),
    ).toThrow(/http:\/\/h\/Packages\.xz[\s\S]*\[x\] missing Architecture, Filename, Size, SHA256/);
  });
});
