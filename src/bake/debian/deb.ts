/**
 * Binary packages: fetching a .deb into the cache with its checksum verified every time it is
 * used, and reading one (the `ar` container, its control and data tarballs) into layer entries.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import { IntegrityError, UnavailableError } from '../../errors/index.js';
import type { LayerEntry } from '../../oci/index.js';
import { parseParagraphs } from './control.js';
import type { PackageRecord } from './package-index.js';
import { readTarMembers } from './tar-reader.js';
import { fetchBytes, sha256Hex, writeAtomic, type FetchLike } from './transport.js';

/** Options of {@link fetchDeb}. */
export interface FetchDebOptions {
  /** @default globalThis.fetch */
  readonly fetch?: FetchLike;
}

/** A .deb read into its control fields and the entries of its data tarball. */
export interface DebContents {
  /** The fields of `DEBIAN/control`. */
  readonly control: Record<string, string>;
  /** The data tarball's entries in archive order, paths root-relative (`usr/bin/hello`). */
  readonly entries: LayerEntry[];
}

/** The URL a record's .deb is fetched from. */
export function debUrl(record: Pick<PackageRecord, 'uri' | 'filename'>): string {
  return `${record.uri}/${record.filename}`;
}

/**
 * Returns a package's .deb, from `<cacheDir>/debs/<sha256>.deb` or downloaded there. The size and
 * SHA-256 are checked against the archive's signed index on download and on every cache read.
 *
 * @throws IntegrityError naming the package, URL, and expected and actual hashes on a mismatch; a
 *   cached file that fails the check is deleted, so the next call downloads it again.
 */
export async function fetchDeb(
  record: PackageRecord,
  cacheDir: string,
  options: FetchDebOptions = {},
): Promise<Buffer> {
  const file = join(cacheDir, 'debs', `${record.sha256}.deb`);
  const url = debUrl(record);
  const what = `${record.name} ${record.version}`;
  const cached = await readFile(file).catch(() => undefined);
  if (cached) {
    const problem = mismatch(cached, record);
    if (!problem) return cached;
    await rm(file, { force: true });
    throw new IntegrityError(
      `cached .deb of ${what} (${file}, from ${url}) is damaged: ${problem}; it has been deleted, so the next run downloads it again`,
    );
  }
  const data = await fetchBytes(url, options.fetch ?? fetch, {
    notFound: `the archive no longer serves ${what}: run \`kiln bake --update\``,
  });
  const problem = mismatch(data, record);
  if (problem) {
    throw new IntegrityError(
      `${what} from ${url} failed verification: ${problem}: the mirror is syncing (try again later) or serves tampered files`,
    );
  }
  await writeAtomic(file, data);
  return data;
}

function mismatch(data: Buffer, record: PackageRecord): string | undefined {
  const actual = sha256Hex(data);
  if (data.length === record.size && actual === record.sha256) return undefined;
  return `expected ${record.size} bytes with sha256 ${record.sha256}, got ${data.length} bytes with sha256 ${actual}`;
}

interface ArMember {
  readonly name: string;
  readonly data: Buffer;
}

/** Splits an `ar` archive (`!<arch>\n`, 60-byte headers, members padded to even offsets). */
function readAr(data: Buffer, what: string): ArMember[] {
  if (data.subarray(0, 8).toString('latin1') !== '!<arch>\n') {
    throw new IntegrityError(`${what}: not a .deb (no ar magic)`);
  }
  const members: ArMember[] = [];
  let offset = 8;
  while (offset < data.length) {
    if (offset + 60 > data.length) throw new IntegrityError(`${what}: truncated ar header at byte ${offset}`);
    const header = data.subarray(offset, offset + 60).toString('latin1');
    if (header.slice(58, 60) !== '`\n') throw new IntegrityError(`${what}: bad ar header at byte ${offset}`);
    const name = header.slice(0, 16).trim().replace(/\/$/, '');
    const sizeText = header.slice(48, 58).trim();
    // Decimal digits only: a negative size would step back to the same header forever.
    if (!/^[0-9]+$/.test(sizeText)) {
      throw new IntegrityError(`${what}: ar member ${name} has a bad size ${JSON.stringify(sizeText)}`);
    }
    const size = Number(sizeText);
    const start = offset + 60;
    if (start + size > data.length) {
      throw new IntegrityError(`${what}: ar member ${name} runs past the end of the file`);
    }
    members.push({ name, data: data.subarray(start, start + size) });
    offset = start + size + (size % 2);
  }
  return members;
}

