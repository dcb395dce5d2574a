/**
 * Image signatures as kiln writes them: DSSE envelopes (ed25519) whose payload names an image's
 * manifest digest, attached to the image in the store as OCI referrers. Verifying lives here,
 * below both the bakery, which signs, and the fleet, which refuses an image no trusted key signed.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { IntegrityError, ValidationError, wrap } from '../errors/index.js';
import { sha256Digest } from './digest.js';
import type { OciStore } from './layout.js';
import type { Digest } from './types.js';

/** DSSE's payload type for kiln's image signatures. */
export const SIGNATURE_PAYLOAD_TYPE = 'application/vnd.kiln.image-signature.v1+json';
/** The artifact type of a signature attached to an image in the store. */
export const SIGNATURE_ARTIFACT_TYPE = 'application/vnd.dsse.envelope.v1+json';

/** A DSSE envelope (https://github.com/secure-systems-lab/dsse). */
export interface DsseEnvelope {
  readonly payloadType: string;
  /** base64 of the payload. */
  readonly payload: string;
  readonly signatures: readonly { readonly keyid: string; readonly sig: string }[];
}

/** What a kiln signature states: this manifest digest is the image of this name. */
export interface SignaturePayload {
  readonly image: { readonly name: string; readonly manifestDigest: Digest };
}

/** A public key trusted to sign images, and where it came from (named in messages). */
export interface TrustedKey {
  /** `sha256:` of the key's SPKI DER bytes, as {@link keyId} gives it. */
  readonly keyid: string;
  readonly publicKey: KeyObject;
  /** The file it was read from, or a short description such as `inline PEM`. */
  readonly source: string;
}

/** One signature attached to an image, as found in the store and checked. */
export interface FoundSignature {
  /** The digest of the signature's artifact manifest. */
  readonly artifact: Digest;
  /** The key ids the envelope names (what it claims, verified or not). */
  readonly keyids: readonly string[];
  /** The id of the trusted key it verified against; absent when it did not verify. */
  readonly verifiedBy?: string;
  /** Why it did not verify; absent when it did. */
  readonly problem?: string;
}

/** DSSE's pre-authentication encoding: what is actually signed. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType);
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `),
    type,
    Buffer.from(` ${payload.length} `),
    payload,
  ]);
}

/** The id of a public key: `sha256:` of its SPKI DER bytes. */
export function keyId(publicKey: KeyObject): string {
  return sha256Digest(publicKey.export({ type: 'spki', format: 'der' }));
}

/**
 * Reads an ed25519 public key in PEM (SPKI, `-----BEGIN PUBLIC KEY-----`). A ValidationError names
 * `source` (a file, or the config field of an inline key) when it is anything else.
 *
 * @example
 * const key = trustedKey(await readFile('keys/ci.pub', 'utf8'), 'keys/ci.pub');
 */
export function trustedKey(pem: string, source: string): TrustedKey {
  // createPublicKey would derive the public half of a private key: refuse to read secrets at all.
  if (pem.includes('PRIVATE KEY')) {
    throw new ValidationError(source, [
      {
        path: '',
        message: 'is a private key',
        fix: 'give its public half (signing.pub) and keep the private key to the signer',
      },
    ]);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (err) {
    throw new ValidationError(source, [
      {
        path: '',
        message: `is not a PEM public key: ${(err as Error).message}`,
        fix: "give the signer's signing.pub (-----BEGIN PUBLIC KEY-----), never the private key",
      },
    ]);
  }
  if (publicKey.type !== 'public' || publicKey.asymmetricKeyType !== 'ed25519') {
    throw new ValidationError(source, [
      {
        path: '',
        message: `holds a ${publicKey.asymmetricKeyType ?? 'unknown'} ${publicKey.type} key; kiln signs with ed25519 public keys`,
        fix: "give the signer's signing.pub, an ed25519 public key",
      },
    ]);
  }
  return { keyid: keyId(publicKey), publicKey, source };
}

/**
 * Verifies an envelope against trusted public keys (PEM text or key objects) and the digest it
 * must cover. Returns the id of the key that signed; throws IntegrityError naming what failed.
 */
export function verifyEnvelope(
  envelope: DsseEnvelope,
  trusted: readonly (string | KeyObject)[],
  manifestDigest: Digest,
): string {
  if (envelope.payloadType !== SIGNATURE_PAYLOAD_TYPE) {
    throw new IntegrityError(
      `signature has payload type ${envelope.payloadType}, expected ${SIGNATURE_PAYLOAD_TYPE}`,
    );
  }
  const payload = Buffer.from(envelope.payload, 'base64');
  let statement: SignaturePayload;
  try {
    statement = JSON.parse(payload.toString('utf8')) as SignaturePayload;
  } catch {
    throw new IntegrityError('signature payload is not JSON');
  }
  if (statement?.image?.manifestDigest !== manifestDigest) {
    throw new IntegrityError(
      `signature covers ${String(statement?.image?.manifestDigest)}, not ${manifestDigest}`,
    );
  }
  const message = pae(envelope.payloadType, payload);
  for (const key of trusted) {
    const publicKey = typeof key === 'string' ? createPublicKey(key) : key;
    const id = keyId(publicKey);
    for (const s of envelope.signatures) {
      if (s.keyid === id && verify(null, message, publicKey, Buffer.from(s.sig, 'base64'))) return id;
    }
  }
  throw new IntegrityError(
    `no signature by a trusted key (signed by ${envelope.signatures.map((s) => s.keyid).join(', ') || 'nobody'})`,
  );
}

/**
 * Every signature attached to `manifestDigest` in `store`, each checked against `trusted`: the
 * envelope must be a kiln image signature whose payload names this very digest, signed by one of
 * the keys. A signature that does not verify is returned with its `problem`, not thrown, so a
 * caller can say everything that was found; a damaged store (a blob that does not match its
 * digest) still throws IntegrityError.
 */
export async function checkImageSignatures(
  store: OciStore,
  manifestDigest: Digest,
  trusted: readonly TrustedKey[],
): Promise<FoundSignature[]> {
  const found: FoundSignature[] = [];
  const keys = trusted.map((k) => k.publicKey);
  for (const artifact of await store.referrers(manifestDigest, SIGNATURE_ARTIFACT_TYPE)) {
    let envelope: DsseEnvelope | undefined;
    try {
      const manifest = await store.getManifest(artifact.digest);
      const layer = manifest.layers[0];
      envelope = layer === undefined ? undefined : asEnvelope(await store.getBlob(layer.digest));
    } catch (err) {
      throw wrap(`reading signature ${artifact.digest} of ${manifestDigest}`, err);
    }
    if (envelope === undefined) {
      found.push({ artifact: artifact.digest, keyids: [], problem: 'is not a DSSE envelope' });
      continue;
    }
    const keyids = envelope.signatures.map((s) => s.keyid);
    try {
      found.push({
        artifact: artifact.digest,
        keyids,
        verifiedBy: verifyEnvelope(envelope, keys, manifestDigest),
      });
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      found.push({ artifact: artifact.digest, keyids, problem: err.message });
    }
  }
  return found;
}

/** The envelope in `data`, or undefined when it is not one (not JSON, or fields of the wrong type). */
function asEnvelope(data: Buffer): DsseEnvelope | undefined {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
  const e = value as Partial<DsseEnvelope> | null;
  if (
    typeof e?.payloadType !== 'string' ||
    typeof e.payload !== 'string' ||
    !Array.isArray(e.signatures) ||
    !e.signatures.every((s) => typeof s?.keyid === 'string' && typeof s.sig === 'string')
  ) {
    return undefined;
  }
  return e as DsseEnvelope;
}
