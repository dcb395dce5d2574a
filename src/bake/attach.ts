import { canonicalJson, type Descriptor, type OciStore } from '../oci/index.js';
import type { LockedPackage } from './lock.js';
import type { Archives } from './packages.js';
import { cycloneDx, SBOM_MEDIA_TYPE } from './sbom.js';
import { signManifest, SIGNATURE_ARTIFACT_TYPE, type DsseEnvelope, type SigningKey } from './sign.js';

/** Annotation on a signature artifact naming the key that made it. */
export const KEYID_ANNOTATION = 'dev.kiln.signature.keyid';

/** The SBOM and signature attached to an image. */
export interface Attachments {
  readonly sbom: Descriptor;
  readonly signature: Descriptor;
  /** True when both were already attached (nothing new was written). */
  readonly reused: boolean;
}

/**
 * Attaches a CycloneDX SBOM and a DSSE signature to the image in the store, as OCI artifacts whose
 * `subject` is the image manifest. Existing ones (the same SBOM, a signature by the same key) are kept.
 */
export async function attachSbomAndSignature(
  ctx: {
    readonly store: OciStore;
    readonly archives: Archives;
    readonly key: SigningKey;
    readonly kilnVersion: string;
  },
  name: string,
  manifest: Descriptor,
  packages: readonly LockedPackage[],
  created: string,
): Promise<Attachments> {
  const { store, key } = ctx;
  const existingSboms = await store.referrers(manifest.digest, SBOM_MEDIA_TYPE);
  const existingSigs = (await store.referrers(manifest.digest, SIGNATURE_ARTIFACT_TYPE)).filter(
    (d) => d.annotations?.[KEYID_ANNOTATION] === key.keyid,
  );
  if (existingSboms[0] && existingSigs[0]) {
    return { sbom: existingSboms[0], signature: existingSigs[0], reused: true };
  }
  const sbomPackages = await Promise.all(
    packages.map(async (p) => {
      const meta = await ctx.archives.metadata(p.sha256);
      return {
        name: p.name,
        version: p.version,
        arch: p.arch,
        sha256: p.sha256,
        suite: p.suite,
        licenses: meta?.licenses ?? [],
        ...(meta?.control.Source ? { source: meta.control.Source.split(' ')[0]! } : {}),
      };
    }),
  );
  const sbom =
    existingSboms[0] ??
    (await store.attach(manifest, {
      artifactType: SBOM_MEDIA_TYPE,
      mediaType: SBOM_MEDIA_TYPE,
      data: canonicalJson(
        cycloneDx({
          imageName: name,
          manifestDigest: manifest.digest,
          created,
          kilnVersion: ctx.kilnVersion,
          packages: sbomPackages,
        }),
      ),
      annotations: { 'org.opencontainers.image.created': created },
    }));
  const envelope: DsseEnvelope = signManifest(key, name, manifest.digest);
  const signature =
    existingSigs[0] ??
    (await store.attach(manifest, {
      artifactType: SIGNATURE_ARTIFACT_TYPE,
      mediaType: SIGNATURE_ARTIFACT_TYPE,
      data: canonicalJson(envelope),
      annotations: { [KEYID_ANNOTATION]: key.keyid, 'org.opencontainers.image.created': created },
    }));
  return { sbom, signature, reused: false };
}
