import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { loadConfig } from './load.js';
import { serviceSchema } from './service.js';
import { trustKeyKind } from './trust.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const ed25519 = generateKeyPairSync('ed25519');
const PUBLIC_PEM = ed25519.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const PRIVATE_PEM = ed25519.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const RSA_PEM = generateKeyPairSync('rsa', { modulusLength: 1024 })
  .publicKey.export({ type: 'spki', format: 'pem' })
  .toString();

function trustIssues(keys: unknown): { path: string; message: string }[] {
  const parsed = serviceSchema.safeParse({ name: 'web', image: DIGEST, port: 8080, trust: { keys } });
  return parsed.success
    ? []
    : parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

describe('trust', () => {
  it('is absent unless declared: the project key is trusted then', () => {
    expect(serviceSchema.parse({ name: 'web', image: DIGEST, port: 8080 }).trust).toBeUndefined();
  });

  it('takes key files, inline PEM public keys and key ids', () => {
    expect(trustIssues(['keys/ci.pub', PUBLIC_PEM, `sha256:${'0'.repeat(64)}`])).toEqual([]);
    expect(['keys/ci.pub', PUBLIC_PEM, `sha256:${'0'.repeat(64)}`].map(trustKeyKind)).toEqual([
      'file',
      'pem',
      'keyid',
    ]);
  });

  it('refuses an empty list, malformed key ids, private keys and keys kiln cannot sign with, each by its index', () => {
    expect(trustIssues([])).toEqual([
      { path: 'trust.keys', message: expect.stringContaining('an empty list trusts no key') as string },
    ]);
    expect(
      trustIssues(['sha256:abc', PRIVATE_PEM, RSA_PEM, '-----BEGIN PUBLIC KEY-----\nnope\n', '']),
    ).toEqual([
      { path: 'trust.keys.0', message: expect.stringContaining('a key id is "sha256:" and 64') as string },
      { path: 'trust.keys.1', message: expect.stringContaining('is a private key') as string },
      {
        path: 'trust.keys.2',
        message: expect.stringContaining('is a rsa key; kiln signs with ed25519') as string,
      },
      { path: 'trust.keys.3', message: expect.stringContaining('is not a PEM public key') as string },
      { path: 'trust.keys.4', message: expect.stringContaining('must be a key file path') as string },
    ]);
    expect(trustIssues('keys/ci.pub')).toHaveLength(1);
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-trust-spec-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('makes key file paths absolute against the config file, and keeps PEM and key ids as written', async () => {
    const id = `sha256:${'0'.repeat(64)}`;
    const file = path.join(dir, 'kiln.yaml');
    await writeFile(
      file,
      `services:\n  - name: web\n    image: "${DIGEST}"\n    port: 8080\n    trust:\n      keys:\n        - keys/ci.pub\n        - /etc/kiln/ops.pub\n        - "${id}"\n        - ${JSON.stringify(PUBLIC_PEM)}\n`,
    );
    const { stack } = await loadConfig(file);
    expect(stack.services[0]!.trust?.keys).toEqual([
      path.join(dir, 'keys/ci.pub'),
      '/etc/kiln/ops.pub',
      id,
      PUBLIC_PEM,
    ]);
  });

  it('names the field and line of a bad key', async () => {
    const file = path.join(dir, 'kiln.yaml');
    await writeFile(
      file,
      `services:\n  - name: web\n    image: "${DIGEST}"\n    port: 8080\n    trust: { keys: [] }\n`,
    );
    const err = await loadConfig(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(
      /\[services\[0\]\.trust\.keys\] line 5: an empty list trusts no key/,
    );
  });
});
