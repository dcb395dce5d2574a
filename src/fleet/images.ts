/**
 * Where the controller finds images: a name or digest becomes the manifest digest and the process
 * its instances run (entrypoint + cmd, env, working directory, user), read from the image config;
 * and where deploy has an image admitted before releasing it (signed by a trusted key, every blob
 * intact).
 */
import path from 'node:path';
import { NotFoundError } from '../errors/index.js';
import { BlobChecker, type Digest, type ImageConfig, type OciStore } from '../oci/index.js';
import { ensureRootfs, processFromImage } from '../runtime/index.js';
import type { ServiceSpec } from '../spec/index.js';
import type { ReleaseProcess } from './desired.js';
import { pullIfRemote, registryFromEnv, type RegistryFactory } from './remote-images.js';
import { admitImage, type Admission } from './trust.js';

/** An image the controller can release. */
export interface ResolvedImage {
  readonly digest: Digest;
  readonly process: ReleaseProcess;
}

/** Resolves image references and unpacks their root filesystems. */
export interface ImageCatalog {
  /**
   * `ref` is an image name in the store, a `sha256:` digest, or `registry/repository@sha256:…`
   * (pulled first, with its referrers); throws NotFoundError when absent.
   */
  resolve(ref: string): Promise<ResolvedImage>;
  /**
   * Admits image `digest` (named `ref` in the deploy) for `service`, before a release of it is
   * recorded: a key the service trusts signed it, and every blob matches its digest. Throws
   * IntegrityError (the deploy is refused) naming what failed and the fix.
   */
  admit(service: ServiceSpec, ref: string, digest: Digest): Promise<Admission>;
  /** The read-only root filesystem of `digest`, unpacked once and shared by every instance. */
  rootfs(digest: Digest): Promise<string>;
}

/** Options for {@link storeCatalog}. */
export interface StoreCatalogOptions {
  /**
   * The project's keys: `signing.pub`, trusted by services that declare no `trust`, and the `*.pub`
   * files key ids in `trust.keys` name. @default the `keys` directory beside the store (`.kiln/keys`)
   */
  readonly keysDir?: string;
  /** Checks blobs at admission, remembering those found intact. @default a new BlobChecker */
  readonly checker?: BlobChecker;
  /** Opens clients for registries that deploys name images in. @default registryFromEnv() */
  readonly registry?: RegistryFactory;
}

/** The catalog of a project's OCI store (`.kiln/store`), with root filesystems under `rootfsDir`. */
export function storeCatalog(
  store: OciStore,
  rootfsDir: string,
  options: StoreCatalogOptions = {},
): ImageCatalog {
  const admission = {
    store,
    keysDir: options.keysDir ?? path.join(path.dirname(store.dir), 'keys'),
    checker: options.checker ?? new BlobChecker(),
  };
  return {
    admit: (service, ref, digest) => admitImage(admission, service, ref, digest),
    async resolve(ref) {
      const desc = await store.resolve(await pullIfRemote(store, ref, options.registry ?? registryFromEnv()));
      if (!desc) {
        throw new NotFoundError(
          `no image "${ref}" in the store at ${path.dirname(rootfsDir)}: bake it first (kiln bake ${ref})`,
        );
      }
      const manifest = await store.getManifest(desc.digest);
      const config = JSON.parse(
        (await store.getBlob(manifest.config.digest)).toString('utf8'),
      ) as ImageConfig;
      const proc = processFromImage(config);
      if (proc.args.length === 0) {
        throw new NotFoundError(
          `image "${ref}" has no entrypoint or cmd, so its instances would have nothing to run; give it an entrypoint`,
        );
      }
      return {
        digest: desc.digest,
        process: {
          args: proc.args,
          env: proc.env ?? {},
          cwd: proc.cwd ?? '/',
          user: proc.user ?? { uid: 0, gid: 0 },
        },
      };
    },
    rootfs: (digest) => ensureRootfs(store, digest, rootfsDir),
  };
}
