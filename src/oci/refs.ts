/**
 * Image references inside an OCI layout (`org.opencontainers.image.ref.name`) and the small checks
 * on descriptors and manifests that the store and the registry client share.
 */
import { IntegrityError, ValidationError, type ValidationIssue } from '../errors/index.js';
import { isDigest } from './digest.js';
import {
  Annotation,
  MediaType,
  type Descriptor,
  type Digest,
  type ImageIndex,
  type ImageManifest,
} from './types.js';

const REF_COMPONENT = '[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*';
const REF_RE = new RegExp(`^${REF_COMPONENT}(?:/${REF_COMPONENT})*$`);
const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** Throws a ValidationError unless `ref` follows the image-spec grammar for `ref.name` annotations. */
export function assertRefName(ref: string): void {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > 255 || !REF_RE.test(ref)) {
    throw new ValidationError(undefined, [
      {
        path: 'ref',
        message: `"${String(ref)}" is not a valid image reference name`,
        fix: 'use letters, digits and . _ - : @ + between them, with / between parts, e.g. "app:1.0" or "team/app:1.0"',
      },
    ]);
  }
}

/**
 * The tag part of a store reference, used when a single image is exported: `team/app:1.0` → `1.0`,
 * `app` → `app` (a reference with neither `/` nor `:` is itself a tag), `team/app` → `latest`.
 */
export function tagOf(ref: string): string {
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return ref.slice(colon + 1);
  return ref.includes('/') ? 'latest' : ref;
}

/** True when `s` looks like a media type (`type/subtype+suffix`). */
export function isMediaType(s: unknown): s is string {
  return typeof s === 'string' && MEDIA_TYPE_RE.test(s);
}

/** Collects the problems of one descriptor into `issues`, each under `at`. */
export function checkDescriptor(d: unknown, at: string, issues: ValidationIssue[]): void {
  if (d === null || typeof d !== 'object') {
    issues.push({ path: at, message: 'expected a descriptor object' });
    return;
  }
  const desc = d as Partial<Descriptor>;
  if (!isMediaType(desc.mediaType))
    issues.push({ path: `${at}.mediaType`, message: `"${String(desc.mediaType)}" is not a media type` });
  if (typeof desc.digest !== 'string' || !isDigest(desc.digest)) {
    issues.push({
      path: `${at}.digest`,
      message: `"${String(desc.digest)}" is not a sha256 digest`,
      fix: 'use sha256: and 64 lowercase hex digits',
    });
  }
  if (!Number.isSafeInteger(desc.size) || (desc.size as number) < 0) {
    issues.push({ path: `${at}.size`, message: `${String(desc.size)} is not a byte count` });
  }
}

/** Validates the shape of an image manifest, reporting every problem together. */
export function assertImageManifest(value: unknown, what: string): asserts value is ImageManifest {
  const issues: ValidationIssue[] = [];
  const m = value as Partial<ImageManifest> | null;
  if (m === null || typeof m !== 'object') {
    throw new ValidationError(what, [{ path: '', message: 'expected a JSON object' }]);
  }
  if (m.schemaVersion !== 2) issues.push({ path: 'schemaVersion', message: 'must be 2' });
  if (m.mediaType !== MediaType.ImageManifest) {
    issues.push({
      path: 'mediaType',
      message: `must be "${MediaType.ImageManifest}", got "${String(m.mediaType)}"`,
    });
  }
  checkDescriptor(m.config, 'config', issues);
  if (!Array.isArray(m.layers)) issues.push({ path: 'layers', message: 'must be an array of descriptors' });
  else m.layers.forEach((l, i) => checkDescriptor(l, `layers[${i}]`, issues));
  if (m.subject !== undefined) checkDescriptor(m.subject, 'subject', issues);
  if (m.artifactType !== undefined && !isMediaType(m.artifactType)) {
    issues.push({ path: 'artifactType', message: `"${String(m.artifactType)}" is not a media type` });
  }
  if (issues.length > 0) throw new ValidationError(what, issues);
}

/**
 * Validates the shape of an image index (index.json, a referrers list, a fallback tag): an object
 * whose `manifests` is an array of descriptors, each with string annotations. Reports every
 * problem together, each under its path (`manifests[3].digest`).
 */
export function assertImageIndex(value: unknown, what: string): asserts value is ImageIndex {
  const index = value as Partial<ImageIndex> | null;
  if (index === null || typeof index !== 'object' || Array.isArray(index)) {
    throw new ValidationError(what, [{ path: '', message: 'expected a JSON object (an image index)' }]);
  }
  if (!Array.isArray(index.manifests)) {
    throw new ValidationError(what, [{ path: 'manifests', message: 'must be an array of descriptors' }]);
  }
  const issues: ValidationIssue[] = [];
  index.manifests.forEach((d: unknown, i) => {
    checkDescriptor(d, `manifests[${i}]`, issues);
    const annotations = (d as Partial<Descriptor> | null)?.annotations;
    if (
      annotations !== undefined &&
      (annotations === null ||
        typeof annotations !== 'object' ||
        Array.isArray(annotations) ||
        Object.values(annotations).some((v) => typeof v !== 'string'))
    ) {
      issues.push({ path: `manifests[${i}].annotations`, message: 'must be an object of strings' });
    }
  });
  if (issues.length > 0) throw new ValidationError(what, issues);
}

/** A descriptor reduced to the fields that identify content (drops annotations, platform …). */
export function plainDescriptor(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/** Returns `digest` when it is a well-formed sha256 digest; throws a ValidationError otherwise. */
export function checkDigest(digest: string): Digest {
  if (typeof digest !== 'string' || !isDigest(digest)) {
    throw new ValidationError(undefined, [
      {
        path: 'digest',
        message: `"${String(digest)}" is not a sha256 digest`,
        fix: 'use sha256: and 64 lowercase hex digits',
      },
    ]);
  }
  return digest;
}

/** Throws a ValidationError unless `mediaType` looks like a media type. */
export function assertMediaType(mediaType: string): void {
  if (!isMediaType(mediaType)) {
    throw new ValidationError(undefined, [
      {
        path: 'mediaType',
        message: `"${String(mediaType)}" is not a media type`,
        fix: 'use type/subtype, e.g. application/json',
      },
    ]);
  }
}

/** Parses JSON content, an IntegrityError naming `what` when it is not JSON. */
export function parseJson(data: Buffer, what: string): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new IntegrityError(`${what}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** `index` with `descriptor` added as an untagged root, unless its digest is listed already. */
export function addUntagged(index: ImageIndex, descriptor: Descriptor): ImageIndex {
  if (index.manifests.some((d) => d.digest === descriptor.digest)) return index;
  return { ...index, manifests: [...index.manifests, descriptor] };
}

/** The ref an index entry is tagged with, if any. */
export function refOf(d: Descriptor): string | undefined {
  return d.annotations?.[Annotation.RefName];
}

/** Tagged entries by ref, then untagged ones by digest: index.json is the same for the same content. */
export function compareEntries(a: Descriptor, b: Descriptor): number {
  const ka = `${refOf(a) === undefined ? '1' : '0'}${refOf(a) ?? ''}\0${a.digest}`;
  const kb = `${refOf(b) === undefined ? '1' : '0'}${refOf(b) ?? ''}\0${b.digest}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
