/**
 * Where the Debian archive is: apt's own configuration on this machine (`sources.list` and
 * `sources.list.d/`), or a `mirror:` from kiln's config, turned into the list of suites to read.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError, ValidationError, wrap } from '../../errors/index.js';
import { parseParagraphs } from './control.js';

/** The keyring apt uses for Debian's archive, from the debian-archive-keyring package. */
export const DEFAULT_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** Components read when the config names none. */
export const DEFAULT_COMPONENTS: readonly string[] = ['main'];

/** Suites that have no `-updates` or `-security` companion. */
const ROLLING_SUITES = new Set(['sid', 'unstable', 'experimental', 'rc-buggy']);

/** One enabled `deb` entry of apt's configuration. */
export interface AptSource {
  /** Always includes `deb`: `deb-src`-only entries are skipped. */
  readonly types: readonly string[];
  /** Archive roots, without a trailing `/`. */
  readonly uris: readonly string[];
  readonly suites: readonly string[];
  readonly components: readonly string[];
  /** Keyring file from `Signed-By` / `[signed-by=…]`, when one is given. */
  readonly signedBy?: string;
  /** The file this entry came from, for messages. */
  readonly file?: string;
}

/** One suite of the archive to read. */
export interface ArchiveSuite {
  /** `bookworm`, `bookworm-updates`, `bookworm-security`. */
  readonly name: string;
  /** Archive root: `<uri>/dists/<name>/InRelease` is its signed index. */
  readonly uri: string;
  readonly components: readonly string[];
  /** OpenPGP keyring (a binary file usable with `gpgv --keyring`) its signature must verify against. */
  readonly keyring: string;
}

/** The suites of one Debian release for one architecture, in order of preference (base first). */
export interface ArchiveSpec {
  readonly arch: string;
  readonly suites: readonly ArchiveSuite[];
}

/** A mirror given in kiln's config, overriding apt's sources. */
export interface MirrorOptions {
  /** Root of the main archive (serving `<suite>` and `<suite>-updates`). */
  readonly url: string;
  /** Root of the security archive (serving `<suite>-security`); apt's source is used when unset. */
  readonly securityUrl?: string;
  /** @default DEFAULT_KEYRING */
  readonly keyring?: string;
}

/** Options of {@link archiveSpec}. */
export interface ArchiveSpecOptions {
  /** The release's codename, such as `bookworm`. */
  readonly suite: string;
  readonly sources: readonly AptSource[];
  readonly mirror?: MirrorOptions;
  /** @default DEFAULT_COMPONENTS */
  readonly components?: readonly string[];
  /** Debian architecture name, such as `amd64`. */
  readonly arch: string;
}

/**
 * Reads apt's enabled `deb` sources under `root`: `etc/apt/sources.list` and the `.list` and
 * `.sources` files of `etc/apt/sources.list.d/`, in apt's order (the main file, then the
 * directory's files sorted by name). `deb-src` entries, `Enabled: no` stanzas and other files are
 * ignored.
 *
 * @throws ValidationError naming the file and line or stanza of a malformed entry.
 */
export async function readAptSources(root = '/'): Promise<AptSource[]> {
  const out: AptSource[] = [];
  const main = join(root, 'etc/apt/sources.list');
  const text = await readOptional(main);
  if (text !== undefined) out.push(...parseOneLineSources(text, main));
  const dir = join(root, 'etc/apt/sources.list.d');
  let names: string[] = [];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrap(`reading ${dir}`, err);
  }
  for (const name of names) {
    const file = join(dir, name);
    if (name.endsWith('.list')) out.push(...parseOneLineSources((await readOptional(file)) ?? '', file));
    else if (name.endsWith('.sources'))
      out.push(...parseDeb822Sources((await readOptional(file)) ?? '', file));
  }
  return out;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw wrap(`reading ${file}`, err);
  }
}

/** Parses apt's one-line format: `deb [opt=value …] uri suite [component…]`. */
export function parseOneLineSources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)((?:\s+\S+)*)$/.exec(line);
    if (!m) {
      throw new ValidationError(file, [
        {
          path: `line ${i + 1}`,
          message: `cannot parse ${JSON.stringify(line)}`,
          fix: 'write `deb [signed-by=/path/to/keyring.gpg] URI SUITE COMPONENT…`',
        },
      ]);
    }
    const [, type, opts = '', uri = '', suite = '', comps = ''] = m;
    if (type !== 'deb') return;
    const options = new Map(
      opts
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((o) => [o.split('=')[0]?.toLowerCase() ?? '', o.slice(o.indexOf('=') + 1)] as const),
    );
    const signedBy = keyringPath(options.get('signed-by'));
    out.push({
      types: ['deb'],
      uris: [trimSlash(uri)],
      suites: [suite],
      components: comps.trim().split(/\s+/).filter(Boolean),
      ...(signedBy ? { signedBy } : {}),
      file,
    });
  });
  return out;
}

