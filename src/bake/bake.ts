import { createRequire } from 'node:module';
import path from 'node:path';
import { ValidationError } from '../errors/index.js';
import { OciStore } from '../oci/index.js';
import type { LoadedConfig } from '../spec/index.js';
import { LayerCache } from './cache.js';
import { bakeImage, type BakeContext, type BakedImage } from './image.js';
import { hostDebianArch } from './image-config.js';
import { LOCK_VERSION, readLock, writeLock, type LockedImage } from './lock.js';
import { bakeOrder } from './order.js';
import { Archives } from './packages.js';
import { loadOrCreateSigningKey } from './sign.js';

/** The state directory beside a config, unless KILN_HOME says otherwise. */
export function kilnHome(config: LoadedConfig, env: NodeJS.ProcessEnv = process.env): string {
  return env.KILN_HOME ? path.resolve(env.KILN_HOME) : path.join(config.dir, '.kiln');
}

/** Paths inside the state directory. */
export function homePaths(home: string) {
  return {
    store: path.join(home, 'store'),
    cache: path.join(home, 'cache'),
    keys: path.join(home, 'keys'),
  };
}

/** kiln's own version, from package.json. */
export function kilnVersion(): string {
  const require = createRequire(import.meta.url);
  for (const candidate of ['../../package.json', '../package.json']) {
    try {
      return (require(candidate) as { version: string }).version;
    } catch {
      // try the next layout (src/ in tests, dist/ when installed)
    }
  }
  return '0.0.0';
}

/** What `kiln bake` takes. */
export interface BakeOptions {
  readonly config: LoadedConfig;
  /** Images to bake (with their bases); all when empty. */
  readonly names?: readonly string[];
  /** Resolve packages again (newest versions) instead of following kiln.lock. @default false */
  readonly update?: boolean;
  /** Fail instead of changing kiln.lock. @default false */
  readonly frozen?: boolean;
  /** Use only cached archive indexes and .debs. @default false */
  readonly offline?: boolean;
  /** Overrides SOURCE_DATE_EPOCH and the lock's epoch. */
  readonly sourceDateEpoch?: number;
  /** @default KILN_HOME or `.kiln` beside the config */
  readonly home?: string;
  /** Root to read apt sources from. @default "/" */
  readonly aptRoot?: string;
  readonly runtime?: 'crun' | 'runc';
  readonly fetch?: typeof fetch;
  readonly log?: (message: string) => void;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Bakes images: resolves packages (following kiln.lock), builds each layer unless the cache has
 * it, writes the image into the store with its SBOM and signature, and rewrites kiln.lock
 * (atomically) when it changed. Bases are baked before the images built on them.
 */
export async function bake(options: BakeOptions): Promise<BakedImage[]> {
  const { config } = options;
  const env = options.env ?? process.env;
  const home = options.home ?? kilnHome(config, env);
  const paths = homePaths(home);
  const order = bakeOrder(config.stack.images, options.names ?? []);
  const lock = await readLock(config.dir);
  const epoch = epochFor(options, env, lock?.sourceDateEpoch);
  const arch = config.stack.arch ?? hostDebianArch();
  const store = await OciStore.open(paths.store);
  const lockImages: Record<string, LockedImage> = { ...(lock?.images ?? {}) };
  const ctx: BakeContext = {
    config,
    store,
    layers: new LayerCache(paths.cache, store),
    archives: new Archives({
      cacheDir: paths.cache,
      arch,
      ...(config.stack.mirror ? { mirror: config.stack.mirror } : {}),
      ...(options.aptRoot ? { aptRoot: options.aptRoot } : {}),
      ...(options.offline ? { offline: true } : {}),
      ...(options.fetch ? { fetch: options.fetch } : {}),
    }),
    key: await loadOrCreateSigningKey(paths.keys),
    epoch,
    arch,
    update: options.update ?? false,
    frozen: options.frozen ?? false,
    ...(options.runtime ? { runtime: options.runtime } : {}),
    kilnVersion: kilnVersion(),
    cacheDir: paths.cache,
    lockImages,
    baked: new Map(),
    log: options.log ?? (() => {}),
  };
  const results: BakedImage[] = [];
  for (const image of order) {
    const baked = await bakeImage(ctx, image);
    ctx.baked.set(image.name, baked);
    results.push(baked);
  }
  const declared = new Set(config.stack.images.map((i) => i.name));
  const nextImages = Object.fromEntries(Object.entries(lockImages).filter(([n]) => declared.has(n)));
  const sourceDateEpoch = lock?.sourceDateEpoch ?? epoch;
  const changed =
    !lock || JSON.stringify(sortedImages(lock.images)) !== JSON.stringify(sortedImages(nextImages));
  if (changed) {
    if (options.frozen) {
      throw new ValidationError(path.join(config.dir, 'kiln.lock'), [
        { path: '', message: 'is out of date', fix: 'run `kiln bake` without --frozen and commit kiln.lock' },
      ]);
    }
    await writeLock(config.dir, { lockVersion: LOCK_VERSION, sourceDateEpoch, images: nextImages });
  }
  return results;
}

/**
 * The timestamp in every image: an explicit option, else SOURCE_DATE_EPOCH, else the lock's own
 * constant (fixed when the lock was first written), else today (which then goes into the new lock).
 */
function epochFor(options: BakeOptions, env: NodeJS.ProcessEnv, fromLock: number | undefined): number {
  if (options.sourceDateEpoch !== undefined) return options.sourceDateEpoch;
  const fromEnv = env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!/^\d+$/.test(fromEnv)) {
      throw new ValidationError('SOURCE_DATE_EPOCH', [
        {
          path: '',
          message: `"${fromEnv}" is not a whole number of seconds`,
          fix: 'set it to e.g. $(git log -1 --format=%ct)',
        },
      ]);
    }
    return Number(fromEnv);
  }
  // Midnight UTC, so two people who resolve the same packages on the same day get the same images.
  return fromLock ?? Math.floor(Date.now() / 86_400_000) * 86_400;
}

function sortedImages(images: Record<string, LockedImage>): [string, LockedImage][] {
  return Object.entries(images).sort(([a], [b]) => (a < b ? -1 : 1));
}
