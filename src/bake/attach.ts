import { Annotation, canonicalJson, type Descriptor, type Digest, type OciStore } from '../oci/index.js';
import { attachedFiles, FILES_ARTIFACT_TYPE, filesOfLayers, type FilesArtifact } from '../runtime/index.js';
import type { LockedPackage } from './lock.js';
import type { Archives } from './packages.js';
import { cycloneDx, SBOM_MEDIA_TYPE } from './sbom.js';
import { signManifest, SIGNATURE_ARTIFACT_TYPE, type DsseEnvelope, type SigningKey } from './sign.js';

/** Annotation on a signature artifact naming the key that made it. */
export const KEYID_ANNOTATION = 'dev.kiln.signature.keyid';

/** The SBOM, signature and manifest of files attached to an image. */
export interface Attachments {
  readonly sbom: Descriptor;
  readonly signature: Descriptor;
  /** The manifest of its files (`FILES_ARTIFACT_TYPE`), computed from its layers. */
  readonly files: Descriptor;
  /** True when all were already attached (nothing new was written). */
  readonly reused: boolean;
}

/**
 * Attaches a CycloneDX SBOM, a DSSE signature and the manifest of the image's files to the image in
 * the store, as OCI artifacts whose `subject` is the image manifest (so the image's own digest does
 * not change). Existing ones (the same SBOM, a signature by the same key, a manifest of files) are kept.
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
  const files = await attachFiles(store, manifest, created);
  const existingSboms = await store.referrers(manifest.digest, SBOM_MEDIA_TYPE);
  const existingSigs = (await store.referrers(manifest.digest, SIGNATURE_ARTIFACT_TYPE)).filter(
    (d) => d.annotations?.[KEYID_ANNOTATION] === key.keyid,
  );
  if (existingSboms[0] && existingSigs[0]) {
    return {
      sbom: existingSboms[0],
      signature: existingSigs[0],
      files: files.artifact,
      reused: files.reused,
    };
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
  return { sbom, signature, files: files.artifact, reused: false };
}

/**
 * Attaches the manifest of the image's files unless one is: computed from its layers, on top of
 * its base image's manifest when it extends that image's layers (so an app release reads only its
 * own layers).
 */
async function attachFiles(
  store: OciStore,
  image: Descriptor,
  created: string,
): Promise<{ readonly artifact: Descriptor; readonly reused: boolean }> {
  const [existing] = await store.referrers(image.digest, FILES_ARTIFACT_TYPE);
  if (existing) return { artifact: existing, reused: true };
  const manifest = await store.getManifest(image.digest);
  const baseDigest = manifest.annotations?.[Annotation.BaseDigest] as Digest | undefined;
  let below: { readonly files: FilesArtifact['files']; readonly layers: number } | undefined;
  if (baseDigest) {
    const base = await attachedFiles(store, baseDigest).catch(() => undefined);
    const baseLayers = (await store.getManifest(baseDigest).catch(() => undefined))?.layers;
    if (base && baseLayers?.every((l, i) => manifest.layers[i]?.digest === l.digest)) {
      below = { files: base.files, layers: baseLayers.length };
    }
  }
  const blobs: Buffer[] = [];
  for (const layer of manifest.layers.slice(below?.layers ?? 0))
    blobs.push(await store.getBlob(layer.digest));
  const body: FilesArtifact = {
    image: image.digest,
    files: await filesOfLayers(blobs, below ? { onto: below.files } : {}),
  };
  const artifact = await store.attach(image, {
    artifactType: FILES_ARTIFACT_TYPE,
    mediaType: FILES_ARTIFACT_TYPE,
    data: canonicalJson(body),
    annotations: { 'org.opencontainers.image.created': created },
  });
  return { artifact, reused: false };
}
