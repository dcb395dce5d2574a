/**
 * A synchronous reader for the tar formats .debs use (GNU tar as dpkg-deb writes it, ustar, and
 * pax extended headers), so a .deb already in memory is read without streams.
 */
import { IntegrityError } from '../../errors/index.js';

/** One member of a tarball, with extended headers already applied. */
export interface TarMember {
  readonly name: string;
  /** The ustar type flag: `0` file, `1` hard link, `2` symlink, `3`/`4` devices, `5` directory, `6` fifo. */
  readonly typeflag: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly linkname: string;
  readonly devmajor: number;
  readonly devminor: number;
  readonly content: Buffer;
}

const BLOCK = 512;
/** Largest uid or gid a member may carry. */
const MAX_ID = 0xfffffffe;

/**
 * Reads every member of an uncompressed tarball.
 *
 * @param what names the tarball in errors.
 * @throws IntegrityError for a bad checksum, a truncated member, an unknown header type, or a
 *   numeric field (size, mode, owner, device) that is not a number in range.
 */
export function readTarMembers(data: Buffer, what: string): TarMember[] {
  const out: TarMember[] = [];
  let globalPax: Record<string, string> = {};
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  let offset = 0;
  while (offset + BLOCK <= data.length) {
    const at = offset;
    const header = data.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break;
    checkChecksum(header, what, offset);
    const typeflag = String.fromCharCode(header[156] ?? 0).replace('\0', '0');
    const extension = 'LKxg'.includes(typeflag);
    // A pax `size` (files over 8 GiB) wins over the header's, as in GNU tar and dpkg.
    const paxSize = extension ? undefined : (pax['size'] ?? globalPax['size']);
    const size = paxSize !== undefined ? decimal(paxSize, 'size', what, at) : numeric(header, 124, 12);
    if (!Number.isSafeInteger(size) || size < 0)
      throw new IntegrityError(`${what}: tar member at byte ${at} has a bad size field`);
    const start = offset + BLOCK;
    if (start + size > data.length)
      throw new IntegrityError(`${what}: tar member at byte ${offset} is truncated`);
    const content = data.subarray(start, start + size);
    offset = start + Math.ceil(size / BLOCK) * BLOCK;
    switch (typeflag) {
      case 'L':
        longName = cString(content, 0, content.length);
        continue;
      case 'K':
        longLink = cString(content, 0, content.length);
        continue;
      case 'x':
        pax = parsePax(content, what);
        continue;
      case 'g':
        globalPax = { ...globalPax, ...parsePax(content, what) };
        continue;
    }
    if (!'0123456'.includes(typeflag) && typeflag !== '7') {
      throw new IntegrityError(
        `${what}: unsupported tar header type ${JSON.stringify(typeflag)} at byte ${at}`,
      );
    }
    const ext = { ...globalPax, ...pax };
    const ustar = header.subarray(257, 263).toString('latin1') === 'ustar\0';
    const prefix = ustar ? cString(header, 345, 155) : '';
    const shortName = cString(header, 0, 100);
    const field = (name: string, value: number, max = Number.MAX_SAFE_INTEGER): number => {
      if (!Number.isSafeInteger(value) || value < 0 || value > max) {
        throw new IntegrityError(`${what}: tar member at byte ${at} has a bad ${name} field`);
      }
      return value;
    };
    out.push({
      name: ext['path'] ?? longName ?? (prefix ? `${prefix}/${shortName}` : shortName),
      typeflag: typeflag === '7' ? '0' : typeflag,
      mode: field('mode', numeric(header, 100, 8)),
      uid: field(
        'uid',
        ext['uid'] !== undefined ? decimal(ext['uid'], 'uid', what, at) : numeric(header, 108, 8),
        MAX_ID,
      ),
      gid: field(
        'gid',
        ext['gid'] !== undefined ? decimal(ext['gid'], 'gid', what, at) : numeric(header, 116, 8),
        MAX_ID,
      ),
      linkname: ext['linkpath'] ?? longLink ?? cString(header, 157, 100),
      devmajor: field('devmajor', numeric(header, 329, 8)),
      devminor: field('devminor', numeric(header, 337, 8)),
      content: typeflag === '0' || typeflag === '7' ? Buffer.from(content) : Buffer.alloc(0),
    });
    pax = {};
    longName = undefined;
    longLink = undefined;
  }
  return out;
}

function cString(buf: Buffer, start: number, length: number): string {
  const slice = buf.subarray(start, start + length);
  const end = slice.indexOf(0);
  return slice.subarray(0, end === -1 ? slice.length : end).toString('utf8');
}

// Octal ASCII, or GNU base-256 when the first byte's high bit is set; NaN when it is neither.
function numeric(buf: Buffer, start: number, length: number): number {
  const first = buf[start] ?? 0;
  if (first & 0x80) {
    let value = first & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + (buf[start + i] ?? 0);
    return value;
  }
  const text = cString(buf, start, length).trim();
  if (text === '') return 0;
  return /^[0-7]+$/.test(text) ? parseInt(text, 8) : NaN;
}

// A pax record's number: decimal digits only.
function decimal(text: string, name: string, what: string, offset: number): number {
  if (!/^[0-9]{1,16}$/.test(text))
    throw new IntegrityError(
      `${what}: tar member at byte ${offset} has a bad pax ${name} ${JSON.stringify(text)}`,
    );
  return Number(text);
}

function checkChecksum(header: Buffer, what: string, offset: number): void {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (header[i] ?? 0);
  if (sum !== numeric(header, 148, 8))
    throw new IntegrityError(`${what}: tar header checksum mismatch at byte ${offset}`);
}

function parsePax(content: Buffer, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < content.length) {
    const space = content.indexOf(0x20, pos);
    const length = Number(content.subarray(pos, space).toString('latin1'));
    if (space < 0 || !Number.isSafeInteger(length) || length <= 0 || pos + length > content.length) {
      throw new IntegrityError(`${what}: malformed pax header`);
    }
    const record = content.subarray(space + 1, pos + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += length;
  }
  return out;
}
