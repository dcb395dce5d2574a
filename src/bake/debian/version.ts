/**
 * Debian version comparison, exactly as dpkg does it (`lib/dpkg/version.c`): epoch, then upstream
 * version, then Debian revision, each compared by alternating non-digit and digit runs, where `~`
 * sorts before everything, even the end of the string.
 */
import type { RelationOp } from './control.js';

/** A version split into its three parts. */
export interface DebianVersion {
  readonly epoch: number;
  readonly upstream: string;
  /** The Debian revision, `''` for a native version. */
  readonly revision: string;
}

/**
 * Splits `[epoch:]upstream[-revision]`. The revision is after the last `-`, the epoch before the
 * first `:`; a missing epoch is 0.
 */
export function parseVersion(version: string): DebianVersion {
  const v = version.trim();
  const colon = v.indexOf(':');
  let epoch = 0;
  let rest = v;
  if (colon >= 0 && /^\d+$/.test(v.slice(0, colon))) {
    epoch = Number(v.slice(0, colon));
    rest = v.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  return dash >= 0
    ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) }
    : { epoch, upstream: rest, revision: '' };
}

/**
 * True when `version` is well formed by dpkg's rules: a numeric epoch if any, an upstream part
 * that starts with a digit and uses only `A-Za-z0-9.+~-:`, a non-empty revision after a last `-`
 * using only `A-Za-z0-9.+~`, and no whitespace.
 */
export function isValidVersion(version: string): boolean {
  if (version === '' || /\s/.test(version)) return false;
  const colon = version.indexOf(':');
  if (colon >= 0 && !/^\d+$/.test(version.slice(0, colon))) return false;
  const rest = colon >= 0 ? version.slice(colon + 1) : version;
  const dash = rest.lastIndexOf('-');
  const upstream = dash >= 0 ? rest.slice(0, dash) : rest;
  const revision = dash >= 0 ? rest.slice(dash + 1) : undefined;
  if (!/^\d[A-Za-z0-9.+~:-]*$/.test(upstream)) return false;
  return revision === undefined || /^[A-Za-z0-9.+~]+$/.test(revision);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

// dpkg's order(): digits and the end of the string weigh 0, letters their code, `~` -1, other
// characters their code plus 256 so they sort after letters.
function order(c: number): number {
  if (Number.isNaN(c) || isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 126) return -1;
  return c + 256;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = order(a.charCodeAt(i));
      const bc = order(b.charCodeAt(j));
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    while (isDigit(a.charCodeAt(i)) && isDigit(b.charCodeAt(j))) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a.charCodeAt(i))) return 1;
    if (isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

/**
 * Compares two Debian versions: negative when `a` is older, 0 when equal, positive when newer.
 *
 * @example
 * compareVersions('1.0~rc1-1', '1.0-1') < 0 // true: ~ sorts before the end of the string
 */
export function compareVersions(a: string, b: string): number {
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (va.epoch !== vb.epoch) return Math.sign(va.epoch - vb.epoch);
  return Math.sign(verrevcmp(va.upstream, vb.upstream) || verrevcmp(va.revision, vb.revision));
}

/**
 * True when `version` satisfies the relation `op ref`, as in `Depends: foo (op ref)`.
 *
 * @example
 * satisfies('2.36-9', '>=', '2.34') // true
 */
export function satisfies(version: string, op: RelationOp, ref: string): boolean {
  const c = compareVersions(version, ref);
  switch (op) {
    case '<<':
      return c < 0;
    case '<=':
      return c <= 0;
    case '=':
      return c === 0;
    case '>=':
      return c >= 0;
    case '>>':
      return c > 0;
  }
}
