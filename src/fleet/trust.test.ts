import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { chmod, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildTinyImage } from '../../test/support/oci-fixtures.js';
import { IntegrityError, ValidationError } from '../errors/index.js';
import {
  BlobChecker,
  canonicalJson,
  keyId,
  OciStore,
  pae,
  SIGNATURE_ARTIFACT_TYPE,
  SIGNATURE_PAYLOAD_TYPE,
  type Descriptor,
  type Digest,
} from '../oci/index.js';
import { serviceSchema, type ServiceInput, type ServiceSpec } from '../spec/index.js';
import { DIGEST_UNSIGNED, Harness } from './testkit.js';
import { admitImage, type AdmissionContext } from './trust.js';

interface Key {
  readonly keyid: string;
  readonly privateKey: KeyObject;
  readonly pem: string;
}

function newKey(): Key {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    keyid: keyId(publicKey),
    privateKey,
    pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Attaches a kiln signature by `key` to `image`, its payload naming `names` (default: the image). */
async function signImage(store: OciStore, image: Descriptor, key: Key, names: Digest = image.digest) {
  const payload = Buffer.from(JSON.stringify({ image: { name: 'app', manifestDigest: names } }));
  const sig = sign(null, pae(SIGNATURE_PAYLOAD_TYPE, payload), key.privateKey);
  const envelope = {
    payloadType: SIGNATURE_PAYLOAD_TYPE,
    payload: payload.toString('base64'),
    signatures: [{ keyid: key.keyid, sig: sig.toString('base64') }],
  };
  return store.attach(image, {
    artifactType: SIGNATURE_ARTIFACT_TYPE,
    mediaType: SIGNATURE_ARTIFACT_TYPE,
    data: canonicalJson(envelope),
  });
}

function service(input: Partial<ServiceInput> = {}): ServiceSpec {
  return serviceSchema.parse({ name: 'web', image: 'app:1', port: 8080, ...input });
}

let home: string;
let ctx: AdmissionContext;
let project: Key;
let other: Key;
let image: Descriptor;

beforeEach(async () => {
  home = await mkdtemp(path.join(tmpdir(), 'kiln-trust-'));
  const keysDir = path.join(home, 'keys');
  await mkdir(keysDir);
  project = newKey();
  other = newKey();
  await writeFile(path.join(keysDir, 'signing.pub'), project.pem);
  const store = await OciStore.open(path.join(home, 'store'));
  image = (await buildTinyImage(store, 'app:1')).descriptor;
  ctx = { store, keysDir, checker: new BlobChecker() };
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

async function refusal(svc: ServiceSpec, digest: Digest = image.digest): Promise<Error> {
  const err = await admitImage(ctx, svc, 'app:1', digest).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

/** Flips the last byte of a blob on disk, as a bad disk or an intruder would. */
async function flipLastByte(store: OciStore, digest: Digest): Promise<void> {
  const file = store.blobPath(digest);
  await chmod(file, 0o644);
  const fh = await open(file, 'r+');
  try {
    const { size } = await fh.stat();
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, size - 1);
    byte[0] = byte[0]! ^ 1;
    await fh.write(byte, 0, 1, size - 1);
  } finally {
    await fh.close();
  }
}

describe('admitting an image at deploy', () => {
  it("admits an image the project's own key signed when the service declares no trust", async () => {
    await signImage(ctx.store, image, project);
    const admitted = await admitImage(ctx, service(), 'app:1', image.digest);
    expect(admitted).toEqual({
      keyid: project.keyid,
      keySource: path.join(ctx.keysDir, 'signing.pub'),
      blobs: 3,
      hashed: 3,
    });
  });

  it('refuses an image signed by another key, naming the service, the digest, the keys found and trusted, and the fix', async () => {
    await signImage(ctx.store, image, other);
    const err = await refusal(service());
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toContain(
      `web: refusing to deploy app:1 (${image.digest}): no signature by a key the service trusts`,
    );
    expect(err.message).toContain(`signed by: ${other.keyid}`);
    expect(err.message).toContain(`trusted: ${project.keyid} (${path.join(ctx.keysDir, 'signing.pub')})`);
    expect(err.message).toMatch(
      /fix: bake and sign the image with a trusted key .* add the key that signed it .* to web's trust\.keys/,
    );
  });

  it('refuses an unsigned image', async () => {
    const err = await refusal(service());
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toContain('it has no signature');
    expect(err.message).toContain('signed by: nobody');
  });

  it('refuses a signature whose payload names another image, and one whose bytes were changed', async () => {
    // Given a trusted key's genuine signature of another digest, attached to this image
    const elsewhere = `sha256:${'cd'.repeat(32)}` as const;
    await signImage(ctx.store, image, project, elsewhere);
    const forged = await refusal(service());
    expect(forged).toBeInstanceOf(IntegrityError);
    expect(forged.message).toContain(`signature covers ${elsewhere}, not ${image.digest}`);

    // And a signature of a trusted key over a payload that was altered afterwards
    const tamperedStore = await OciStore.open(path.join(home, 'tampered'));
    const tampered = (await buildTinyImage(tamperedStore, 'app:1')).descriptor;
    const payload = Buffer.from(JSON.stringify({ image: { name: 'app', manifestDigest: tampered.digest } }));
    const sig = sign(
      null,
      pae(SIGNATURE_PAYLOAD_TYPE, Buffer.from(`${payload.toString()} `)),
      project.privateKey,
    );
    await tamperedStore.attach(tampered, {
      artifactType: SIGNATURE_ARTIFACT_TYPE,
      mediaType: SIGNATURE_ARTIFACT_TYPE,
      data: canonicalJson({
        payloadType: SIGNATURE_PAYLOAD_TYPE,
        payload: payload.toString('base64'),
        signatures: [{ keyid: project.keyid, sig: sig.toString('base64') }],
      }),
    });
    const err = await admitImage({ ...ctx, store: tamperedStore }, service(), 'app:1', tampered.digest).catch(
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain(`no signature by a trusted key (signed by ${project.keyid})`);
  });

  it('trusts exactly the keys listed, by file, inline PEM or key id, instead of the project key', async () => {
    await signImage(ctx.store, image, other);
    const file = path.join(home, 'ci.pub');
    await writeFile(file, other.pem);
    expect(
      (await admitImage(ctx, service({ trust: { keys: [file] } }), 'app:1', image.digest)).keySource,
    ).toBe(file);
    expect(
      (await admitImage(ctx, service({ trust: { keys: [other.pem] } }), 'app:1', image.digest)).keyid,
    ).toBe(other.keyid);
    // A key id names a *.pub file in the project's keys directory.
    await writeFile(path.join(ctx.keysDir, 'ci.pub'), other.pem);
    const byId = await admitImage(ctx, service({ trust: { keys: [other.keyid] } }), 'app:1', image.digest);
    expect(byId.keySource).toBe(path.join(ctx.keysDir, 'ci.pub'));

    // An explicit trust replaces the default: the project's own key is trusted only when listed.
    const mine = await OciStore.open(path.join(home, 'mine'));
    const own = (await buildTinyImage(mine, 'app:1', 'own')).descriptor;
    await signImage(mine, own, project);
    const err = await admitImage(
      { ...ctx, store: mine },
      service({ trust: { keys: [file] } }),
      'app:1',
      own.digest,
    ).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toContain(`signed by: ${project.keyid}`);
    expect((err as Error).message).toContain(`trusted: ${other.keyid} (${file})`);
  });

  it('says which trusted keys cannot be read, all at once', async () => {
    await signImage(ctx.store, image, project);
    const unknown = `sha256:${'0'.repeat(64)}`;
    const err = await refusal(service({ trust: { keys: [path.join(home, 'missing.pub'), unknown] } }));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual(['keys[0]', 'keys[1]']);
    expect(err.message).toMatch(/\[keys\[0\]\] .*missing\.pub cannot be read \(ENOENT\)/);
    expect(err.message).toContain(
      `[keys[1]] no public key with id ${unknown} among the *.pub files in ${ctx.keysDir}`,
    );
  });

  it('refuses a default-trust deploy when the project has no signing key yet', async () => {
    await signImage(ctx.store, image, project);
    await rm(path.join(ctx.keysDir, 'signing.pub'));
    const err = await refusal(service());
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(
      /declares no trust, .*signing\.pub does not exist\n {2}fix: bake the image in this project/,
    );
  });

  it('refuses an image with one flipped byte in a layer, naming the blob, even after admitting it before', async () => {
    await signImage(ctx.store, image, project);
    const layer = (await ctx.store.getManifest(image.digest)).layers[1]!;
    // Remembering files changed up to now (no racy margin), so the second admission hashes nothing.
    ctx = { ...ctx, checker: new BlobChecker({ racyMarginMs: 0, clock: () => Date.now() + 1000 }) };
    expect((await admitImage(ctx, service(), 'app:1', image.digest)).hashed).toBe(3);
    expect((await admitImage(ctx, service(), 'app:1', image.digest)).hashed).toBe(0);

    // File times tick coarsely; the margin this checker was told to skip exists for that reason.
    await sleep(50);
    await flipLastByte(ctx.store, layer.digest);
    const err = await refusal(service());
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toContain(
      `web: refusing to deploy app:1 (${image.digest}): layer 2 of 2: blob ${layer.digest}`,
    );
    expect(err.message).toContain('does not match its digest');
    expect(err.message).toContain('fix: delete that file and bake the image again');
  });
});

describe('deploy', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  it('records nothing for an image the catalog does not admit', async () => {
    // Given a service, and an image its catalog refuses
    h = new Harness();
    h.declare({ name: 'web', image: DIGEST_UNSIGNED });

    // When it is deployed, the refusal is the catalog's, and no service, release or rollout is recorded
    await expect(h.deploy('web')).rejects.toThrow(IntegrityError);
    expect(h.store.services.find('web')).toBeUndefined();
    expect(h.store.releases.list('web')).toEqual([]);
    expect(h.store.rollouts.list('web', 10)).toEqual([]);

    // And an admitted image deploys as ever
    expect((await h.deploy('web', { image: 'v1' })).release.name).toBe('r1');
  });
});
