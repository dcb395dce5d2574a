import { ValidationError, wrap } from '../errors/index.js';
import {
  Annotation,
  canonicalJson,
  MediaType,
  readLayer,
  sha256Digest,
  type Descriptor,
  type Digest,
  type ImageConfig,
  type ImageManifest,
  type LayerEntry,
  type OciStore,
} from '../oci/index.js';
import type { ImageSpec, LoadedConfig } from '../spec/index.js';
import { accountEntries, baseAccounts, mergeAccounts, parseGroup, parsePasswd } from './accounts.js';
import { attachSbomAndSignature, type Attachments } from './attach.js';
import { LAYER_FORMAT_VERSION, type CachedLayer, type LayerCache } from './cache.js';
import { imageConfig, resolveUser, type HistoryItem } from './image-config.js';
import { appEntries, entriesKey, fileEntries } from './inputs.js';
import type { LockedImage, LockedPackage } from './lock.js';
import { isImageBase, suiteOf } from './order.js';
import { toLocked, type Archives } from './packages.js';
import { assemblePackages } from './packages-layer.js';
import { describeStep, runStep } from './run-steps.js';
import type { SigningKey } from './sign.js';

/** Annotation on kiln's manifests naming the Debian suite the packages came from. */
export const SUITE_ANNOTATION = 'dev.kiln.debian.suite';

/** What one bake of one image produced. */
export interface BakedImage {
  readonly name: string;
  readonly digest: Digest;
  readonly manifest: Descriptor;
  readonly layers: readonly {
    readonly kind: string;
    readonly digest: Digest;
    readonly size: number;
    readonly cached: boolean;
  }[];
  readonly packages: number;
  readonly attachments: Attachments;
  /** True when nothing had to be built: every layer came from the cache. */
  readonly upToDate: boolean;
  readonly durationMs: number;
}

/** Everything one bake run shares between images. */
export interface BakeContext {
  readonly config: LoadedConfig;
  readonly store: OciStore;
  readonly layers: LayerCache;
  readonly archives: Archives;
  readonly key: SigningKey;
  readonly epoch: number;
  readonly arch: string;
  readonly update: boolean;
  readonly frozen: boolean;
  readonly runtime?: 'crun' | 'runc';
  readonly kilnVersion: string;
  /** Where derived inputs (packed apps) are cached. */
  readonly cacheDir: string;
  /** The lock's images, updated in place as images are resolved. */
  readonly lockImages: Record<string, LockedImage>;
  /** Images baked so far in this run, by name. */
  readonly baked: Map<string, BakedImage>;
  readonly log: (message: string) => void;
}

function key(value: unknown): Digest {
  return sha256Digest(canonicalJson({ v: LAYER_FORMAT_VERSION, ...(value as object) }));
}

