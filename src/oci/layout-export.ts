/**
 * Exporting one image from the store as a standalone OCI layout, for tools that read `oci:DIR:TAG`.
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConflictError, NotFoundError, wrap } from '../errors/index.js';
import { isDigest } from './digest.js';
import { randomSuffix, syncDir } from './fsutil.js';
import { assertRefName, tagOf } from './refs.js';
import { Annotation, type Descriptor, type Digest, type ImageManifest } from './types.js';

/** The store operations an export uses (kept narrow so the store and this file do not import each other). */
interface LayoutStore {
  readonly dir: string;
  resolve(refOrDigest: string): Promise<Descriptor | undefined>;
  referrers(subject: Digest): Promise<Descriptor[]>;
  getManifest(digest: Digest): Promise<ImageManifest>;
  getBlob(digest: Digest): Promise<Buffer>;
  putBlob(data: Buffer, mediaType: string): Promise<Descriptor>;
  putManifestBytes(
    body: Buffer,
    opts: { ref?: string; annotations?: Readonly<Record<string, string>> },
  ): Promise<Descriptor>;
}

/**
 * Writes image `ref` of `store`, its blobs and its referrers (recursively) as a new OCI layout at
 * `destDir`, tagged `opts.tag` or the ref's tag part. Built in a temp dir beside `destDir` and
 * renamed into place, so `destDir` is whole or absent.
 */
export async function exportLayout(
  store: LayoutStore,
  openLayout: (dir: string) => Promise<LayoutStore>,
  ref: string,
  destDir: string,
  opts: { readonly tag?: string },
): Promise<Descriptor> {
  const image = await store.resolve(ref);
  if (image === undefined) throw new NotFoundError(`no image "${ref}" in the store at ${store.dir}`);
  const tag = opts.tag ?? (isDigest(ref) ? 'latest' : tagOf(ref));
  assertRefName(tag);
  if (await stat(destDir).catch(() => undefined)) {
    throw new ConflictError(`${destDir} already exists; remove it or export to a new directory`);
  }
  await mkdir(dirname(destDir), { recursive: true });
  const tmp = `${destDir}.tmp-${randomSuffix()}`;
  try {
    const out = await openLayout(tmp);
    const { [Annotation.RefName]: _ref, ...annotations } = image.annotations ?? {};
    await copyManifest(store, out, image.digest, { ref: tag, annotations });
    const queue: Digest[] = [image.digest];
    const done = new Set<string>();
    while (queue.length > 0) {
      const subject = queue.shift()!;
      if (done.has(subject)) continue;
      done.add(subject);
      for (const referrer of await store.referrers(subject)) {
        await copyManifest(
          store,
          out,
          referrer.digest,
          referrer.annotations ? { annotations: referrer.annotations } : {},
        );
        queue.push(referrer.digest);
      }
    }
    await rename(tmp, destDir);
    await syncDir(dirname(destDir));
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw wrap(`exporting ${ref} to ${destDir}`, err);
  }
  return image;
}

async function copyManifest(
  from: LayoutStore,
  to: LayoutStore,
  digest: Digest,
  opts: { ref?: string; annotations?: Readonly<Record<string, string>> },
): Promise<void> {
  const manifest = await from.getManifest(digest);
  for (const blob of [manifest.config, ...manifest.layers]) {
    await to.putBlob(await from.getBlob(blob.digest), blob.mediaType);
  }
  await to.putManifestBytes(await from.getBlob(digest), opts);
}
