/**
 * A corpus of malicious layers, built by the tests instead of checked in: every way a tar has been
 * used to write outside an extraction directory, or to exhaust the machine doing it. Each case is
 * aimed at a real sentinel directory beside the unpack area, so a regression shows up as a changed
 * sentinel rather than as damage to the host. `rawTar` writes headers byte by byte, so it can say
 * what tar-stream (and any careful writer) never would.
 */
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import type { ReadLayerLimits } from '../../src/oci/index.js';

const BLOCK = 512;
const MiB = 1024 ** 2;

/** One entry as {@link rawTar} writes it: a typeflag and fields as given, unchecked. */
export interface RawEntry {
  readonly name: string;
  /** The ustar typeflag: `0` file, `1` hard link, `2` symlink, `3`/`4` devices, `5` dir, `6` fifo… @default '0' */
  readonly type?: string;
  readonly linkname?: string;
  readonly body?: Buffer | string;
  /** The size written in the header, when it should differ from the body's. */
  readonly size?: number;
  /** @default 0o644 (0o755 for directories) */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly devmajor?: number;
  readonly devminor?: number;
  /** pax records written in an `x` header before this entry (`path`, `linkpath`…). */
  readonly pax?: Readonly<Record<string, string>>;
}

/**
 * A tar of `entries`, each header written as given (long names belong in `pax`). `end: false`
 * leaves out the two zero blocks that end an archive.
 */
export function rawTar(entries: readonly RawEntry[], options: { readonly end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.pax !== undefined) {
      const records = Buffer.from(
        Object.entries(e.pax)
          .map(([k, v]) => paxRecord(k, v))
          .join(''),
      );
      parts.push(header({ name: 'PaxHeader', type: 'x', size: records.length }), pad(records));
    }
    const body = typeof e.body === 'string' ? Buffer.from(e.body) : (e.body ?? Buffer.alloc(0));
    parts.push(header({ ...e, size: e.size ?? body.length }), pad(body));
  }
  if (options.end !== false) parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(rest) + 1;
  while (String(length).length + Buffer.byteLength(rest) !== length) length++;
  return `${length}${rest}`;
}

function pad(data: Buffer): Buffer {
  const rem = data.length % BLOCK;
  return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rem)]);
}

