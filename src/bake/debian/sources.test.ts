import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '../../errors/index.js';
import { DEFAULT_KEYRING, archiveSpec, readAptSources, type AptSource } from './sources.js';

const MAIN = 'http://archive.invalid/debian';
const SECURITY = 'http://security.invalid/debian-security';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-sources-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function put(path: string, text: string): Promise<void> {
  await mkdir(join(root, path, '..'), { recursive: true });
  await writeFile(join(root, path), text);
}

describe('readAptSources', () => {
  it('reads sources.list, then .list and .sources files in name order, skipping deb-src and disabled entries', async () => {
    await put(
      'etc/apt/sources.list',
      [
        '# a comment',
        `deb [arch=amd64 signed-by=/etc/apt/keyrings/a.gpg] ${MAIN}/ bookworm main contrib # trailing`,
        `deb-src ${MAIN} bookworm main`,
        '',
      ].join('\n'),
    );
    await put(
      'etc/apt/sources.list.d/b.sources',
      [
        'Types: deb deb-src',
        `URIs: ${MAIN}`,
        'Suites: bookworm bookworm-updates',
        'Components: main',
        `Signed-By: ${DEFAULT_KEYRING}`,
        '',
        '# the security archive',
        'types: deb',
        `uris: ${SECURITY}`,
        'suites: bookworm-security',
        'components: main',
        '',
        'Types: deb',
        'URIs: http://off.invalid/debian',
        'Suites: bookworm',
        'Enabled: no',
        '',
        'Types: deb-src',
        'URIs: http://src.invalid/debian',
        'Suites: bookworm',
      ].join('\n'),
    );
    await put('etc/apt/sources.list.d/a.list', 'deb http://a.invalid/debian sid main\n');
    await put('etc/apt/sources.list.d/c.list.disabled', 'deb http://disabled.invalid/debian sid main\n');
    await put(
      'etc/apt/sources.list.d/d.sources.save',
      'Types: deb\nURIs: http://save.invalid\nSuites: sid\n',
    );

    const sources = await readAptSources(root);
    expect(sources.map(({ file, ...s }) => ({ ...s, file: file?.slice(root.length) }))).toEqual([
      {
        types: ['deb'],
        uris: [MAIN],
        suites: ['bookworm'],
        components: ['main', 'contrib'],
        signedBy: '/etc/apt/keyrings/a.gpg',
        file: '/etc/apt/sources.list',
      },
      {
        types: ['deb'],
        uris: ['http://a.invalid/debian'],
        suites: ['sid'],
        components: ['main'],
        file: '/etc/apt/sources.list.d/a.list',
      },
      {
        types: ['deb', 'deb-src'],
        uris: [MAIN],
        suites: ['bookworm', 'bookworm-updates'],
        components: ['main'],
        signedBy: DEFAULT_KEYRING,
        file: '/etc/apt/sources.list.d/b.sources',
      },
      {
        types: ['deb'],
        uris: [SECURITY],
        suites: ['bookworm-security'],
        components: ['main'],
        file: '/etc/apt/sources.list.d/b.sources',
      },
    ]);
  });

  it('returns nothing when apt has no configuration', async () => {
    expect(await readAptSources(root)).toEqual([]);
  });

  it('names the file and line of a malformed entry', async () => {
    await put('etc/apt/sources.list', `deb ${MAIN}\n`);
    await expect(readAptSources(root)).rejects.toThrow(ValidationError);
    await expect(readAptSources(root)).rejects.toThrow(/sources\.list[\s\S]*\[line 1\]/);
  });

  it('refuses a deb822 stanza without URIs, and inline keys', async () => {
    await put('etc/apt/sources.list.d/x.sources', 'Types: deb\nSuites: bookworm\n');
    await expect(readAptSources(root)).rejects.toThrow(/x\.sources[\s\S]*needs URIs: and Suites:/);
    await put(
      'etc/apt/sources.list.d/x.sources',
      `Types: deb\nURIs: ${MAIN}\nSuites: bookworm\nSigned-By:\n -----BEGIN PGP\n .\n`,
    );
    await expect(readAptSources(root)).rejects.toThrow(/inline Signed-By key/);
  });
});

