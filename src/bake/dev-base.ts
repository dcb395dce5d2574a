/**
 * What `kiln dev` runs an app image from: its base image, baked as any image is (or reused from
 * the store), and the configuration the app image will have once baked, computed from its spec
 * over the base's configuration without building the app image's own layers. The dev loop mounts
 * the app's folder where the app layer would put it.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError, ValidationError, type ValidationIssue } from '../errors/index.js';
import { OciStore, type ImageConfig } from '../oci/index.js';
import type { AppSpec, ImageSpec, LoadedConfig } from '../spec/index.js';
import { bake, homePaths, kilnHome, type BakeOptions } from './bake.js';
import type { BakedImage } from './image.js';
import { hostDebianArch, imageConfig, resolveUser } from './image-config.js';
import { isImageBase } from './order.js';

/** The base of an app image, ready to run its app from a folder. */
export interface DevBase {
  /** The app image, as declared. */
  readonly image: ImageSpec;
  readonly app: AppSpec;
  /** The app's folder on this machine (`app.src` resolved against the config). */
  readonly appDir: string;
  /** The base image (`image.from`), baked or found up to date. */
  readonly base: BakedImage;
  /**
   * The app image's configuration as a bake would write it (entrypoint, cmd, env, user, working
   * directory over the base's), with the base's layers only.
   */
  readonly config: ImageConfig;
  /** What the app image declares that a dev instance of its base does not have, one line each. */
  readonly omitted: readonly string[];
}

/** Options of {@link bakeDevBase}: a bake's, and the app image. */
export interface DevBaseOptions extends Omit<BakeOptions, 'names' | 'update' | 'frozen'> {
  /** The app image's name. */
  readonly image: string;
}

/**
 * Checks that `image` can run in dev (an app folder on a base image of the stack), bakes its base
 * (only what is stale) and computes the app image's configuration.
 *
 * @throws ValidationError naming the config file and every field that stands in the way.
 * @example
 * const dev = await bakeDevBase({ config, image: 'hello' });
 * // dev.base.digest: node-base's image; dev.config.config.Cmd: ['node', '/app/server.js']
 */
export async function bakeDevBase(options: DevBaseOptions): Promise<DevBase> {
  const { config } = options;
  const image = config.stack.images.find((i) => i.name === options.image);
  if (!image) {
    throw new NotFoundError(
      `no image named "${options.image}" in ${config.file}; declared: ${config.stack.images.map((i) => i.name).join(', ') || 'none'}`,
    );
  }
  const appDir = image.app ? path.resolve(config.dir, image.app.src) : '';
  const isDir = image.app
    ? await stat(appDir).then(
        (s) => s.isDirectory(),
        () => false,
      )
    : false;
  const issues = devIssues(image, appDir, isDir);
  if (issues.length > 0) throw new ValidationError(config.file, issues);

  const results = await bake({ ...options, names: [image.from] });
  const base = results.find((r) => r.name === image.from)!;
  const home = options.home ?? kilnHome(config, options.env ?? process.env);
  const store = await OciStore.open(homePaths(home).store);
  const manifest = await store.getManifest(base.digest);
  const baseConfig = JSON.parse(
    (await store.getBlob(manifest.config.digest)).toString('utf8'),
  ) as ImageConfig;
  return {
    image,
    app: image.app!,
    appDir,
    base,
    config: appImageConfig(config, image, baseConfig),
    omitted: devOmissions(image),
  };
}

/**
 * The configuration `image` gets when baked over `base`, without its own layers: the same
 * calculation as a bake's ({@link imageConfig}, the user resolved to `uid:gid`).
 */
export function appImageConfig(config: LoadedConfig, image: ImageSpec, base: ImageConfig): ImageConfig {
  return imageConfig({
    image,
    base,
    arch: config.stack.arch ?? hostDebianArch(),
    created: base.created ?? '',
    layers: [],
    ...resolveUser(config.stack.images, image),
  });
}

/** Why `image` cannot run in dev: each issue with its field and a fix. Empty when it can. */
export function devIssues(image: ImageSpec, appDir: string, appIsDirectory: boolean): ValidationIssue[] {
  const at = `images.${image.name}`;
  if (!image.app) {
    return [
      {
        path: `${at}.app`,
        message: 'the image has no app, so there is no folder to run in dev',
        fix: 'declare app: { src: ./app } on the image, or run the image with kiln run',
      },
    ];
  }
  const issues: ValidationIssue[] = [];
  if (!isImageBase(image.from)) {
    issues.push({
      path: `${at}.from`,
      message: `is "${image.from}", not an image of this stack: kiln dev runs the app's base image with the app folder mounted`,
      fix: `move the packages, users and files to a base image (say "${image.name}-base") and set from: ${image.name}-base`,
    });
  }
  if (image.app.type === 'tar' || !appIsDirectory) {
    issues.push({
      path: `${at}.app.src`,
      message: `${appDir} is not a directory: kiln dev mounts the app's folder`,
      fix: 'point app.src at the folder the app is made from',
    });
  }
  return issues;
}

/** What the app image declares beyond its app that a dev instance (its base) lacks, for a warning. */
export function devOmissions(image: ImageSpec): string[] {
  const out: string[] = [];
  const base = image.from;
  if (image.packages.length > 0)
    out.push(`packages (${image.packages.join(', ')}) are not installed: declare them on ${base}`);
  if (image.files.length > 0)
    out.push(`files (${image.files.map((f) => f.dest).join(', ')}) are not there: declare them on ${base}`);
  if (image.users.length > 0 || image.groups.length > 0)
    out.push(`users and groups are not in /etc/passwd and /etc/group: declare them on ${base}`);
  if (image.run.length > 0)
    out.push(
      `run steps (${image.run.length}) do not run: the app folder is used as it is (run them in it yourself, such as npm ci)`,
    );
  if (image.volumes.length > 0)
    out.push(`volumes (${image.volumes.join(', ')}) have no mount point: declare them on ${base}`);
  return out;
}
