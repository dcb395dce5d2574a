import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IntegrityError, ValidationError } from '../errors/index.js';
import { loadOrCreateSigningKey, pae, signManifest, verifyEnvelope } from './sign.js';

const DIGEST = `sha256:${'ab'.repeat(32)}` as const;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('DSSE', () => {
  it('encodes the pre-authentication string as the DSSE spec does', () => {
    // The example from the DSSE protocol document.
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe(
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
  });

  it('creates a key once, keeps it private, and signs deterministically', async () => {
    const k1 = await loadOrCreateSigningKey(dir);
    const k2 = await loadOrCreateSigningKey(dir);
    expect(k2.keyid).toBe(k1.keyid);
    expect((await stat(path.join(dir, 'signing.key'))).mode & 0o777).toBe(0o600);
    expect(signManifest(k1, 'api', DIGEST)).toEqual(signManifest(k2, 'api', DIGEST));
    const pub = await readFile(path.join(dir, 'signing.pub'), 'utf8');
    expect(verifyEnvelope(signManifest(k1, 'api', DIGEST), [pub], DIGEST)).toBe(k1.keyid);
  });

  it('refuses a tampered payload or signature', async () => {
    const key = await loadOrCreateSigningKey(dir);
    const env = signManifest(key, 'api', DIGEST);
    const otherDigest = `sha256:${'cd'.repeat(32)}` as const;
    const forged = {
      ...env,
      payload: Buffer.from(JSON.stringify({ image: { name: 'api', manifestDigest: otherDigest } })).toString(
        'base64',
      ),
    };
    expect(() => verifyEnvelope(forged, [key.publicKeyPem], otherDigest)).toThrow(IntegrityError);
    const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
    sig[0] = sig[0]! ^ 1;
    const flipped = { ...env, signatures: [{ keyid: key.keyid, sig: sig.toString('base64') }] };
    expect(() => verifyEnvelope(flipped, [key.publicKeyPem], DIGEST)).toThrow(
      /no signature by a trusted key/,
    );
  });

  it('says which file is wrong when the key is not a key', async () => {
    await writeFile(path.join(dir, 'signing.key'), 'garbage');
    await expect(loadOrCreateSigningKey(dir)).rejects.toThrow(ValidationError);
    await expect(loadOrCreateSigningKey(dir)).rejects.toThrow(/signing\.key/);
  });
});
