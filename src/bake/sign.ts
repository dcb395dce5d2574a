import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../errors/index.js';
import {
  keyId,
  pae,
  SIGNATURE_PAYLOAD_TYPE,
  type Digest,
  type DsseEnvelope,
  type SignaturePayload,
} from '../oci/index.js';

// Verifying lives in `oci` (the fleet verifies too, and may not import the bakery); signing stays here.
export {
  keyId,
  pae,
  verifyEnvelope,
  SIGNATURE_ARTIFACT_TYPE,
  SIGNATURE_PAYLOAD_TYPE,
  type DsseEnvelope,
  type SignaturePayload,
} from '../oci/index.js';

/** An ed25519 signing key and its id (the sha256 of its public key in SPKI DER). */
export interface SigningKey {
  readonly keyid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicKeyPem: string;
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
