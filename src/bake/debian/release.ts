/**
 * A suite's signed `InRelease` file: its signature checked with `gpgv` as apt does, and its
 * `Release` fields (suite, expiry, index checksums) read from the verified text only.
 */
import { mkdtemp, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { IntegrityError, UnavailableError, ValidationError } from '../../errors/index.js';
import { parseParagraphs } from './control.js';

/** An index file listed in a Release's `SHA256:` field. */
export interface ReleaseFile {
  readonly sha256: string;
  readonly size: number;
}

/** The parts of a verified Release that kiln uses. */
export interface Release {
  readonly suite?: string;
  readonly codename?: string;
  readonly date?: Date;
  readonly validUntil?: Date;
  /** Index files by path below `dists/<suite>/` (`main/binary-amd64/Packages.xz`). */
  readonly files: ReadonlyMap<string, ReleaseFile>;
}

/** What {@link parseRelease} checks the Release against. */
export interface ReleaseCheck {
  /** The suite name asked for; the Release's `Suite` or `Codename` must match it. */
  readonly suite: string;
  /** URL of the InRelease, for messages. */
  readonly url: string;
  readonly now: Date;
  /** Accept a Release past its `Valid-Until` (snapshot archives). @default false */
  readonly allowExpired?: boolean;
}

// OpenPGP hash algorithm ids apt no longer trusts for archive signatures: MD5, SHA-1, RIPEMD-160.
const WEAK_HASHES = new Set(['1', '2', '3']);

/**
 * Verifies a clearsigned InRelease with `gpgv --keyring <keyring> --output -` and returns the
 * signed text (never the file as fetched, which may carry unsigned lines around the signature).
 * As apt does, the file is good when at least one signature is good and made with a strong hash,
 * and none is bad; signatures by keys missing from the keyring are ignored.
 *
 * @throws IntegrityError naming the URL and keyring when no good signature is found.
 * @throws UnavailableError when gpgv is not installed or the keyring file does not exist.
 */
export async function verifyInRelease(signed: Buffer, keyring: string, url: string): Promise<string> {
  const keyringFile = resolve(keyring);
  const fix = 'install debian-archive-keyring or set mirror.keyring';
  try {
    await access(keyringFile);
  } catch {
    throw new UnavailableError(`verifying ${url}: the keyring ${keyringFile} does not exist: ${fix}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'kiln-gpgv-'));
  try {
    const file = join(dir, 'InRelease');
    await writeFile(file, signed);
    const result = await execa(
      'gpgv',
      ['--homedir', dir, '--status-fd', '2', '--keyring', keyringFile, '--output', '-', file],
      { reject: false, stripFinalNewline: false, env: { LC_ALL: 'C' } },
    );
    if (result.failed && (result.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new UnavailableError(`verifying ${url}: gpgv is not installed: apt-get install gpgv`);
    }
    const { good, bad, messages } = readStatus(result.stderr);
    if (!good || bad || result.stdout === '') {
      const why = messages.length > 0 ? ` (gpgv: ${messages.join('; ')})` : '';
      throw new IntegrityError(
        `${url}: the archive's signature did not verify against ${keyringFile}${why}: ${fix}`,
      );
    }
    return result.stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function readStatus(stderr: string): { good: boolean; bad: boolean; messages: string[] } {
  let good = false;
  let bad = false;
  let goodSig = false;
  const messages: string[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('[GNUPG:] ')) {
      const msg = line.replace(/^gpgv:\s*/, '').trim();
      if (msg !== '' && !/^(Signature made|using )/.test(msg)) messages.push(msg);
      continue;
    }
    const [keyword, ...args] = line.slice('[GNUPG:] '.length).trim().split(/\s+/);
    if (keyword === 'NEWSIG') goodSig = false;
    else if (keyword === 'GOODSIG') goodSig = true;
    else if (keyword === 'BADSIG' || keyword === 'REVKEYSIG') bad = true;
    // VALIDSIG <fpr> <date> <ts> <expire> <version> <reserved> <pubkey-algo> <hash-algo> …
    else if (keyword === 'VALIDSIG' && goodSig && !WEAK_HASHES.has(args[7] ?? '')) good = true;
  }
  return { good, bad, messages: [...new Set(messages)] };
}

/**
 * Reads a verified Release text: its suite names, dates and the `SHA256:` list of index files.
 *
 * @throws IntegrityError when the Release is for another suite or past its `Valid-Until`.
 * @throws ValidationError when a date or checksum line is malformed.
 */
export function parseRelease(text: string, check: ReleaseCheck): Release {
  const [fields = {}] = parseParagraphs(text, check.url);
  const suite = fields['Suite'];
  const codename = fields['Codename'];
  if (suite !== check.suite && codename !== check.suite) {
    throw new IntegrityError(
      `${check.url}: the Release is for suite ${suite ?? '(none)'} (codename ${codename ?? '(none)'}), not ${check.suite}: ` +
        'the mirror serves the wrong suite at this path; check the mirror URL and suite name',
    );
  }
  const date = parseDate(fields['Date'], 'Date', check.url);
  const validUntil = parseDate(fields['Valid-Until'], 'Valid-Until', check.url);
  if (validUntil && validUntil.getTime() < check.now.getTime() && !check.allowExpired) {
    throw new IntegrityError(
      `${check.url}: the Release expired at ${validUntil.toISOString()} (Valid-Until), so it may hide newer ` +
        'security fixes: use an up-to-date mirror, or allow expired Releases for a snapshot archive',
    );
  }
  const files = new Map<string, ReleaseFile>();
  for (const line of (fields['SHA256'] ?? '').split('\n')) {
    if (line.trim() === '') continue;
    const m = /^\s*([0-9a-f]{64})\s+(\d+)\s+(\S+)\s*$/.exec(line);
    if (!m || !Number.isSafeInteger(Number(m[2]))) {
      throw new ValidationError(check.url, [
        { path: 'SHA256', message: `malformed line ${JSON.stringify(line)}`, fix: 'check the mirror' },
      ]);
    }
    files.set(m[3] as string, { sha256: m[1] as string, size: Number(m[2]) });
  }
  return {
    ...(suite ? { suite } : {}),
    ...(codename ? { codename } : {}),
    ...(date ? { date } : {}),
    ...(validUntil ? { validUntil } : {}),
    files,
  };
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const RFC2822 =
  /^(?:[A-Za-z]{3},\s+)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})\s+(UTC|GMT|Z|[+-]\d{4})$/;

// Release dates are RFC 2822 (`Sat, 11 Jul 2026 10:16:37 UTC`); Date.parse would guess at anything.
function parseDate(value: string | undefined, field: string, url: string): Date | undefined {
  if (value === undefined) return undefined;
  const m = RFC2822.exec(value.trim());
  const month = MONTHS.indexOf((m?.[2] ?? '').toLowerCase());
  if (!m || month < 0) {
    throw new ValidationError(url, [
      { path: field, message: `cannot read the date ${JSON.stringify(value)}`, fix: 'check the mirror' },
    ]);
  }
  const zone = m[7] ?? 'UTC';
  const offsetMinutes = /^[+-]/.test(zone)
    ? (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3)))
    : 0;
  const utc = Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  return new Date(utc - offsetMinutes * 60_000);
}
