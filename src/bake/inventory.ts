import { compareVersions } from './debian/index.js';
import type { Descriptor, Digest, ImageConfig, OciStore } from '../oci/index.js';
import { KEYID_ANNOTATION } from './attach.js';
import type { Lock } from './lock.js';
import type { Archives } from './packages.js';
import { SBOM_MEDIA_TYPE } from './sbom.js';
import { SIGNATURE_ARTIFACT_TYPE, verifyEnvelope, type DsseEnvelope } from './sign.js';

/** One baked image as `kiln images --json` shows it. The shape is stable and documented in README. */
export interface ImageSummary {
  readonly name: string;
  readonly digest: Digest;
  readonly created: string | null;
  /** Bytes of the manifest, config and (compressed) layers. */
  readonly size: number;
  readonly layers: number;
  readonly base: string | null;
  readonly sbom: {
    readonly digest: Digest;
    readonly format: 'CycloneDX';
    readonly specVersion: string;
    readonly components: number;
  } | null;
  readonly signature: { readonly digest: Digest; readonly keyid: string; readonly verified: boolean } | null;
}

/** Lists every tagged image in the store with its SBOM and signature (verified against `trustedKeys`). */
export async function listImages(store: OciStore, trustedKeys: readonly string[]): Promise<ImageSummary[]> {
  const out: ImageSummary[] = [];
  for (const { ref, descriptor } of await store.list()) {
    const manifest = await store.getManifest(descriptor.digest);
    const config = JSON.parse((await store.getBlob(manifest.config.digest)).toString('utf8')) as ImageConfig;
    const size = descriptor.size + manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0);
    out.push({
      name: ref,
      digest: descriptor.digest,
      created: config.created ?? null,
      size,
      layers: manifest.layers.length,
      base: manifest.annotations?.['org.opencontainers.image.base.name'] ?? null,
      sbom: await sbomSummary(store, descriptor),
      signature: await signatureSummary(store, descriptor, trustedKeys),
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

async function artifactBlob(store: OciStore, artifact: Descriptor): Promise<Buffer> {
  const m = await store.getManifest(artifact.digest);
  return store.getBlob(m.layers[0]!.digest);
}

async function sbomSummary(store: OciStore, image: Descriptor): Promise<ImageSummary['sbom']> {
  const [ref] = await store.referrers(image.digest, SBOM_MEDIA_TYPE);
  if (!ref) return null;
  const bom = JSON.parse((await artifactBlob(store, ref)).toString('utf8')) as {
    specVersion: string;
    components?: unknown[];
  };
  return {
    digest: ref.digest,
    format: 'CycloneDX',
    specVersion: bom.specVersion,
    components: bom.components?.length ?? 0,
  };
}

async function signatureSummary(
  store: OciStore,
  image: Descriptor,
  trustedKeys: readonly string[],
): Promise<ImageSummary['signature']> {
  const refs = await store.referrers(image.digest, SIGNATURE_ARTIFACT_TYPE);
  let first: ImageSummary['signature'] = null;
  for (const ref of refs) {
    const envelope = JSON.parse((await artifactBlob(store, ref)).toString('utf8')) as DsseEnvelope;
    let verified = false;
    let keyid = ref.annotations?.[KEYID_ANNOTATION] ?? envelope.signatures[0]?.keyid ?? '';
    try {
      keyid = verifyEnvelope(envelope, trustedKeys, image.digest);
      verified = true;
    } catch {
      verified = false;
    }
    const summary = { digest: ref.digest, keyid, verified };
    if (verified) return summary;
    first ??= summary;
  }
  return first;
}

/** A locked package with a newer version in the archive. */
export interface OutdatedPackage {
  readonly image: string;
  readonly name: string;
  readonly locked: string;
  readonly available: string;
  readonly suite: string;
  /** True when the newer version comes from the security suite. */
  readonly security: boolean;
}

/** Compares every locked package with the archive's newest version. */
export async function outdatedPackages(lock: Lock, archives: Archives): Promise<OutdatedPackage[]> {
  const out: OutdatedPackage[] = [];
  for (const [image, entry] of Object.entries(lock.images).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (entry.suite) out.push(...(await newerVersions(image, entry.suite, entry.packages, archives)));
  }
  return out;
}

/**
 * The packages of `image` that have a newer version in `suite`'s archive (with its -updates and
 * -security suites), such as those of a running image's SBOM. Throws what reading the archive throws.
 */
export async function newerVersions(
  image: string,
  suite: string,
  packages: readonly { readonly name: string; readonly version: string }[],
  archives: Archives,
): Promise<OutdatedPackage[]> {
  const index = await archives.index(suite);
  const out: OutdatedPackage[] = [];
  for (const p of packages) {
    const newest = index.newest(p.name);
    if (newest && compareVersions(newest.version, p.version) > 0) {
      out.push({
        image,
        name: p.name,
        locked: p.version,
        available: newest.version,
        suite: newest.suite,
        security: newest.suite.endsWith('-security'),
      });
    }
  }
  return out;
}

/** The suite a package's suite belongs to: `bookworm` for `bookworm-security` and `bookworm-updates`. */
export function baseSuite(suite: string): string {
  return suite.replace(/-(security|updates)$/, '');
}