/** Bakes one image whose bases are already baked in `ctx`. */
export async function bakeImage(ctx: BakeContext, image: ImageSpec): Promise<BakedImage> {
  const started = performance.now();
  const file = ctx.config.file;
  const suite = suiteOf(ctx.config.stack.images, image);
  const base = isImageBase(image.from) ? await loadBase(ctx, image.from) : undefined;
  const basePackages = isImageBase(image.from) ? (ctx.lockImages[image.from]?.packages ?? []) : [];

  const locked = await lockedPackagesFor(ctx, image, suite, basePackages);
  const baseIds = new Set(basePackages.map((p) => `${p.name}=${p.version}`));
  const own = locked.filter((p) => !baseIds.has(`${p.name}=${p.version}`));
  const mtime = ctx.epoch;
  const built: { kind: string; layer: CachedLayer; createdBy: string }[] = [];

  if (own.length > 0 && suite) {
    const layer = await ctx.layers.getOrBuild(
      key({
        kind: 'packages',
        arch: ctx.arch,
        own: own.map((p) => [p.name, p.version, p.sha256]),
        base: [...baseIds].sort(),
        exclude: image.exclude,
        mtime,
      }),
      mtime,
      async () => {
        ctx.log(`${image.name}: fetching and unpacking ${own.length} packages`);
        const contents = await ctx.archives.contents(suite, own);
        const baseControls = await Promise.all(
          basePackages.map(
            async (p) =>
              (await ctx.archives.metadata(p.sha256))?.control ?? { Package: p.name, Version: p.version },
          ),
        );
        return assemblePackages(contents, {
          exclude: image.exclude,
          arch: ctx.arch,
          basePackages: baseControls,
        });
      },
    );
    built.push({ kind: 'packages', layer, createdBy: `kiln: packages ${own.map((p) => p.name).join(' ')}` });
  }

  const files = [
    ...(await fileEntries(image.files, ctx.config.dir, file)),
    // Mount points: empty directories, so a volume can be mounted on the read-only root.
    ...image.volumes.map((v): LayerEntry => ({
      path: v.slice(1),
      type: 'directory',
      mode: 0o755,
      uid: 0,
      gid: 0,
    })),
  ];
  const hasShell = locked.some((p) => p.name === 'dash' || p.name === 'bash');
  const needsAccounts = image.users.length > 0 || image.groups.length > 0 || (own.length > 0 && !base);
  if (needsAccounts || files.length > 0) {
    const layer = await ctx.layers.getOrBuild(
      key({
        kind: 'accounts+files',
        users: image.users,
        groups: image.groups,
        accounts: needsAccounts,
        base: base?.digest ?? null,
        hasShell,
        files: entriesKey(files),
        mtime,
      }),
      mtime,
      async () => {
        const entries: LayerEntry[] = [];
        if (needsAccounts) {
          const existing = (base && (await accountsOf(ctx.store, base.manifest))) ?? baseAccounts(hasShell);
          entries.push(...accountEntries(mergeAccounts(existing, image.users, image.groups), image.users));
        }
        return [...entries, ...files];
      },
    );
    built.push({ kind: 'files', layer, createdBy: `kiln: users, groups and ${files.length} files` });
  }

  if (image.app) {
    const entries = await appEntries(image.app, ctx.config.dir, file, ctx.cacheDir);
    const layer = await ctx.layers.getOrBuild(
      key({ kind: 'app', entries: entriesKey(entries), mtime }),
      mtime,
      async () => entries,
    );
    built.push({ kind: 'app', layer, createdBy: `kiln: app ${image.app.src} → ${image.app.dest}` });
  }

  const env =
    imageConfig({ image, ...(base ? { base: base.config } : {}), arch: ctx.arch, created: '', layers: [] })
      .config.Env ?? [];
  for (const [i, step] of image.run.entries()) {
    const parents = [...(base?.manifest.layers ?? []), ...built.map((b) => b.layer.descriptor)];
    const layer = await ctx.layers.getOrBuild(
      key({
        kind: 'run',
        parents: parents.map((p) => p.digest),
        step,
        env,
        workdir: image.workdir ?? null,
        mtime,
      }),
      mtime,
      async () => {
        ctx.log(`${image.name}: run[${i}] ${describeStep(step)}`);
        const blobs = await Promise.all(parents.map((p) => ctx.store.getBlob(p.digest)));
        return runStep({
          layers: blobs,
          step,
          index: i,
          env: Object.fromEntries(
            env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
          ),
          ...(image.workdir ? { workdir: image.workdir } : {}),
          ...(ctx.runtime ? { runtime: ctx.runtime } : {}),
        }).catch((err: unknown) => {
          throw wrap(`${file}: images.${image.name}.run[${i}]`, err);
        });
      },
    );
    built.push({ kind: 'run', layer, createdBy: `kiln: run ${describeStep(step)}` });
  }

  const created = new Date(ctx.epoch * 1000).toISOString();
  const history: HistoryItem[] = built.map((b) => ({ createdBy: b.createdBy, diffId: b.layer.diffId }));
  const config = imageConfig({
    image,
    ...(base ? { base: base.config } : {}),
    arch: ctx.arch,
    created,
    layers: history,
    ...resolveUser(ctx.config.stack.images, image),
  });
  const configDesc = await ctx.store.putJson(config, MediaType.ImageConfig);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ImageManifest,
    config: configDesc,
    layers: [...(base?.manifest.layers ?? []), ...built.map((b) => b.layer.descriptor)],
    annotations: {
      [Annotation.Created]: created,
      [Annotation.Title]: image.name,
      ...(suite ? { [SUITE_ANNOTATION]: suite } : {}),
      ...(base ? { [Annotation.BaseName]: image.from, [Annotation.BaseDigest]: base.digest } : {}),
    },
  };
  const manifestDesc = await ctx.store.putManifest(manifest, { ref: image.name });
  const attachments = await attachSbomAndSignature(ctx, image.name, manifestDesc, locked, created);
  return {
    name: image.name,
    digest: manifestDesc.digest,
    manifest: manifestDesc,
    layers: built.map((b) => ({
      kind: b.kind,
      digest: b.layer.descriptor.digest,
      size: b.layer.descriptor.size,
      cached: b.layer.cached,
    })),
    packages: locked.length,
    attachments,
    upToDate: built.every((b) => b.layer.cached) && attachments.reused,
    durationMs: performance.now() - started,
  };
}

