import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { IntegrityError, ValidationError } from '../errors/index.js';
import { sha256Digest, type Digest } from '../oci/index.js';

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

/** An ed25519 signing key and its id (the sha256 of its public key in SPKI DER). */
export interface SigningKey {
  readonly keyid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicKeyPem: string;
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
 * Loads the signing key from `keysDir` (`signing.key`, PKCS#8 PEM, mode 0600), creating an ed25519
 * pair on first use. The public half is written beside it as `signing.pub` for others to trust.
 */
export async function loadOrCreateSigningKey(keysDir: string): Promise<SigningKey> {
  const keyFile = path.join(keysDir, 'signing.key');
  let pem: string | undefined;
  try {
    pem = await readFile(keyFile, 'utf8');
  } catch {
    pem = undefined;
  }
  if (pem === undefined) {
    await mkdir(keysDir, { recursive: true, mode: 0o700 });
    const pair = generateKeyPairSync('ed25519');
    pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const tmp = `${keyFile}.tmp-${process.pid}`;
    await writeFile(tmp, pem, { mode: 0o600 });
    await rename(tmp, keyFile);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new ValidationError(keyFile, [
      {
        path: '',
        message: `is not a PEM private key: ${(err as Error).message}`,
        fix: 'restore it, or move it away to have a new key made',
      },
    ]);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new ValidationError(keyFile, [
      {
        path: '',
        message: `holds a ${privateKey.asymmetricKeyType} key, not ed25519`,
        fix: 'replace it with an ed25519 key',
      },
    ]);
  }
  const publicKey = createPublicKey(privateKey);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const pubFile = path.join(keysDir, 'signing.pub');
  const existingPub = await readFile(pubFile, 'utf8').catch(() => undefined);
  if (existingPub !== publicKeyPem) {
    await writeFile(`${pubFile}.tmp-${process.pid}`, publicKeyPem);
    await rename(`${pubFile}.tmp-${process.pid}`, pubFile);
  }
  return { keyid: keyId(publicKey), privateKey, publicKey, publicKeyPem };
}

/** Signs a manifest digest, returning a DSSE envelope. ed25519 is deterministic: same key, same envelope. */
export function signManifest(key: SigningKey, name: string, manifestDigest: Digest): DsseEnvelope {
  const statement: SignaturePayload = { image: { manifestDigest, name } };
  const payload = Buffer.from(JSON.stringify(statement));
  const sig = sign(null, pae(SIGNATURE_PAYLOAD_TYPE, payload), key.privateKey);
  return {
    payloadType: SIGNATURE_PAYLOAD_TYPE,
    payload: payload.toString('base64'),
    signatures: [{ keyid: key.keyid, sig: sig.toString('base64') }],
  };
}

/**
 * Verifies an envelope against trusted public keys (PEM) and the digest it must cover. Returns the
 * id of the key that signed; throws IntegrityError naming what failed.
 */
export function verifyEnvelope(
  envelope: DsseEnvelope,
  trusted: readonly string[],
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
  if (statement.image?.manifestDigest !== manifestDigest) {
    throw new IntegrityError(
      `signature covers ${String(statement.image?.manifestDigest)}, not ${manifestDigest}`,
    );
  }
  const message = pae(envelope.payloadType, payload);
  for (const pem of trusted) {
    const publicKey = createPublicKey(pem);
    const id = keyId(publicKey);
    for (const s of envelope.signatures) {
      if (s.keyid === id && verify(null, message, publicKey, Buffer.from(s.sig, 'base64'))) return id;
    }
  }
  throw new IntegrityError(
    `no signature by a trusted key (signed by ${envelope.signatures.map((s) => s.keyid).join(', ') || 'nobody'})`,
  );
}
