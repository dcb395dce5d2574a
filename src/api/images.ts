/**
 * `GET /v1/images`: the tagged images of the control plane's OCI store, with the packages of their
 * CycloneDX SBOM and who signed them, as `kiln images` reads them.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { listImages, SBOM_MEDIA_TYPE } from '../bake/index.js';
import { Annotation, OciStore, type Digest } from '../oci/index.js';
import type { ImageJson, ImagePackageJson } from './types.js';

/** Where the images live: the project's `homePaths(home).store` and `.keys` directories. */
export interface ImageSource {
  readonly store: string;
  /** Holds `signing.pub`, the key signatures are verified against. */
  readonly keys?: string;
}

/** Every tagged image of `source.store`, sorted by name; [] when there is no store yet. */
export async function imagesJson(source: ImageSource): Promise<ImageJson[]> {
  const store = await OciStore.open(source.store);
  const pub =
    source.keys === undefined
      ? undefined
      : await readFile(path.join(source.keys, 'signing.pub'), 'utf8').catch(() => undefined);
  const summaries = await listImages(store, pub ? [pub] : []);
  const out: ImageJson[] = [];
  for (const s of summaries) {
    const manifest = await store.getManifest(s.digest);
    out.push({
      name: s.name,
      digest: s.digest,
      created: s.created,
      base: s.base,
      baseDigest: manifest.annotations?.[Annotation.BaseDigest] ?? null,
      size: manifest.layers.reduce((n, l) => n + l.size, 0),
      layers: s.layers,
      sbom: s.sbom ? { digest: s.sbom.digest, packages: await sbomPackages(store, s.sbom.digest) } : null,
      signature: s.signature ? { keyid: s.signature.keyid, verified: s.signature.verified } : null,
    });
  }
  return out;
}

async function sbomPackages(store: OciStore, sbom: Digest): Promise<ImagePackageJson[]> {
  const artifact = await store.getManifest(sbom);
  const layer = artifact.layers[0];
  if (layer === undefined || layer.mediaType !== SBOM_MEDIA_TYPE) return [];
  const bom = JSON.parse((await store.getBlob(layer.digest)).toString('utf8')) as {
    components?: { name?: unknown; version?: unknown }[];
  };
  return (bom.components ?? []).map((c) => ({
    name: String(c.name ?? ''),
    version: String(c.version ?? ''),
  }));
}