/** Parses apt's deb822 format (`Types:`, `URIs:`, `Suites:`, `Components:`, `Signed-By:`, `Enabled:`). */
export function parseDeb822Sources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  parseParagraphs(text, file).forEach((p, i) => {
    if ((p['Enabled'] ?? 'yes').toLowerCase() === 'no') return;
    const types = words(p['Types']);
    if (!types.includes('deb')) return;
    const uris = words(p['URIs']).map(trimSlash);
    const suites = words(p['Suites']);
    if (uris.length === 0 || suites.length === 0) {
      throw new ValidationError(file, [
        {
          path: `stanza ${i + 1}`,
          message: 'a deb stanza needs URIs: and Suites:',
          fix: 'add the missing field, or `Enabled: no` to turn the stanza off',
        },
      ]);
    }
    if (p['Signed-By']?.includes('\n')) {
      throw new ValidationError(file, [
        {
          path: `stanza ${i + 1}: Signed-By`,
          message: 'an inline Signed-By key is not supported',
          fix: 'save the key to a file (gpg --dearmor) and set Signed-By to its path',
        },
      ]);
    }
    const signedBy = keyringPath(p['Signed-By']);
    out.push({
      types,
      uris,
      suites,
      components: words(p['Components']),
      ...(signedBy ? { signedBy } : {}),
      file,
    });
  });
  return out;
}

function words(value: string | undefined): string[] {
  return (value ?? '').split(/\s+/).filter(Boolean);
}

function trimSlash(uri: string): string {
  return uri.replace(/\/+$/, '');
}

// Signed-By may also hold fingerprints; only a file path can be handed to gpgv.
function keyringPath(value: string | undefined): string | undefined {
  return value
    ?.split(/[\s,]+/)
    .map((v) => v.trim())
    .find((v) => v.startsWith('/'));
}

/**
 * Decides which suites to read, and from where: `<suite>` and `<suite>-updates` from the mirror or
 * the apt source serving `<suite>`, `<suite>-security` from `mirror.securityUrl` (else the mirror's
 * own URL; a mirror never mixes with apt's sources) or the apt source
 * serving it. When apt only lists another release (this machine runs bookworm, the image wants
 * trixie), the same archive roots are reused with the new suite names. `sid`/`unstable` have no
 * updates or security suites.
 *
 * @throws NotFoundError when no source serves a suite, saying to add `mirror:` or an apt source.
 */
export function archiveSpec(options: ArchiveSpecOptions): ArchiveSpec {
  const { suite, sources, mirror, arch } = options;
  const components = [...(options.components ?? DEFAULT_COMPONENTS)];
  const debs = sources.filter((s) => s.types.includes('deb') && s.uris.length > 0);
  const rolling = ROLLING_SUITES.has(suite);

  const baseSource = mirror
    ? { uri: trimSlash(mirror.url), keyring: mirror.keyring ?? DEFAULT_KEYRING }
    : fromSources(
        debs,
        suite,
        (s) => !/-(updates|security|backports|proposed-updates)$/.test(s) && !s.includes('/'),
      );
  const securityName = `${suite}-security`;
  const securitySource = rolling
    ? undefined
    : mirror
      ? // A configured mirror is the whole archive: it never silently mixes with the host's apt sources.
        { uri: trimSlash(mirror.securityUrl ?? mirror.url), keyring: mirror.keyring ?? DEFAULT_KEYRING }
      : fromSources(debs, securityName, (s) => s.endsWith('-security'));

  const missing = [...(baseSource ? [] : [suite]), ...(securitySource || rolling ? [] : [securityName])];
  if (missing.length > 0 || !baseSource) {
    throw new NotFoundError(
      `no archive serves ${missing.join(' and ')}: apt's sources list ${describeSources(debs)}; ` +
        `add \`mirror: { url, securityUrl }\` to the image's config, or an apt source for ${missing.join(' and ')}`,
    );
  }
  const suites: ArchiveSuite[] = [{ name: suite, ...baseSource, components }];
  if (!rolling) suites.push({ name: `${suite}-updates`, ...baseSource, components });
  if (securitySource) suites.push({ name: securityName, ...securitySource, components });
  return { arch, suites };
}

// The source naming `suite` exactly wins; otherwise one serving the same kind of suite for another
// release, whose root then serves this release too.
function fromSources(
  debs: readonly AptSource[],
  suite: string,
  sameKind: (s: string) => boolean,
): { uri: string; keyring: string } | undefined {
  const exact = debs.find((s) => s.suites.includes(suite));
  const source = exact ?? debs.find((s) => s.suites.some(sameKind));
  const uri = source?.uris[0];
  if (!source || uri === undefined) return undefined;
  return { uri, keyring: source.signedBy ?? DEFAULT_KEYRING };
}

function describeSources(debs: readonly AptSource[]): string {
  if (debs.length === 0) return 'nothing';
  return debs.map((s) => `${s.suites.join(' ')} (${s.file ?? 'config'})`).join(', ');
}
