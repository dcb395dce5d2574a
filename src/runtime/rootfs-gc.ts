/**
 * Garbage collection of unpacked roots. Every release of an app leaves a root (`<hex>/`, with
 * `<hex>.files.json`), every new base a root of its lower layers, and drift and crashes leave roots
 * set aside (`.tainted-`, `.unverified-`, `.staging-`); nothing else removes them, so without this
 * the disk fills one release at a time.
 *
 * What stays: every root an instance runs from now (whatever its name: a drifted root set aside
 * under `alert` is still mounted), the roots of the images the caller keeps (the releases a
 * rollback may return to), and the roots of lower layers those are built on (the next release of
 * the same base starts from them). A set-aside root nobody runs from goes once it is older than
 * `setAsideTtlMs` (kept for a look at what drifted). Unpacks in this process wait while a
 * collection runs, and a collection waits for the unpacks in flight, so a root is never removed
 * from under an unpack that chose it as its base.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { digestHex, type Digest } from '../oci/index.js';

/** How long a root set aside (drifted, unverified, a dead unpack's staging) is kept: 1 day. */
export const DEFAULT_SET_ASIDE_TTL_MS = 24 * 60 * 60 * 1000;

/** An unkept root younger than this stays: 1 hour. */
export const DEFAULT_MIN_AGE_MS = 60 * 60 * 1000;

/** Options of {@link collectRootfs}. */
export interface RootfsGcOptions {
  /** Images whose roots stay, with the lower-layer roots they are built on. */
  readonly keepImages: ReadonlySet<Digest>;
  /** Root paths instances run from now: never removed, whatever their name. */
  readonly inUse: ReadonlySet<string>;
  /** @default DEFAULT_SET_ASIDE_TTL_MS */
  readonly setAsideTtlMs?: number;
  /**
   * A root unpacked this recently stays even when nothing keeps it (a one-shot `kiln run`, or a
   * deploy not yet recorded, may be about to use it). @default DEFAULT_MIN_AGE_MS
   */
  readonly minAgeMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
  /** Say what would go, remove nothing. @default false */
  readonly dryRun?: boolean;
}

/** What {@link collectRootfs} removed (or, dry, would remove), by name under the rootfs folder. */
export interface RootfsGcResult {
  readonly removed: readonly string[];
  readonly kept: readonly string[];
}

const ROOT = /^[0-9a-f]{64}$/;
const SET_ASIDE = /^[0-9a-f]{64}\.(tainted|unverified|staging|gc)-[0-9a-z]+$/;

/** Collections and unpacks in this process exclude each other ({@link withUnpack}). */
let collecting: Promise<unknown> = Promise.resolve();
let unpacks = 0;
let unpacksDone: (() => void) | undefined;

/** Runs an unpack, after any collection in progress, and counted so a collection waits for it. */
export async function withUnpack<T>(work: () => Promise<T>): Promise<T> {
  await collecting;
  unpacks++;
  try {
    return await work();
  } finally {
    unpacks--;
    if (unpacks === 0) unpacksDone?.();
  }
}

/** Removes the roots under `rootfsDir` that no instance runs from and nothing keeps. */
export function collectRootfs(rootfsDir: string, options: RootfsGcOptions): Promise<RootfsGcResult> {
  const run = collecting.then(async () => {
    if (unpacks > 0) await new Promise<void>((resolve) => (unpacksDone = resolve));
    unpacksDone = undefined;
    return collect(rootfsDir, options);
  });
  collecting = run.catch(() => {});
  return run;
}

interface RootRecord {
  readonly digest?: string;
  readonly layers?: readonly Digest[];
}

async function collect(rootfsDir: string, o: RootfsGcOptions): Promise<RootfsGcResult> {
  const names = await readdir(rootfsDir).catch(() => [] as string[]);
  const records = new Map<string, RootRecord>();
  for (const name of names) {
    if (!ROOT.test(name)) continue;
    const text = await readFile(path.join(rootfsDir, `${name}.files.json`), 'utf8').catch(() => undefined);
    try {
      records.set(name, text === undefined ? {} : (JSON.parse(text) as RootRecord));
    } catch {
      records.set(name, {});
    }
  }
  const inUse = new Set([...o.inUse].map((p) => path.resolve(p)));
  const keep = new Set<string>();
  for (const digest of o.keepImages) keep.add(digestHex(digest));
  for (const name of records.keys()) if (inUse.has(path.join(path.resolve(rootfsDir), name))) keep.add(name);
  // The lower-layer roots (and older image roots) a kept root's layers extend.
  const keptLayers = [...keep].map((name) => records.get(name)?.layers ?? []);
  for (const [name, record] of records) {
    const layers = record.layers ?? [];
    if (layers.length === 0) continue;
    if (keptLayers.some((l) => l.length > layers.length && layers.every((d, i) => d === l[i])))
      keep.add(name);
  }

  const now = (o.now ?? Date.now)();
  const ttl = o.setAsideTtlMs ?? DEFAULT_SET_ASIDE_TTL_MS;
  const removed: string[] = [];
  const kept: string[] = [];
  for (const name of names.sort()) {
    const full = path.join(path.resolve(rootfsDir), name);
    const age = now - (await mtimeOf(full, now));
    if (ROOT.test(name)) {
      if (keep.has(name) || inUse.has(full) || age < (o.minAgeMs ?? DEFAULT_MIN_AGE_MS)) kept.push(name);
      else {
        removed.push(name);
        if (!o.dryRun) await removeRoot(full);
      }
    } else if (SET_ASIDE.test(name)) {
      if (inUse.has(full) || age < ttl) kept.push(name);
      else {
        removed.push(name);
        if (!o.dryRun) await rm(full, { recursive: true, force: true });
      }
    }
  }
  return { removed, kept };
}

async function mtimeOf(p: string, otherwise: number): Promise<number> {
  return stat(p).then(
    (s) => s.mtimeMs,
    () => otherwise,
  );
}

/** Takes a root out of view first (its manifest, then the folder by rename), then deletes it. */
async function removeRoot(root: string): Promise<void> {
  await rm(`${root}.files.json`, { force: true });
  const doomed = `${root}.gc-${randomBytes(4).toString('hex')}`;
  await rename(root, doomed).catch(() => undefined);
  await rm(doomed, { recursive: true, force: true });
}
