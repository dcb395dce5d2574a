/**
 * Debian control data (deb822): paragraphs of `Field: value` lines as found in `Packages`,
 * `Release`, `.sources` files and a package's `control`, and the relation fields inside them
 * (`Depends`, `Provides`, `Conflicts`…).
 */
import { ValidationError } from '../../errors/index.js';

/** A version relation operator, as written in Debian relation fields. */
export type RelationOp = '<<' | '<=' | '=' | '>=' | '>>';

/** One alternative of a relation: `name[:archqual] (op version)`. */
export interface Relation {
  readonly name: string;
  /** `any`, `native` or an architecture name, from `name:any`. */
  readonly archQualifier?: string;
  readonly op?: RelationOp;
  readonly version?: string;
}

/** What a package provides: a virtual package name and, for a versioned provide, its version. */
export interface Provided {
  readonly name: string;
  readonly version?: string;
}

/** Where a relation field came from, and which alternatives apply. */
export interface RelationOptions {
  /** File or URL the field was read from, for error messages. */
  readonly file?: string;
  /** Field name (and paragraph), for error messages. @default 'relation' */
  readonly field?: string;
  /** Keep only alternatives whose `[arch list]` admits this architecture; all are kept when unset. */
  readonly arch?: string;
  /** Active build profiles, for `<profile>` restrictions. @default [] */
  readonly profiles?: readonly string[];
}

// Fields whose canonical spelling is not "each dash-separated word capitalised".
const SPECIAL_NAMES = new Map(
  [
    'MD5sum',
    'SHA1',
    'SHA256',
    'SHA512',
    'URIs',
    'Description-md5',
    'No-Support-for-Architecture-all',
    'Vcs-Git',
    'Vcs-Browser',
    'Ruby-Versions',
  ].map((n) => [n.toLowerCase(), n]),
);

/**
 * The canonical spelling of a field name: deb822 field names are case-insensitive, so
 * `pre-depends` and `PRE-DEPENDS` both become `Pre-Depends`, `sha256` becomes `SHA256`.
 */
export function canonicalFieldName(name: string): string {
  let canonical = canonicalCache.get(name);
  if (canonical === undefined) {
    const lower = name.toLowerCase();
    canonical =
      SPECIAL_NAMES.get(lower) ??
      lower.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
    if (canonicalCache.size < 10_000) canonicalCache.set(name, canonical);
  }
  return canonical;
}

// Indexes repeat the same few dozen field names hundreds of thousands of times.
const canonicalCache = new Map<string, string>();

const FIELD_NAME_RE = /^[^\s:#-][^\s:]*$/;

/**
 * Parses deb822 text into paragraphs. Field names are canonicalised; a multi-line value keeps its
 * continuation lines, each without its one leading space, joined by `\n` (an empty first line is
 * dropped, so a `Release` file's `SHA256:` value starts with its first entry). Lines starting with
 * `#` are comments.
 *
 * @param file names the input in the ValidationError thrown for a malformed line.
 * @example
 * parseParagraphs('Package: hello\nVersion: 2.10-3\n\nPackage: bash\n')
 * // → [{ Package: 'hello', Version: '2.10-3' }, { Package: 'bash' }]
 */
export function parseParagraphs(text: string, file?: string): Record<string, string>[] {
  const paragraphs: Record<string, string>[] = [];
  const issues: { path: string; message: string; fix: string }[] = [];
  let current: Record<string, string> | undefined;
  let lastField: string | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const where = `line ${i + 1}`;
    if (line.trim() === '') {
      if (current) paragraphs.push(current);
      current = undefined;
      lastField = undefined;
      continue;
    }
    if (line.startsWith('#')) continue;
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (!current || lastField === undefined) {
        issues.push({
          path: where,
          message: 'continuation line without a field',
          fix: 'start the field with `Name: value`',
        });
        continue;
      }
      const previous = current[lastField] ?? '';
      const rest = line.slice(1).trimEnd();
      current[lastField] = previous === '' ? rest : `${previous}\n${rest}`;
      continue;
    }
    const colon = line.indexOf(':');
    const rawName = colon > 0 ? line.slice(0, colon) : '';
    if (!FIELD_NAME_RE.test(rawName)) {
      issues.push({
        path: where,
        message: `expected \`Field: value\`, got ${JSON.stringify(line.slice(0, 60))}`,
        fix: 'indent continuation lines with a space and separate paragraphs with an empty line',
      });
      continue;
    }
    const name = canonicalFieldName(rawName);
    // No prototype: a field named `__proto__` is a field like any other.
    current ??= Object.create(null) as Record<string, string>;
    if (Object.hasOwn(current, name)) {
      issues.push({
        path: `${where}: ${name}`,
        message: `field ${name} appears twice in one paragraph`,
        fix: 'keep one',
      });
      continue;
    }
    current[name] = line.slice(colon + 1).trim();
    lastField = name;
  }
  if (current) paragraphs.push(current);
  if (issues.length > 0) throw new ValidationError(file, issues);
  return paragraphs;
}

