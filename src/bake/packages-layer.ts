import path from 'node:path/posix';
import picomatch from 'picomatch';
import type { LayerEntry } from '../oci/index.js';

/**
 * Turns the contents of Debian packages into one filesystem tree, doing what dpkg and the
 * maintainer scripts would have done that an image needs: the merged-/usr layout, the package
 * database, and the CA bundle. Maintainer scripts are never run.
 */

/** Top-level directories that live under /usr in the merged-/usr layout, with their symlinks. */
export const MERGED_USR_DIRS: readonly string[] = Object.freeze([
  'bin',
  'sbin',
  'lib',
  'lib32',
  'lib64',
  'libx32',
]);

/** Where the CA bundle goes, as update-ca-certificates writes it. */
export const CA_BUNDLE_PATH = 'etc/ssl/certs/ca-certificates.crt';

/** One package's contents and control fields. */
export interface PackageContents {
  readonly name: string;
  readonly version: string;
  /** The control paragraph from the .deb, used for the dpkg status database. */
  readonly control: Readonly<Record<string, string>>;
  readonly entries: readonly LayerEntry[];
}

/** Maps a root-relative path to its merged-/usr location: `bin/sh` → `usr/bin/sh`. */
export function mergedUsrPath(p: string): string {
  const first = p.split('/', 1)[0]!;
  return MERGED_USR_DIRS.includes(first) ? `usr/${p}` : p;
}

/**
 * A relative symlink moved by merged-/usr must still point at the same file: resolve it from its
 * old place, map the target, and make it relative to the new place.
 */
function remapSymlink(oldPath: string, newPath: string, target: string): string {
  if (oldPath === newPath || target.startsWith('/')) return target;
  const absolute = path.normalize(path.join('/', path.dirname(oldPath), target)).slice(1);
  const mapped = mergedUsrPath(absolute);
  const rel = path.relative(path.dirname(newPath), mapped);
  return rel === '' ? '.' : rel;
}

/** A predicate that is true for paths the image leaves out; `!` patterns keep a path back in. */
export function excluder(patterns: readonly string[]): (p: string) => boolean {
  const positive = patterns.filter((p) => !p.startsWith('!'));
  const negative = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1));
  const drop = positive.length ? picomatch(positive, { dot: true }) : () => false;
  const keep = negative.length ? picomatch(negative, { dot: true }) : () => false;
  return (p) => {
    const abs = `/${p}`;
    return drop(abs) && !keep(abs);
  };
}

/**
 * Assembles packages into the entries of one layer: merged-/usr, exclusions applied, later
 * packages (in name order) winning a path conflict, plus `var/lib/dpkg/status` listing every
 * installed package (including `basePackages` installed by a base image), and the CA bundle when
 * certificates are present.
 */
export function assemblePackages(
  packages: readonly PackageContents[],
  options: { exclude: readonly string[]; arch: string; basePackages?: readonly PackageContents['control'][] },
): LayerEntry[] {
  const excluded = excluder(options.exclude);
  const byPath = new Map<string, LayerEntry>();
  const sorted = [...packages].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const pkg of sorted) {
    for (const entry of pkg.entries) {
      const mapped = mergedUsrPath(entry.path);
      if (excluded(mapped)) continue;
      let out: LayerEntry = mapped === entry.path ? entry : { ...entry, path: mapped };
      if (entry.type === 'symlink' && entry.linkname !== undefined) {
        out = { ...out, linkname: remapSymlink(entry.path, mapped, entry.linkname) };
      } else if (entry.type === 'link' && entry.linkname !== undefined) {
        out = { ...out, linkname: mergedUsrPath(entry.linkname) };
      }
      const existing = byPath.get(mapped);
      // A directory never replaces a file's entry, and two packages' directory entries merge.
      if (existing && out.type === 'directory') continue;
      byPath.set(mapped, out);
    }
  }
  if (packages.length > 0) {
    for (const dir of MERGED_USR_DIRS) {
      if (
        [...byPath.keys()].some((p) => p.startsWith(`usr/${dir}/`)) ||
        dir === 'bin' ||
        dir === 'sbin' ||
        dir === 'lib'
      ) {
        byPath.set(dir, { path: dir, type: 'symlink', mode: 0o777, uid: 0, gid: 0, linkname: `usr/${dir}` });
      }
    }
    for (const e of dpkgDatabase(packages, options.basePackages ?? [])) byPath.set(e.path, e);
    const bundle = caBundle(byPath);
    for (const e of bundle) byPath.set(e.path, e);
    for (const dir of ['tmp', 'var/tmp'])
      byPath.set(dir, { path: dir, type: 'directory', mode: 0o1777, uid: 0, gid: 0 });
    for (const dir of ['root', 'proc', 'sys', 'dev', 'run', 'etc']) {
      if (!byPath.has(dir))
        byPath.set(dir, {
          path: dir,
          type: 'directory',
          mode: dir === 'root' ? 0o700 : 0o755,
          uid: 0,
          gid: 0,
        });
    }
  }
  return [...byPath.values()];
}

const STATUS_FIELD_ORDER = [
  'Package',
  'Status',
  'Priority',
  'Section',
  'Installed-Size',
  'Maintainer',
  'Architecture',
  'Multi-Arch',
  'Source',
  'Version',
  'Replaces',
  'Provides',
  'Depends',
  'Pre-Depends',
  'Recommends',
  'Suggests',
  'Breaks',
  'Conflicts',
  'Description',
  'Homepage',
];

/** The dpkg status database, so scanners (and derived images) know what is installed. */
function dpkgDatabase(
  packages: readonly PackageContents[],
  base: readonly PackageContents['control'][],
): LayerEntry[] {
  const byName = new Map<string, Readonly<Record<string, string>>>();
  for (const control of base) if (control.Package) byName.set(control.Package, control);
  for (const p of packages) byName.set(p.name, p.control);
  const paragraphs = [...byName.keys()].sort().map((name) => {
    const control: Record<string, string> = { ...byName.get(name)!, Status: 'install ok installed' };
    const keys = [
      ...STATUS_FIELD_ORDER.filter((k) => control[k] !== undefined),
      ...Object.keys(control)
        .filter((k) => !STATUS_FIELD_ORDER.includes(k))
        .sort(),
    ];
    return keys.map((k) => `${k}: ${control[k]!}`).join('\n');
  });
  return [
    { path: 'var/lib/dpkg', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
    {
      path: 'var/lib/dpkg/status',
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      content: Buffer.from(paragraphs.join('\n\n') + (paragraphs.length ? '\n' : '')),
    },
  ];
}

/**
 * What update-ca-certificates produces: every certificate under usr/share/ca-certificates,
 * in sorted order, concatenated into etc/ssl/certs/ca-certificates.crt, and listed in
 * etc/ca-certificates.conf.
 */
function caBundle(byPath: ReadonlyMap<string, LayerEntry>): LayerEntry[] {
  const certs = [...byPath.values()]
    .filter(
      (e) => e.type === 'file' && e.path.startsWith('usr/share/ca-certificates/') && e.path.endsWith('.crt'),
    )
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  if (certs.length === 0) return [];
  const pem = certs.map((c) => {
    const text = c.content!.toString('utf8');
    return text.endsWith('\n') ? text : `${text}\n`;
  });
  const conf = certs.map((c) => c.path.slice('usr/share/ca-certificates/'.length)).join('\n') + '\n';
  return [
    { path: 'etc/ssl/certs', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
    { path: CA_BUNDLE_PATH, type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from(pem.join('')) },
    {
      path: 'etc/ca-certificates.conf',
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      content: Buffer.from(conf),
    },
  ];
}
