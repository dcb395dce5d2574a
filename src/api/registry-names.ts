/**
 * How the registry's repositories and tags map onto the image store's names. The store tags each
 * image with one name (`org.opencontainers.image.ref.name`): a bake tags image `web` as `web`, a
 * pull may tag `team/app:1.0`. A store name `R:T` (a `:` after the last `/`) is repository `R`,
 * tag `T`; a bare name `R` is repository `R`, tag `latest`, so `kiln bake` output is pulled as
 * `HOST/web:latest` and a push to `HOST/web:latest` is what `kiln deploy` and `kiln images` call
 * `web`. Names that are not a valid repository and tag (upper case, say) are not served.
 */
import { assertRefName, assertRepository, assertTag, isDigest, type TaggedImage } from '../oci/index.js';
import { RegistryError } from './registry-http.js';

/** The tag a bare store name (`web`) is served under. */
export const DEFAULT_TAG = 'latest';

/** Throws NAME_INVALID unless `name` is a repository name of the distribution spec. */
export function checkRepository(name: string): void {
  try {
    assertRepository(name);
  } catch {
    throw new RegistryError(
      400,
      'NAME_INVALID',
      `${JSON.stringify(clip(name))} is not a repository name: use lowercase components separated by /, e.g. team/app`,
    );
  }
}

/** Throws TAG_INVALID (MANIFEST_INVALID for a digest) unless `reference` is a tag or sha256 digest. */
export function checkReference(reference: string): void {
  if (reference.includes(':')) {
    if (isDigest(reference)) return;
    throw new RegistryError(
      400,
      'DIGEST_INVALID',
      `${JSON.stringify(clip(reference))} is not a sha256 digest: use sha256: and 64 lowercase hex digits`,
    );
  }
  try {
    assertTag(reference);
  } catch {
    throw new RegistryError(
      400,
      'TAG_INVALID',
      `${JSON.stringify(clip(reference))} is not a tag: use up to 128 letters, digits, _ . - (not starting with . or -)`,
    );
  }
}

/** The store name a push of `repository:tag` is tagged with (`web:latest` → `web`). */
export function storeName(repository: string, tag: string): string {
  const name = tag === DEFAULT_TAG ? repository : `${repository}:${tag}`;
  try {
    assertRefName(name);
  } catch {
    throw new RegistryError(
      400,
      'TAG_INVALID',
      `tag ${JSON.stringify(tag)} cannot name an image in kiln's store (as ${JSON.stringify(name)}): ` +
        'start and end it with a letter or digit',
    );
  }
  return name;
}

/** The store names `repository:tag` may be stored under, in the order they are looked up. */
export function storeNames(repository: string, tag: string): string[] {
  return tag === DEFAULT_TAG ? [repository, `${repository}:${tag}`] : [`${repository}:${tag}`];
}

/** The repository and tag a store name is served as, or undefined when it is served as none. */
export function repositoryTag(name: string): { repository: string; tag: string } | undefined {
  const colon = name.lastIndexOf(':');
  const [repository, tag] =
    colon > name.lastIndexOf('/') ? [name.slice(0, colon), name.slice(colon + 1)] : [name, DEFAULT_TAG];
  try {
    assertRepository(repository);
    assertTag(tag);
  } catch {
    return undefined;
  }
  return { repository, tag };
}

/** The tags of `repository` among the store's images, sorted as Go's sort.Strings (byte order). */
export function tagsOf(images: readonly TaggedImage[], repository: string): string[] {
  const tags = new Set<string>();
  for (const image of images) {
    const served = repositoryTag(image.ref);
    if (served?.repository === repository) tags.add(served.tag);
  }
  return [...tags].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** `s` cut for an error message: a path segment may be as long as a client likes. */
export function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}