const OPS: Readonly<Record<string, RelationOp>> = {
  '<<': '<<',
  '<=': '<=',
  '=': '=',
  '>=': '>=',
  '>>': '>>',
  // Obsolete spellings dpkg still reads as <= and >=.
  '<': '<=',
  '>': '>=',
};

const ALTERNATIVE_RE =
  /^([a-zA-Z0-9][a-zA-Z0-9+.\-_]*)(?::([a-z0-9-]+))?\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([A-Za-z0-9][^()\s]*)\s*\))?\s*(?:\[([^\]]*)\])?\s*((?:<[^<>]*>\s*)*)$/;

/**
 * Parses a relation field (`Depends`, `Pre-Depends`, `Conflicts`, `Build-Depends`…) into an AND
 * of OR-groups. Alternatives restricted to other architectures (`[!amd64]`) or inactive build
 * profiles (`<stage1>`) are dropped, and so is a group left with none.
 *
 * @throws ValidationError naming `options.file` and `options.field` when the syntax is wrong.
 * @example
 * parseRelations('libc6 (>= 2.34), default-mta | mail-transport-agent')
 * // → [[{ name: 'libc6', op: '>=', version: '2.34' }], [{ name: 'default-mta' }, { name: 'mail-transport-agent' }]]
 */
export function parseRelations(field: string, options: RelationOptions = {}): Relation[][] {
  const groups: Relation[][] = [];
  for (const part of field.split(',')) {
    if (part.trim() === '') continue;
    const group: Relation[] = [];
    for (const alt of part.split('|')) {
      const text = alt.trim().replace(/\s+/g, ' ');
      const m = ALTERNATIVE_RE.exec(text);
      if (!m) {
        throw new ValidationError(options.file, [
          {
            path: options.field ?? 'relation',
            message: `cannot parse relation ${JSON.stringify(text)}`,
            fix: 'write `name[:arch] (op version)` with op one of <<, <=, =, >=, >>',
          },
        ]);
      }
      const [, name = '', archQualifier, op, version, archList, profiles] = m;
      if (archList !== undefined && options.arch !== undefined && !archListAdmits(archList, options.arch))
        continue;
      if (profiles && !profilesAdmit(profiles, options.profiles ?? [])) continue;
      group.push({
        name,
        ...(archQualifier ? { archQualifier } : {}),
        ...(op && version ? { op: OPS[op] as RelationOp, version } : {}),
      });
    }
    if (group.length > 0) groups.push(group);
  }
  return groups;
}

/**
 * Parses a `Provides` field: names, each optionally with `(= version)`.
 *
 * @throws ValidationError when an entry has alternatives or an operator other than `=`.
 */
export function parseProvides(field: string, options: RelationOptions = {}): Provided[] {
  const out: Provided[] = [];
  for (const group of parseRelations(field, { ...options, field: options.field ?? 'Provides' })) {
    const [first] = group;
    if (!first || group.length !== 1 || (first.op !== undefined && first.op !== '=')) {
      throw new ValidationError(options.file, [
        {
          path: options.field ?? 'Provides',
          message: `invalid provide ${JSON.stringify(group.map(relationText).join(' | '))}`,
          fix: 'a Provides entry is `name` or `name (= version)`, without alternatives',
        },
      ]);
    }
    out.push(
      first.version !== undefined ? { name: first.name, version: first.version } : { name: first.name },
    );
  }
  return out;
}

/** A relation written back as Debian does: `libc6:any (>= 2.36)`. */
export function relationText(rel: Relation): string {
  const name = rel.archQualifier ? `${rel.name}:${rel.archQualifier}` : rel.name;
  return rel.op ? `${name} (${rel.op} ${rel.version ?? ''})` : name;
}

function archListAdmits(list: string, arch: string): boolean {
  const terms = list.trim().split(/\s+/).filter(Boolean);
  if (terms.length === 0) return true;
  const negated = terms.every((t) => t.startsWith('!'));
  const hit = terms.some((t) => archMatches(t.replace(/^!/, ''), arch));
  return negated ? !hit : hit;
}

// Debian architecture wildcards: `any`, `linux-any`, `any-amd64`; plain names mean Linux.
function archMatches(pattern: string, arch: string): boolean {
  if (pattern === 'any' || pattern === arch || pattern === `linux-${arch}`) return true;
  if (pattern === 'linux-any') return !arch.includes('-');
  if (pattern === `any-${arch}`) return true;
  return false;
}

function profilesAdmit(restrictions: string, active: readonly string[]): boolean {
  const formulas = [...restrictions.matchAll(/<([^<>]*)>/g)].map((m) => (m[1] ?? '').trim().split(/\s+/));
  return formulas.some((terms) =>
    terms.every((t) => (t.startsWith('!') ? !active.includes(t.slice(1)) : active.includes(t))),
  );
}