/** The image's packages: from the lock when it still matches the config, else resolved anew. */
async function lockedPackagesFor(
  ctx: BakeContext,
  image: ImageSpec,
  suite: string | undefined,
  basePackages: readonly LockedPackage[],
): Promise<LockedPackage[]> {
  if (!suite || (image.packages.length === 0 && image.profile === 'minimal')) {
    ctx.lockImages[image.name] = { requests: 'none', arch: ctx.arch, packages: [...basePackages] };
    return [...basePackages];
  }
  const requests = sha256Digest(
    canonicalJson({
      from: image.from,
      packages: [...image.packages].sort(),
      profile: image.profile,
      suite,
      arch: ctx.arch,
      base: basePackages.map((p) => [p.name, p.version]),
    }),
  );
  const existing = ctx.lockImages[image.name];
  if (existing && existing.requests === requests && !ctx.update) return existing.packages;
  if (ctx.frozen) {
    throw new ValidationError(ctx.config.file, [
      {
        path: `images.${image.name}`,
        message: existing
          ? 'its packages changed since kiln.lock was written'
          : 'it has no entry in kiln.lock',
        fix: 'run `kiln bake` without --frozen to update the lock, and commit kiln.lock',
      },
    ]);
  }
  ctx.log(`${image.name}: resolving ${image.packages.join(', ') || image.profile} in ${suite}`);
  const records = await ctx.archives.resolve(suite, image.packages, image.profile, basePackages);
  const packages = records.map(toLocked);
  ctx.lockImages[image.name] = { requests, suite, arch: ctx.arch, packages };
  return packages;
}

interface BaseImage {
  readonly digest: Digest;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
}

async function loadBase(ctx: BakeContext, name: string): Promise<BaseImage> {
  const desc = ctx.baked.get(name)?.manifest ?? (await ctx.store.resolve(name));
  if (!desc)
    throw new ValidationError(ctx.config.file, [
      { path: `images.${name}`, message: 'base image is not baked', fix: `run kiln bake ${name}` },
    ]);
  const manifest = await ctx.store.getManifest(desc.digest);
  const config = JSON.parse(
    (await ctx.store.getBlob(manifest.config.digest)).toString('utf8'),
  ) as ImageConfig;
  return { digest: desc.digest, manifest, config };
}

/** The account databases at the top of an image's layers (the last layer that has them wins). */
async function accountsOf(store: OciStore, manifest: ImageManifest) {
  let passwd: string | undefined;
  let group: string | undefined;
  for (const layer of manifest.layers) {
    for (const e of await readLayer(await store.getBlob(layer.digest))) {
      if (e.type !== 'file') continue;
      if (e.path === 'etc/passwd') passwd = e.content!.toString('utf8');
      if (e.path === 'etc/group') group = e.content!.toString('utf8');
    }
  }
  if (passwd === undefined && group === undefined) return undefined;
  return { passwd: parsePasswd(passwd ?? ''), group: parseGroup(group ?? '') };
}
