/**
 * `GET /v1/audit/report`, what `kiln audit` is built on: for every service, the image digests its
 * live instances run (with the release each is), who signed each (checked against the keys the
 * service trusts now), its attached CycloneDX SBOM (where it is, how many components, and its
 * packages for the CLI's archive check), and the instances tainted in the last day.
 */
import { SBOM_MEDIA_TYPE } from '../bake/index.js';
import { trustedKeysOf, viewOf } from '../fleet/index.js';
import { checkImageSignatures, type Digest, type OciStore } from '../oci/index.js';
import type { ServiceSpec } from '../spec/index.js';
import { releaseName, type InstanceRecord, type StateStore } from '../state/index.js';
import type {
  RunningImageJson,
  SbomJson,
  SecurityReportJson,
  ServiceAuditJson,
  SignerJson,
  TaintedInstanceJson,
} from './types.js';

/** How far back the report lists tainted instances: a day. */
export const TAINT_WINDOW_MS = 24 * 60 * 60_000;

/** Where the report reads from. */
export interface ReportSources {
  readonly store: StateStore;
  /** The project's image store (`.kiln/store`), opened. */
  readonly images: OciStore;
  /** The project's `.kiln/keys`. */
  readonly keysDir: string;
  readonly now: number;
}

/** The report of every service the control plane knows, sorted by name. */
export async function securityReport(src: ReportSources): Promise<SecurityReportJson> {
  const since = new Date(src.now - TAINT_WINDOW_MS).toISOString();
  const all = src.store.instances.list({ all: true });
  const services: ServiceAuditJson[] = [];
  for (const { name, spec } of src.store.services.list().sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const view = viewOf(src.store, name, src.now);
    const mine = all.filter((i) => i.service === name);
    const live = mine.filter((i) => i.state !== 'stopped');
    const digests = new Map<string, InstanceRecord[]>();
    for (const i of live) digests.set(i.digest, [...(digests.get(i.digest) ?? []), i]);
    if (view.current && !digests.has(view.current.digest)) digests.set(view.current.digest, []);
    const images: RunningImageJson[] = [];
    for (const [digest, instances] of [...digests].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const releases = [...new Set(instances.map((i) => releaseName(i.release)))].sort();
      if (instances.length === 0 && view.current) releases.push(view.current.name);
      images.push({
        digest,
        instances: instances.length,
        releases,
        ...(await signersOf(src, spec as unknown as ServiceSpec, digest as Digest)),
        sbom: await sbomOf(src, digest as Digest),
      });
    }
    const tainted: TaintedInstanceJson[] = mine
      .filter((i) => i.taint !== undefined && i.taint.at >= since)
      .map((i) => ({ id: i.id, release: releaseName(i.release), state: i.state, taint: { ...i.taint! } }));
    services.push({
      service: name,
      ...(view.current ? { release: view.current.name } : {}),
      images,
      tainted,
    });
  }
  return { generatedAt: new Date(src.now).toISOString(), taintedSince: since, services };
}

/** Every signature of `digest`, checked against the keys `service` trusts; the first trusted one is the signer. */
async function signersOf(
  src: ReportSources,
  service: ServiceSpec,
  digest: Digest,
): Promise<Pick<RunningImageJson, 'signer' | 'signers' | 'signerError'>> {
  try {
    const keys = await trustedKeysOf(service, src.keysDir, `${service.name}: checking ${digest}`);
    const found = await checkImageSignatures(src.images, digest, keys);
    const signers: SignerJson[] = found.map((f) => {
      const key = keys.find((k) => k.keyid === f.verifiedBy);
      return key
        ? { keyid: key.keyid, trusted: true, source: key.source }
        : { keyid: f.keyids[0] ?? '(none)', trusted: false };
    });
    return { signer: signers.find((s) => s.trusted) ?? null, signers };
  } catch (err) {
    return { signer: null, signers: [], signerError: err instanceof Error ? err.message : String(err) };
  }
}

/** The SBOM attached to `digest`, or null when there is none (or the store does not have the image). */
async function sbomOf(src: ReportSources, digest: Digest): Promise<SbomJson | null> {
  const [ref] = await src.images.referrers(digest, SBOM_MEDIA_TYPE).catch(() => []);
  if (!ref) return null;
  const artifact = await src.images.getManifest(ref.digest);
  const layer = artifact.layers[0];
  const bom = layer
    ? (JSON.parse((await src.images.getBlob(layer.digest)).toString('utf8')) as {
        components?: {
          name?: unknown;
          version?: unknown;
          properties?: { name?: unknown; value?: unknown }[];
        }[];
      })
    : {};
  const components = bom.components ?? [];
  return {
    digest: ref.digest,
    mediaType: layer?.mediaType ?? SBOM_MEDIA_TYPE,
    artifactType: artifact.artifactType ?? SBOM_MEDIA_TYPE,
    subject: digest,
    store: src.images.dir,
    components: components.length,
    packages: components.map((c) => ({
      name: String(c.name ?? ''),
      version: String(c.version ?? ''),
      suite: String(c.properties?.find((p) => p.name === 'kiln:debian:suite')?.value ?? ''),
    })),
  };
}
