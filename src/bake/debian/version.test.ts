import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareVersions, isValidVersion, parseVersion, satisfies } from './version.js';

// Pairs from dpkg's and apt's own version tests (lib/dpkg/t/t-version.c, test/libapt/compareversion_test.cc),
// plus Debian security-update shapes; each was checked with `dpkg --compare-versions`.
const PAIRS: [string, string, -1 | 0 | 1][] = [
  ['7.6p2-4', '7.6-0', 1],
  ['1.0.3-3', '1.0-1', 1],
  ['1.3', '1.2.2-2', 1],
  ['1.3', '1.2.2', 1],
  ['0-pre', '0-pre', 0],
  ['0-pre', '0-pree', -1],
  ['1.1.6r2-2', '1.1.6r-1', 1],
  ['2.6b2-1', '2.6b-2', 1],
  ['98.1p5-1', '98.1-pre2-b6-2', -1],
  ['0.4a6-2', '0.4-1', 1],
  ['1:3.0.5-2', '1:3.0.5.1', -1],
  ['3.0~rc1-1', '3.0-1', -1],
  ['1.0', '1.0-0', 0],
  ['0.2', '1.0-0', -1],
  ['1.0', '1.0-0+b1', -1],
  ['1.0', '1.0-0~', 1],
  ['1.2.3', '1.2.3', 0],
  ['4.4.3-2', '4.4.3-2', 0],
  ['1:2ab:5', '1:2ab:5', 0],
  ['7:1-a:b-5', '7:1-a:b-5', 0],
  ['57:1.2.3abYZ+~-4-5', '57:1.2.3abYZ+~-4-5', 0],
  ['1.2.3', '0:1.2.3', 0],
  ['1.2.3', '1.2.3-0', 0],
  ['009', '9', 0],
  ['009ab5', '9ab5', 0],
  ['1.2.3', '1.2.3-1', -1],
  ['1.2.3', '1.2.4', -1],
  ['1.2.4', '1.2.3', 1],
  ['1.2.24', '1.2.3', 1],
  ['0.10.0', '0.8.7', 1],
  ['3.2', '2.3', 1],
  ['1.3.2a', '1.3.2', 1],
  ['0.5.0~git', '0.5.0~git2', -1],
  ['2a', '21', -1],
  ['1.3.2a', '1.3.2b', -1],
  ['1:1.2.3', '1.2.4', 1],
  ['1:1.2.3', '1:1.2.4', -1],
  ['1.2a+~bCd3', '1.2a++', -1],
  ['1.2a+~bCd3', '1.2a+~', 1],
  ['1:2.3', '0:2.3', 1],
  ['5:2', '304-2', 1],
  ['5:2', '304:2', -1],
  ['25:2', '3:2', 1],
  ['1:2:123', '1:12:3', -1],
  ['5.10.0', '5.005', 1],
  ['3a9.8', '3.10.2', -1],
  ['3a9.8', '3~10', 1],
  ['1.4+OOo3.0.0~', '1.4+OOo3.0.0-4', -1],
  ['2.4.7-1', '2.4.7-z', -1],
  ['1.002-1+b2', '1.00', 1],
  ['1.0~', '1.0', -1],
  ['1.0~~', '1.0~', -1],
  ['1.0~~a', '1.0~~', 1],
  ['1.0~', '1.0~a', -1],
  ['1.0a', '1.0', 1],
  ['1.0+', '1.0a', 1],
  ['1.0.', '1.0+', 1],
  ['1.0-1', '1.0-1~', 1],
  ['2.36-9+deb12u10', '2.36-9+deb12u4', 1],
  ['2.36-9+deb12u4', '2.36-9', 1],
  ['18.20.4+dfsg-1~deb12u1', '18.20.4+dfsg-1', -1],
  ['1:9.18.28-1~deb12u2', '1:9.18.24-1', 1],
  ['0', '0.0', -1],
  ['0:0', '0', 0],
  ['1.0-a', '1.0-1', 1],
  ['10', '9', 1],
  ['1.01', '1.1', 0],
];

describe('compareVersions', () => {
  it.each(PAIRS)('%s vs %s → %i', (a, b, expected) => {
    expect(compareVersions(a, b)).toBe(expected);
    expect(compareVersions(b, a)).toBe(-expected || 0);
  });

  it('agrees with dpkg --compare-versions on generated near-equal versions', () => {
    const chars = fc.constantFrom(...'0123456789ab.+~');
    const tail = fc.array(chars, { maxLength: 4 }).map((t) => t.join(''));
    const epoch = fc.constantFrom('', '', '', '0:', '1:');
    const revision = fc.constantFrom('', '-0', '-1', '-1~', '-1+b1', '-2', '-1~deb12u1', '-01');
    const pair = fc
      .tuple(fc.integer({ min: 0, max: 20 }), tail, epoch, tail, revision, epoch, tail, revision)
      .map(([n, shared, ea, ta, ra, eb, tb, rb]) => {
        const base = `${n}${shared}`;
        return [`${ea}${base}${ta}${ra}`, `${eb}${base}${tb}${rb}`] as const;
      });
    const pairs = fc.sample(pair, { numRuns: 400, seed: 42 });
    const script = pairs
      .map(
        ([a, b]) =>
          `if dpkg --compare-versions '${a}' lt '${b}'; then echo -1; elif dpkg --compare-versions '${a}' eq '${b}'; then echo 0; else echo 1; fi`,
      )
      .join('\n');
    const dpkg = execFileSync('bash', ['-c', script], { encoding: 'utf8' }).trim().split('\n').map(Number);
    expect(new Set(dpkg)).toEqual(new Set([-1, 0, 1]));
    expect(pairs.map(([a, b]) => compareVersions(a, b))).toEqual(dpkg);
  });
});

describe('parseVersion', () => {
  it.each([
    ['1:2.36-9+deb12u4', { epoch: 1, upstream: '2.36', revision: '9+deb12u4' }],
    ['2.36', { epoch: 0, upstream: '2.36', revision: '' }],
    ['1.2-3-4', { epoch: 0, upstream: '1.2-3', revision: '4' }],
    ['7:1-a:b-5', { epoch: 7, upstream: '1-a:b', revision: '5' }],
  ])('%s', (v, parts) => {
    expect(parseVersion(v)).toEqual(parts);
  });
});

describe('isValidVersion', () => {
  it.each([
    ['1.0', true],
    ['1:2.36-9+deb12u4', true],
    ['18.20.4+dfsg-1~deb12u1', true],
    ['', false],
    ['a1.0', false],
    ['1.0 beta', false],
    ['x:1.0', false],
    ['1.0-', false],
    ['1.0-a_b', false],
  ])('%s → %s', (v, ok) => {
    expect(isValidVersion(v)).toBe(ok);
  });
});

describe('satisfies', () => {
  it.each([
    ['2.36-9', '>=', '2.34', true],
    ['2.34', '>=', '2.34', true],
    ['2.33', '>=', '2.34', false],
    ['2.33', '<<', '2.34', true],
    ['2.34', '<<', '2.34', false],
    ['2.34', '<=', '2.34', true],
    ['2.35', '<=', '2.34', false],
    ['1.0', '=', '1.0-0', true],
    ['1.0', '=', '1.0-1', false],
    ['2.35', '>>', '2.34', true],
    ['2.34', '>>', '2.34', false],
    ['1.0~rc1', '>=', '1.0', false],
  ] as const)('%s %s %s → %s', (v, op, ref, ok) => {
    expect(satisfies(v, op, ref)).toBe(ok);
  });
});