function decompressMember(member: ArMember, what: string): Buffer {
  const ext = member.name.slice(member.name.lastIndexOf('.tar') + 4);
  if (ext === '.zst') {
    throw new UnavailableError(
      `${what}: ${member.name} is zstd-compressed; zstd .debs are not supported on Node 20 (Debian's archive uses xz)`,
    );
  }
  if (ext !== '' && ext !== '.gz' && ext !== '.xz')
    throw new IntegrityError(`${what}: unknown compression of ${member.name}`);
  try {
    if (ext === '.gz') return gunzipSync(member.data);
    if (ext === '.xz') return xz.decompressSync(member.data);
    return member.data;
  } catch (err) {
    throw new IntegrityError(`${what}: cannot decompress ${member.name}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Normalises a tar path to root-relative form: `./usr/bin/` → `usr/bin`, `.` and `./` → ``.
 * @throws IntegrityError for absolute paths, `..` components and NUL bytes.
 */
export function normaliseDebPath(path: string, what: string): string {
  if (path.includes('\0'))
    throw new IntegrityError(`${what}: path ${JSON.stringify(path)} contains a NUL byte`);
  if (path.startsWith('/'))
    throw new IntegrityError(`${what}: absolute path ${JSON.stringify(path)} in the data tarball`);
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw new IntegrityError(`${what}: path ${JSON.stringify(path)} escapes the root`);
  return parts.join('/');
}

const ENTRY_TYPES: Readonly<Record<string, LayerEntry['type']>> = {
  '0': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};

/**
 * Reads a .deb in memory: the `control` file of `control.tar.{gz,xz,}` and the entries of
 * `data.tar.{gz,xz,}`, with paths normalised (no `./`, no root entry) and hard links' targets
 * normalised the same way. Symlink targets are kept as written.
 *
 * @param name names the package in error messages.
 * @throws IntegrityError for a malformed container, a path escaping the root, or an unknown entry type.
 * @throws UnavailableError for zstd-compressed members.
 */
export function readDeb(data: Buffer, name = 'package'): DebContents {
  const members = readAr(data, name);
  if (members[0]?.name !== 'debian-binary' || !members[0].data.toString('latin1').startsWith('2.')) {
    throw new IntegrityError(`${name}: not a format 2.x .deb (no debian-binary member first)`);
  }
  const controlMember = members.find((m) => /^control\.tar(\.\w+)?$/.test(m.name));
  const dataMember = members.find((m) => /^data\.tar(\.\w+)?$/.test(m.name));
  if (!controlMember || !dataMember)
    throw new IntegrityError(`${name}: missing control.tar or data.tar member`);

  const controlEntries = readTarMembers(
    decompressMember(controlMember, name),
    `${name}: ${controlMember.name}`,
  );
  const controlFile = controlEntries.find((e) => normaliseDebPath(e.name, name) === 'control');
  if (!controlFile) throw new IntegrityError(`${name}: control.tar has no control file`);
  const [control = {}] = parseParagraphs(controlFile.content.toString('utf8'), `${name}: DEBIAN/control`);

  const entries: LayerEntry[] = [];
  for (const member of readTarMembers(decompressMember(dataMember, name), `${name}: ${dataMember.name}`)) {
    const path = normaliseDebPath(member.name, name);
    if (path === '') continue;
    const type = ENTRY_TYPES[member.typeflag];
    if (!type) throw new IntegrityError(`${name}: unsupported tar entry type ${member.typeflag} at ${path}`);
    const linkname =
      type === 'link'
        ? normaliseDebPath(member.linkname, name)
        : type === 'symlink'
          ? member.linkname
          : undefined;
    if ((type === 'link' || type === 'symlink') && !linkname) {
      throw new IntegrityError(`${name}: link ${path} has no target`);
    }
    entries.push({
      path,
      type,
      mode: member.mode & 0o7777,
      uid: member.uid,
      gid: member.gid,
      ...(type === 'file' ? { content: member.content } : {}),
      ...(linkname !== undefined ? { linkname } : {}),
      ...(type === 'character-device' || type === 'block-device'
        ? { devmajor: member.devmajor, devminor: member.devminor }
        : {}),
    });
  }
  return { control, entries };
}