// The layout of a stock Debian 12 machine: one stanza for the release and its updates, one for security.
const BOOKWORM: AptSource[] = [
  {
    types: ['deb'],
    uris: [MAIN],
    suites: ['bookworm', 'bookworm-updates'],
    components: ['main'],
    signedBy: '/k/main.gpg',
  },
  { types: ['deb'], uris: [SECURITY], suites: ['bookworm-security'], components: ['main'] },
];

describe('archiveSpec', () => {
  it('takes the release and its updates from one source, security from the other', () => {
    expect(archiveSpec({ suite: 'bookworm', sources: BOOKWORM, arch: 'amd64' })).toEqual({
      arch: 'amd64',
      suites: [
        { name: 'bookworm', uri: MAIN, components: ['main'], keyring: '/k/main.gpg' },
        { name: 'bookworm-updates', uri: MAIN, components: ['main'], keyring: '/k/main.gpg' },
        { name: 'bookworm-security', uri: SECURITY, components: ['main'], keyring: DEFAULT_KEYRING },
      ],
    });
  });

  it('reuses the same archives for another release', () => {
    const spec = archiveSpec({
      suite: 'trixie',
      sources: BOOKWORM,
      arch: 'arm64',
      components: ['main', 'contrib'],
    });
    expect(spec.suites.map((s) => [s.name, s.uri, s.components.join(' ')])).toEqual([
      ['trixie', MAIN, 'main contrib'],
      ['trixie-updates', MAIN, 'main contrib'],
      ['trixie-security', SECURITY, 'main contrib'],
    ]);
  });

  it('takes every suite from a mirror in the config, never mixing in apt sources', () => {
    const mirror = { url: 'http://mirror.invalid/debian/', keyring: '/k/m.gpg' };
    expect(
      archiveSpec({ suite: 'bookworm', sources: BOOKWORM, arch: 'amd64', mirror }).suites.map((s) => [
        s.uri,
        s.keyring,
      ]),
    ).toEqual([
      ['http://mirror.invalid/debian', '/k/m.gpg'],
      ['http://mirror.invalid/debian', '/k/m.gpg'],
      ['http://mirror.invalid/debian', '/k/m.gpg'],
    ]);
    const both = archiveSpec({
      suite: 'bookworm',
      sources: [],
      arch: 'amd64',
      mirror: { url: 'http://m.invalid/debian', securityUrl: 'http://m.invalid/security' },
    });
    expect(both.suites.map((s) => `${s.name} ${s.uri} ${s.keyring}`)).toEqual([
      `bookworm http://m.invalid/debian ${DEFAULT_KEYRING}`,
      `bookworm-updates http://m.invalid/debian ${DEFAULT_KEYRING}`,
      `bookworm-security http://m.invalid/security ${DEFAULT_KEYRING}`,
    ]);
  });

  it('reads sid alone: it has no updates or security suite', () => {
    expect(archiveSpec({ suite: 'sid', sources: BOOKWORM, arch: 'amd64' }).suites.map((s) => s.name)).toEqual(
      ['sid'],
    );
  });

  it('says to add a mirror or an apt source when a suite has no archive', () => {
    const onlyMain = [BOOKWORM[0] as AptSource];
    expect(() => archiveSpec({ suite: 'bookworm', sources: onlyMain, arch: 'amd64' })).toThrow(NotFoundError);
    expect(() => archiveSpec({ suite: 'bookworm', sources: onlyMain, arch: 'amd64' })).toThrow(
      /no archive serves bookworm-security[\s\S]*add `mirror: \{ url, securityUrl \}`/,
    );
    expect(() => archiveSpec({ suite: 'bookworm', sources: [], arch: 'amd64' })).toThrow(
      /no archive serves bookworm and bookworm-security: apt's sources list nothing/,
    );
  });
});