function header(e: RawEntry & { readonly size: number }): Buffer {
  const h = Buffer.alloc(BLOCK);
  const type = e.type ?? '0';
  h.write(e.name, 0, 100, 'utf8');
  octal(h, 100, 8, e.mode ?? (type === '5' ? 0o755 : 0o644));
  octal(h, 108, 8, e.uid ?? 0);
  octal(h, 116, 8, e.gid ?? 0);
  octal(h, 124, 12, e.size);
  octal(h, 136, 12, 1_600_000_000);
  h.write(type, 156, 1, 'latin1');
  h.write(e.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  octal(h, 329, 8, e.devmajor ?? 0);
  octal(h, 337, 8, e.devminor ?? 0);
  h.write('        ', 148, 'latin1');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

// Octal when it fits the field, else GNU base-256 (high bit set), as tar does for huge sizes.
function octal(h: Buffer, at: number, length: number, value: number): void {
  const text = value.toString(8);
  if (value >= 0 && text.length < length) {
    h.write(`${text.padStart(length - 1, '0')}\0`, at, 'latin1');
    return;
  }
  let v = BigInt(value);
  for (let i = length - 1; i > 0; i--) {
    h[at + i] = Number(BigInt.asUintN(8, v));
    v >>= 8n;
  }
  h[at] = value < 0 ? 0xff : 0x80;
}

const fuzzedText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('.', '..', '/', './', '../x', '/etc/passwd', 'a/../../b', 'a\0b', 'x'.repeat(300)),
);
const fuzzedNumber = fc.oneof(
  fc.nat({ max: 4096 }),
  fc.constantFrom(-1, -2, 2 ** 32, 2 ** 40, 2 ** 53, 0o7777777, 1024 ** 3),
);

/**
 * A tar entry with every field chosen by the fuzzer (type, sizes that lie, owners out of range,
 * pax records), for {@link rawTar}, which still writes a valid checksum, so readers must look at
 * the fields themselves.
 */
export const fuzzedRawEntry: fc.Arbitrary<RawEntry> = fc.record(
  {
    name: fuzzedText,
    type: fc.oneof(
      fc.constantFrom('0', '1', '2', '3', '4', '5', '6', '7'),
      fc.string({ minLength: 1, maxLength: 1 }),
    ),
    linkname: fuzzedText,
    body: fc.oneof(fc.constant(''), fc.string({ maxLength: 600 })),
    size: fuzzedNumber,
    mode: fuzzedNumber,
    uid: fuzzedNumber,
    gid: fuzzedNumber,
    pax: fc.dictionary(
      fc.constantFrom('path', 'linkpath', 'size', 'uid', 'gid', 'mtime', 'mode', 'x'),
      fc.oneof(fuzzedText, fuzzedNumber.map(String)),
      { maxKeys: 3 },
    ),
  },
  { requiredKeys: ['name'] },
);

/**
 * `totalMiB` MiB of zeros behind one file header declaring that size, as a stream of concatenated
 * gzip members (about 1 KiB of input per MiB of output): a gzip bomb that stays under the per-file
 * and total limits, so only the expansion limit can stop it.
 */
export function gzipBomb(totalMiB: number): Buffer {
  const zeros = gzipSync(Buffer.alloc(MiB));
  const head = gzipSync(rawTar([{ name: 'bomb', size: totalMiB * MiB }], { end: false }));
  return Buffer.concat([head, ...Array.from({ length: totalMiB }, () => zeros)]);
}

/** One malicious case: layers applied in order (a harmless base first), the error expected. */
export interface MaliciousCase {
  readonly name: string;
  readonly layers: readonly Buffer[];
  readonly error: RegExp;
  readonly limits?: ReadLayerLimits;
}

/**
 * The corpus, aimed at `outside` (a sentinel directory holding `victim` and `dir/`), for an unpack
 * into `dest`. `up` is the `../` chain from inside the image root to `outside`.
 *
 * @example
 * for (const c of maliciousCorpus(join(base, 'outside'), '../../outside')) await unpackLayers(c.layers, dest);
 */
export function maliciousCorpus(outside: string, up: string): MaliciousCase[] {
  const base = gzipSync(
    rawTar([
      { name: 'etc/', type: '5' },
      { name: 'etc/motd', body: 'base\n' },
    ]),
  );
  const cases: [string, Buffer | Buffer[], RegExp, ReadLayerLimits?][] = [
    ['../ traversal', rawTar([{ name: `${up}/victim`, body: 'pwned' }]), /path contains a "\.\." segment/],
    ['.. inside a path', rawTar([{ name: `etc/../${up}/victim`, body: 'x' }]), /"\.\." segment/],
    ['absolute path', rawTar([{ name: `${outside}/victim`, body: 'pwned' }]), /path is absolute/],
    [
      'absolute path in a pax header',
      rawTar([{ name: 'innocent', body: 'x', pax: { path: `${outside}/victim` } }]),
      /path is absolute/,
    ],
    [
      'symlink out, then a file through it',
      rawTar([
        { name: 'out', type: '2', linkname: `${up}` },
        { name: 'out/victim', body: 'pwned' },
      ]),
      /symlink "out" -> "[^"]+" climbs above the image root/,
    ],
    [
      'symlink out in one layer, a file through it in the next',
      [
        rawTar([{ name: 'out', type: '2', linkname: `etc/${up}/..` }]),
        rawTar([{ name: 'out/new', body: 'x' }]),
      ],
      /climbs above the image root/,
    ],
    [
      'symlink to the host directory by absolute path, then a file through it',
      rawTar([
        { name: 'host', type: '2', linkname: outside },
        { name: 'host/victim', body: 'pwned' },
      ]),
      /symlink "host" -> "[^"]+" on the path points at nothing/,
    ],
    [
      'symlink to /, then a file through it',
      rawTar([
        { name: 'root', type: '2', linkname: '/' },
        { name: `root${outside}/victim`, body: 'pwned' },
      ]),
      /points at the image root/,
    ],
    [
      'symlink loop',
      rawTar([
        { name: 'a', type: '2', linkname: 'b' },
        { name: 'b', type: '2', linkname: 'a' },
        { name: 'a/x', body: 'x' },
      ]),
      /more than 40 symlinks/,
    ],
    [
      'directory created through an escaping symlink',
      rawTar([
        { name: 'out', type: '2', linkname: up },
        { name: 'out/dir/sub/', type: '5' },
      ]),
      /climbs above the image root/,
    ],
    ['hard link out by ../', rawTar([{ name: 'h', type: '1', linkname: `${up}/victim` }]), /"\.\." segment/],
    [
      'hard link to an absolute path',
      rawTar([{ name: 'h', type: '1', linkname: `${outside}/victim` }]),
      /absolute/,
    ],
    [
      'hard link through a symlink',
      rawTar([
        { name: 'host', type: '2', linkname: up },
        { name: 'h', type: '1', linkname: 'host/victim' },
      ]),
      /passes through symlink "host"/,
    ],
    [
      'hard link to a later entry',
      rawTar([
        { name: 'h', type: '1', linkname: 'later' },
        { name: 'later', body: 'x' },
      ]),
      /hard link target "later" does not exist/,
    ],
    ['hard link to a directory', rawTar([{ name: 'h', type: '1', linkname: 'etc' }]), /is a directory/],
    [
      'character device',
      rawTar([{ name: 'dev/mem', type: '3', devmajor: 1, devminor: 1 }]),
      /character-device refused/,
    ],
    [
      'block device',
      rawTar([{ name: 'dev/sda', type: '4', devmajor: 8, devminor: 0 }]),
      /block-device refused/,
    ],
    [
      'fifo through an escaping symlink',
      rawTar([
        { name: 'out', type: '2', linkname: up },
        { name: 'out/fifo', type: '6' },
      ]),
      /climbs above the image root/,
    ],
    [
      'directory claiming a size (once hung the reader)',
      rawTar([{ name: 'd/', type: '5', body: 'hidden' }]),
      /a directory with a size of 6 bytes/,
    ],
    ['GNU sparse file', rawTar([{ name: 'sparse', type: 'S', body: 'x' }]), /unsupported entry type/],
    ['unknown entry type', rawTar([{ name: 'weird', type: 'V' }]), /unsupported entry type/],
    ['a file replacing the root', rawTar([{ name: '.', body: 'x' }]), /cannot replace the image root/],
    [
      'declared size beyond the data',
      rawTar([{ name: 'big', body: 'short', size: 100 * MiB }], { end: false }),
      /not a readable tar archive/,
    ],
    [
      'declared size of a terabyte',
      rawTar([{ name: 'huge', size: 1024 ** 4 }], { end: false }),
      /size 1099511627776 bytes exceeds the per-file limit/,
    ],
    [
      'more than the total limit',
      rawTar([
        { name: 'a', body: Buffer.alloc(600_000) },
        { name: 'b', body: Buffer.alloc(600_000) },
      ]),
      /contents total more than the limit of 1000000 bytes/,
      { maxTotalBytes: 1_000_000 },
    ],
    [
      'too many entries',
      rawTar(Array.from({ length: 20 }, (_, i) => ({ name: `f${i}` }))),
      /more than 10 entries/,
      { maxEntries: 10 },
    ],
    ['gzip bomb under the size limits', gzipBomb(900), /possible gzip bomb/],
    [
      'path longer than PATH_MAX',
      rawTar([{ name: 'x', body: 'x', pax: { path: 'a/'.repeat(2100) + 'x' } }]),
      /longer than 4095 bytes/,
    ],
    [
      'name longer than NAME_MAX',
      rawTar([{ name: 'x', body: 'x', pax: { path: 'n'.repeat(300) } }]),
      /longer than 255 bytes/,
    ],
    [
      'symlink target longer than PATH_MAX',
      rawTar([{ name: 's', type: '2', pax: { linkpath: 't/'.repeat(2100) } }]),
      /target is longer than 4095 bytes/,
    ],
    ['NUL in a symlink target', rawTar([{ name: 's', type: '2', pax: { linkpath: 'a\0b' } }]), /NUL/],
    [
      'uid beyond 32 bits',
      rawTar([{ name: 'f', body: 'x', uid: 2 ** 40 }]),
      /uid 1099511627776 is out of range/,
    ],
    ['negative gid', rawTar([{ name: 'f', body: 'x', gid: -2 }]), /gid -\d+ is out of range/],
    [
      'the same file twice',
      rawTar([
        { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n' },
        { name: 'etc/passwd', body: 'root::0:0::/root:/bin/sh\n' },
      ]),
      /"etc\/passwd" appears more than once in the layer/,
    ],
    [
      'a directory, then a symlink of the same name',
      rawTar([
        { name: 'lib/', type: '5' },
        { name: 'lib', type: '2', linkname: up },
      ]),
      /"lib" appears more than once in the layer/,
    ],
    ['zstd compression', Buffer.from('28b52ffd0058610000', 'hex'), /zstd-compressed/],
    ['xz compression', Buffer.from('fd377a585a000004e6d6b446', 'hex'), /xz-compressed/],
    ['bzip2 compression', Buffer.from('425a683931415926535900', 'hex'), /bzip2-compressed/],
    ['an empty blob', Buffer.alloc(0), /layer is empty/],
    ['a 3-byte blob', Buffer.from([1, 2, 3]), /not a readable tar archive/],
    [
      'truncated gzip',
      gzipSync(rawTar([{ name: 'f', body: 'x'.repeat(5000) }])).subarray(0, 40),
      /not a readable tar archive/,
    ],
    [
      'truncated mid-entry',
      rawTar([{ name: 'f', body: 'x'.repeat(5000) }]).subarray(0, 2048),
      /not a readable tar archive/,
    ],
    [
      'corrupt header checksum',
      corruptChecksum(rawTar([{ name: 'f', body: 'x' }])),
      /not a readable tar archive/,
    ],
    [
      'whiteout through an escaping symlink',
      rawTar([{ name: 'out', type: '2', linkname: up }, { name: 'out/.wh.victim' }]),
      /climbs above the image root/,
    ],
    [
      'opaque whiteout through an escaping symlink',
      [rawTar([{ name: 'out', type: '2', linkname: up }]), rawTar([{ name: 'out/.wh..wh..opq' }])],
      /climbs above the image root/,
    ],
    ['whiteout of ..', rawTar([{ name: 'etc/.wh...' }]), /unsupported whiteout/],
    ['whiteout by ../ path', rawTar([{ name: `${up}/.wh.victim` }]), /"\.\." segment/],
  ];
  return cases.map(([name, layers, error, limits]) => ({
    name,
    layers: [base, ...(Array.isArray(layers) ? layers : [layers])],
    error,
    ...(limits !== undefined ? { limits } : {}),
  }));
}

function corruptChecksum(tar: Buffer): Buffer {
  const out = Buffer.from(tar);
  out[0] = (out[0]! + 1) % 256;
  return out;
}
