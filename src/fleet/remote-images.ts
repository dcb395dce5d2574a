/**
 * Images a deploy names by registry and digest (`registry/repository@sha256:…`), as
 * `kiln deploy --regions` does after replicating an image to a region's registry: the control
 * plane pulls the image into its store, with its referrers (so its signature comes with it), and
 * then resolves and admits it by digest like any image baked here.
 */
import { readFileSync } from 'node:fs';
import { ValidationError } from '../errors/index.js';
import { parseReference, RegistryClient, type ImageReference, type OciStore } from '../oci/index.js';

/** Opens a client for a registry host (`host[:port]`). */
export type RegistryFactory = (registry: string) => RegistryClient;

/**
 * A client with the credentials in the control plane's environment: `KILN_REGISTRY_USERNAME` and
 * `KILN_REGISTRY_PASSWORD`, and `KILN_REGISTRY_CA` (a PEM file) for a registry with a private CA.
 * Loopback registries may speak plain HTTP; any other must have TLS.
 */
export function registryFromEnv(env: NodeJS.ProcessEnv = process.env): RegistryFactory {
  return (registry) =>
    new RegistryClient({
      registry,
      ...(env.KILN_REGISTRY_USERNAME ? { username: env.KILN_REGISTRY_USERNAME } : {}),
      ...(env.KILN_REGISTRY_PASSWORD ? { password: env.KILN_REGISTRY_PASSWORD } : {}),
      ...(env.KILN_REGISTRY_CA ? { ca: readCa(env.KILN_REGISTRY_CA) } : {}),
    });
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ValidationError('KILN_REGISTRY_CA', [
      {
        path: '',
        message: `cannot read ${file}: ${(err as Error).message}`,
        fix: "point it at the registry CA's PEM file, readable by the kiln server",
      },
    ]);
  }
}

/**
 * The remote reference `ref` names, or undefined when it names an image of the store (a name, or
 * a bare digest). A remote reference must carry a digest: a tag can be moved, a release cannot.
 */
export function remoteReference(ref: string): ImageReference | undefined {
  let parsed: ImageReference;
  try {
    parsed = parseReference(ref);
  } catch {
    return undefined; // not registry/repository…: a name in the store
  }
  if (parsed.digest === undefined) {
    throw new ValidationError(undefined, [
      {
        path: 'image',
        message: `"${ref}" names a registry image by tag, and a tag can be moved`,
        fix: `name it by digest: ${parsed.registry}/${parsed.repository}@sha256:…`,
      },
    ]);
  }
  return parsed;
}

/**
 * The store ref to resolve for `ref`: `ref` itself for a name or digest of the store; for a remote
 * reference, its digest, once the image and its referrers are pulled (every blob verified; blobs
 * the store holds intact are not fetched again).
 */
export async function pullIfRemote(store: OciStore, ref: string, registry: RegistryFactory): Promise<string> {
  const remote = remoteReference(ref);
  if (remote === undefined) return ref;
  const client = registry(remote.registry);
  try {
    const pulled = await client.pullImage(
      { repository: remote.repository, digest: remote.digest! },
      store,
      undefined,
      { referrers: true },
    );
    return pulled.descriptor.digest;
  } finally {
    client.close();
  }
}
