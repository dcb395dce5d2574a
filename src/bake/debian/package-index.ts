/**
 * The packages an archive offers: records read from its `Packages` indexes, looked up by name or
 * by what they provide, newest first.
 */
import { ValidationError } from '../../errors/index.js';
import { parseProvides, parseRelations, type Provided, type Relation } from './control.js';
import { compareVersions } from './version.js';

/** One binary package version as the archive lists it. */
export interface PackageRecord {
  readonly name: string;
  readonly version: string;
  /** Debian architecture, or `all`. */
  readonly arch: string;
  /** The suite it was read from (`bookworm-security`). */
  readonly suite: string;
  /** Archive root; the .deb is at `<uri>/<filename>`. */
  readonly uri: string;
  /** Path of the .deb below the archive root (`pool/main/h/hello/hello_2.10-3_amd64.deb`). */
  readonly filename: string;
  /** Size of the .deb in bytes. */
  readonly size: number;
  /** Hex SHA-256 of the .deb. */
  readonly sha256: string;
  /** Installed size in KiB. */
  readonly installedSize?: number;
  readonly priority?: string;
  readonly essential: boolean;
  readonly section?: string;
  /** Source package name (`Source:` without its version, or the package's own name). */
  readonly source?: string;
  /** Source version when it differs from the binary's (`Source: glibc (2.36-9)`). */
  readonly sourceVersion?: string;
  /** `Pre-Depends` then `Depends`: an AND of OR-groups. */
  readonly depends: readonly (readonly Relation[])[];
  readonly provides: readonly Provided[];
  /** Every field of the paragraph, canonically named. */
  readonly fields: Readonly<Record<string, string>>;
}

/** What an archive offers, across its suites. */
export interface PackageIndex {
  /** The suites read, in the order of the spec. */
  readonly suites: readonly string[];
  readonly arch: string;
  /** Every version of a real package, newest first (empty when unknown). */
  get(name: string): readonly PackageRecord[];
  /** The newest version of a real package. */
  newest(name: string): PackageRecord | undefined;
  /** Every record that `Provides` the (virtual) name, by package name, each name's newest first. */
  providers(virtual: string): readonly PackageRecord[];
  /** True when a real package of that name exists. */
  has(name: string): boolean;
  /** Every record, sorted by name then newest version first. */
  all(): readonly PackageRecord[];
}

/** Where a `Packages` index came from. */
export interface IndexSource {
  readonly suite: string;
  readonly uri: string;
  /** URL of the index, for error messages. */
  readonly url: string;
}

const REQUIRED = ['Package', 'Version', 'Architecture', 'Filename', 'Size', 'SHA256'] as const;

/**
 * Turns the paragraphs of one `Packages` index into records. The paragraphs become the records'
 * frozen `fields`. `depends` is parsed when first read, so a malformed `Depends` surfaces then, as
 * a ValidationError naming the index URL, package and field.
 *
 * @throws ValidationError naming the index URL and every paragraph missing a required field.
 */
export function recordsFromParagraphs(
  paragraphs: Record<string, string>[],
  from: IndexSource,
): PackageRecord[] {
  const issues: { path: string; message: string; fix: string }[] = [];
  const out: PackageRecord[] = [];
  paragraphs.forEach((p, i) => {
    const where = p['Package'] ?? `paragraph ${i + 1}`;
    const missing = REQUIRED.filter((f) => !p[f]);
    const size = Number(p['Size']);
    if (missing.length > 0 || !Number.isSafeInteger(size) || !/^[0-9a-f]{64}$/.test(p['SHA256'] ?? '')) {
      issues.push({
        path: where,
        message: missing.length > 0 ? `missing ${missing.join(', ')}` : 'bad Size or SHA256',
        fix: 'the archive index is malformed: check the mirror',
      });
      return;
    }
    const opts = { file: from.url };
    const source = /^(\S+)(?:\s*\((\S+)\))?$/.exec(p['Source'] ?? '');
    const installed = Number(p['Installed-Size']);
    const record = {
      name: p['Package'] as string,
      version: p['Version'] as string,
      arch: p['Architecture'] as string,
      suite: from.suite,
      uri: from.uri,
      filename: p['Filename'] as string,
      size,
      sha256: p['SHA256'] as string,
      ...(Number.isFinite(installed) && p['Installed-Size'] ? { installedSize: installed } : {}),
      ...(p['Priority'] ? { priority: p['Priority'] } : {}),
      essential: (p['Essential'] ?? '').toLowerCase() === 'yes',
      ...(p['Section'] ? { section: p['Section'] } : {}),
      source: source?.[1] ?? (p['Package'] as string),
      ...(source?.[2] ? { sourceVersion: source[2] } : {}),
      provides: p['Provides'] ? parseProvides(p['Provides'], { ...opts, field: `${where}: Provides` }) : [],
      fields: Object.freeze(p),
    };
    // Relations are parsed on first use: a resolve reads a few hundred of an index's 60,000 records.
    out.push(
      lazy(record, 'depends', () => [
        ...parseRelations(p['Pre-Depends'] ?? '', { ...opts, field: `${where}: Pre-Depends` }),
        ...parseRelations(p['Depends'] ?? '', { ...opts, field: `${where}: Depends` }),
      ]),
    );
  });
  if (issues.length > 0) throw new ValidationError(from.url, issues);
  return out;
}

/**
 * Builds the index of several suites' records. Only `arch` and `all` packages are kept. When the
 * same name, version and architecture appear in several suites one record is kept: the security
 * suite's, else the first suite's in `suites` order.
 */
export function buildPackageIndex(
  records: readonly PackageRecord[],
  suites: readonly string[],
  arch: string,
): PackageIndex {
  const rank = (suite: string): number => (suite.endsWith('-security') ? -1 : suites.indexOf(suite));
  const unique = new Map<string, PackageRecord>();
  for (const r of records) {
    if (r.arch !== arch && r.arch !== 'all') continue;
    const key = `${r.name}\0${r.version}\0${r.arch}`;
    const seen = unique.get(key);
    if (!seen || rank(r.suite) < rank(seen.suite)) unique.set(key, r);
  }
  const order = (a: PackageRecord, b: PackageRecord): number =>
    compareVersions(b.version, a.version) || rank(a.suite) - rank(b.suite);
  const byName = new Map<string, PackageRecord[]>();
  const byProvide = new Map<string, PackageRecord[]>();
  for (const r of unique.values()) {
    push(byName, r.name, r);
    for (const p of new Set(r.provides.map((x) => x.name))) push(byProvide, p, r);
  }
  for (const list of byName.values()) list.sort(order);
  for (const list of byProvide.values()) list.sort((a, b) => compareNames(a.name, b.name) || order(a, b));
  const all = [...byName.keys()].sort(compareNames).flatMap((n) => byName.get(n) ?? []);
  return {
    suites: [...suites],
    arch,
    get: (name) => byName.get(name) ?? [],
    newest: (name) => byName.get(name)?.[0],
    providers: (virtual) => byProvide.get(virtual) ?? [],
    has: (name) => byName.has(name),
    all: () => all,
  };
}

function lazy<T extends object, K extends string, V>(target: T, key: K, compute: () => V): T & Record<K, V> {
  let value: V | undefined;
  Object.defineProperty(target, key, {
    enumerable: true,
    get: () => (value ??= compute()),
  });
  return target as T & Record<K, V>;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Byte-order comparison of names, the same on every machine (unlike `localeCompare`). */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
