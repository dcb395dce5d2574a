import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../errors/index.js';
import { canonicalJson, sha256Digest } from '../oci/index.js';

/** The lockfile's name, beside the config. */
export const LOCK_FILE_NAME = 'kiln.lock';
/** Bumped when the lock's shape changes; older locks are re-resolved. */
export const LOCK_VERSION = 1;

const lockedPackageSchema = z
  .object({
    name: z.string(),
    version: z.string(),
    arch: z.string(),
    suite: z.string(),
    filename: z.string(),
    size: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[a-f0-9]{64}$/),
  })
  .strict();

const lockedImageSchema = z
  .object({
    /** A digest over what decides the package set (from, packages, profile, suite, arch). */
    requests: z.string(),
    suite: z.string().optional(),
    arch: z.string(),
    packages: z.array(lockedPackageSchema),
  })
  .strict();

const lockSchema = z
  .object({
    lockVersion: z.literal(LOCK_VERSION),
    /** Seconds since the epoch used for every timestamp in the images, unless SOURCE_DATE_EPOCH is set. */
    sourceDateEpoch: z.number().int().nonnegative(),
    /** A digest over every other field: the inputs of the whole stack's package sets. */
    checksum: z.string(),
    images: z.record(z.string(), lockedImageSchema),
  })
  .strict();

export type LockedPackage = z.output<typeof lockedPackageSchema>;
export type LockedImage = z.output<typeof lockedImageSchema>;
export type Lock = z.output<typeof lockSchema>;

/** The checksum a lock must carry: a digest over its other fields, canonically serialised. */
export function lockChecksum(lock: Omit<Lock, 'checksum'>): string {
  const { lockVersion, sourceDateEpoch, images } = lock;
  return sha256Digest(canonicalJson({ lockVersion, sourceDateEpoch, images }));
}

/** Reads `kiln.lock` from `dir`; undefined when there is none. A damaged lock is a ValidationError with the fix. */
export async function readLock(dir: string): Promise<Lock | undefined> {
  const file = path.join(dir, LOCK_FILE_NAME);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(file, [
      {
        path: '',
        message: `is not JSON: ${(err as Error).message}`,
        fix: 'restore it from version control, or delete it and run `kiln bake --update`',
      },
    ]);
  }
  const parsed = lockSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ValidationError(
      file,
      parsed.error.issues.map((i) => ({
        path: i.path.join('.'),
        message: i.message,
        fix: 'restore it from version control, or delete it and run `kiln bake --update`',
      })),
    );
  }
  const expected = lockChecksum(parsed.data);
  if (parsed.data.checksum !== expected) {
    throw new ValidationError(file, [
      {
        path: 'checksum',
        message: `does not match the lock's contents (expected ${expected}): the lock was edited by hand or damaged`,
        fix: 'restore it from version control, or run `kiln bake --update` to resolve again',
      },
    ]);
  }
  return parsed.data;
}

/** Writes the lock atomically (temp file, then rename), keys sorted, checksum filled in. */
export async function writeLock(dir: string, lock: Omit<Lock, 'checksum'>): Promise<Lock> {
  const images: Record<string, LockedImage> = {};
  for (const name of Object.keys(lock.images).sort()) {
    const img = lock.images[name]!;
    images[name] = { ...img, packages: [...img.packages].sort((a, b) => (a.name < b.name ? -1 : 1)) };
  }
  const full: Lock = {
    lockVersion: lock.lockVersion,
    sourceDateEpoch: lock.sourceDateEpoch,
    checksum: '',
    images,
  };
  full.checksum = lockChecksum(full);
  const file = path.join(dir, LOCK_FILE_NAME);
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(full, null, 2) + '\n');
  await rename(tmp, file);
  return full;
}
