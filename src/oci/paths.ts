/**
 * Path rules shared by layer building, layer reading and unpacking: every entry path is relative to
 * the image root and may never climb out of it.
 */

/** The result of normalising an entry path: the clean path, or why it cannot be accepted. */
export type NormalisedPath =
  { readonly ok: true; readonly path: string } | { readonly ok: false; readonly problem: string };

/**
 * Normalises a tar-style entry path to kiln's form (`usr/bin/node`): strips leading `./`, trailing
 * `/`, empty and `.` segments. Refuses absolute paths, `..` segments and NUL bytes. The root itself
 * normalises to the empty string.
 */
export function normaliseEntryPath(raw: string): NormalisedPath {
  if (raw.includes('\0')) return { ok: false, problem: 'contains a NUL byte' };
  if (raw.startsWith('/')) return { ok: false, problem: 'is absolute (starts with "/")' };
  const segments = raw.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) return { ok: false, problem: 'contains a ".." segment' };
  return { ok: true, path: segments.join('/') };
}

/** The parent of a normalised path (`a/b/c` → `a/b`, `a` → ``). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i === -1 ? '' : path.slice(0, i);
}

/** The last segment of a normalised path (`a/b/c` → `c`). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Every proper ancestor of a normalised path, outermost first (`a/b/c` → `a`, `a/b`). */
export function ancestors(path: string): string[] {
  const out: string[] = [];
  let i = path.indexOf('/');
  while (i !== -1) {
    out.push(path.slice(0, i));
    i = path.indexOf('/', i + 1);
  }
  return out;
}

/** Byte-order comparison of two paths (UTF-8), the order layer entries are written in. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
