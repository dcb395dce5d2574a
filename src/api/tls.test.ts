import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { nodeTransport } from '../oci/index.js';
import { ApiClient } from './client.js';
import { readConnection, writeAdminToken, writeServerFile } from './connect.js';
import { startControlPlane } from './control-plane.js';
import { serve } from './testkit.js';
import { makeSelfSigned, readCaFile, readTlsFiles, type SelfSignedCert } from './tls.js';

let dir: string;
let server: SelfSignedCert;
let other: SelfSignedCert;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-tls-'));
  [server, other] = await Promise.all([makeSelfSigned(dir, 'server', 1), makeSelfSigned(dir, 'other', 1)]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

/** What `promise` rejects with; fails the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

describe('readTlsFiles', () => {
  it('reads a certificate and its key', async () => {
    const tls = await readTlsFiles({ certFile: server.certFile, keyFile: server.keyFile });
    expect(tls).toEqual({ cert: server.cert, key: server.key });
  });

  it('names each missing file, with the fix', async () => {
    const err = await rejection(
      readTlsFiles({ certFile: path.join(dir, 'nope.crt'), keyFile: path.join(dir, 'nope.key') }),
    );
    expect(err).toBeInstanceOf(ValidationError);
    const { issues } = err as ValidationError;
    expect(issues.map((i) => [i.path, i.message])).toEqual([
      ['--tls-cert', `${path.join(dir, 'nope.crt')} does not exist`],
      ['--tls-key', `${path.join(dir, 'nope.key')} does not exist`],
    ]);
    expect(issues[0]!.fix).toContain('openssl req -x509');
  });

  it('refuses files that are not PEM, a key of another certificate and an expired certificate', async () => {
    const junk = path.join(dir, 'junk.pem');
    await writeFile(junk, 'not a certificate\n');
    const notPem = (await rejection(readTlsFiles({ certFile: junk, keyFile: junk }))) as ValidationError;
    expect(notPem.issues.map((i) => [i.path, i.message.split(' (')[0]])).toEqual([
      ['--tls-cert', `${junk} is not a PEM certificate`],
      ['--tls-key', `${junk} is not a usable PEM private key`],
    ]);
    const mismatch = (await rejection(
      readTlsFiles({ certFile: server.certFile, keyFile: other.keyFile }),
    )) as ValidationError;
    expect(mismatch.issues).toEqual([
      {
        path: '--tls-key',
        message: `${other.keyFile} is not the private key of the certificate in ${server.certFile}`,
        fix: 'give the key the certificate was made with, or make both again together',
      },
    ]);
    const later = new Date(Date.now() + 3 * 86_400_000);
    const expired = (await rejection(
      readTlsFiles({ certFile: server.certFile, keyFile: server.keyFile }, later),
    )) as ValidationError;
    expect(expired.issues[0]?.message).toMatch(new RegExp(`^${server.certFile} expired on `));
    expect(expired.issues[0]?.fix).toMatch(/^renew it/);
  });

  it('is checked before the control plane starts anything', async () => {
    const home = path.join(dir, 'project', '.kiln');
    const err = await rejection(
      startControlPlane({
        home,
        services: async () => [],
        tls: { certFile: server.certFile, keyFile: path.join(dir, 'missing.key') },
      }),
    );
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toContain(`${path.join(dir, 'missing.key')} does not exist`);
    expect(existsSync(path.join(home, 'state.db'))).toBe(false);
  });
});

describe('the API over HTTPS', () => {
  it('serves https:// to a client that trusts the certificate, and tells one that does not how to', async () => {
    const { api, tokens } = await serve(undo, { tls: server });
    expect(api.url).toBe(`https://127.0.0.1:${api.port}`);
    const client = new ApiClient({ url: api.url, token: tokens.reader, ca: server.cert });
    expect(await client.health()).toMatchObject({ ok: true });
    expect(await client.status()).toHaveLength(1);
    const untrusting = await rejection(new ApiClient({ url: api.url, token: tokens.reader }).status());
    expect(untrusting).toBeInstanceOf(ValidationError);
    expect((untrusting as ValidationError).issues[0]).toMatchObject({
      path: 'ca',
      message: expect.stringMatching(
        /^its TLS certificate is not trusted \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED)/,
      ),
      fix: expect.stringContaining('--ca FILE or set KILN_CA'),
    });
    const wrongCa = await rejection(
      new ApiClient({ url: api.url, token: tokens.reader, ca: other.cert }).status(),
    );
    expect(wrongCa).toBeInstanceOf(ValidationError);
    // Plain HTTP is not answered on the HTTPS port.
    await expect(fetch(api.url.replace('https:', 'http:') + '/v1/health')).rejects.toThrow();
  });

  it('keeps the API and the dashboard behind tokens, and marks the session cookie Secure', async () => {
    const { api, tokens } = await serve(undo, { tls: server });
    const { transport, close } = nodeTransport({ ca: server.cert });
    undo.push(close);
    const send = (method: string, p: string, headers: Record<string, string> = {}, body?: string) =>
      transport({
        method,
        url: new URL(p, api.url),
        headers,
        ...(body === undefined ? {} : { body: Buffer.from(body) }),
      });
    expect((await send('GET', '/v1/status')).status).toBe(401);
    const login = await send(
      'POST',
      '/ui/login',
      { 'content-type': 'application/x-www-form-urlencoded' },
      new URLSearchParams({ token: tokens.reader }).toString(),
    );
    expect(login.status).toBe(303);
    expect(login.headers['set-cookie']).toBe(
      `kiln_session=${tokens.reader}; HttpOnly; SameSite=Strict; Path=/ui; Secure`,
    );
  });
});

describe('readConnection and TLS', () => {
  it("trusts server.json's ca for its URL, and --ca or KILN_CA over it", async () => {
    const home = path.join(dir, 'conn', '.kiln');
    await writeServerFile(home, { url: 'https://127.0.0.1:7443', pid: process.pid, ca: server.certFile });
    await writeAdminToken(home, 'kiln_secret');
    expect(await readConnection(home, {})).toEqual({
      url: 'https://127.0.0.1:7443',
      token: 'kiln_secret',
      ca: server.cert,
    });
    expect((await readConnection(home, { KILN_CA: other.certFile })).ca).toEqual(other.cert);
    expect((await readConnection(home, { KILN_CA: other.certFile }, { ca: server.certFile })).ca).toEqual(
      server.cert,
    );
    // A URL from elsewhere does not take server.json's certificate.
    expect(
      (await readConnection(home, { KILN_SERVER: 'https://kiln.example:7443', KILN_TOKEN: 't' })).ca,
    ).toBeUndefined();
    const missing = await rejection(readConnection(home, {}, { ca: path.join(dir, 'gone.pem') }));
    expect(missing).toBeInstanceOf(ValidationError);
    expect((missing as ValidationError).issues[0]).toMatchObject({
      path: '--ca',
      message: `${path.join(dir, 'gone.pem')} does not exist`,
      fix: expect.stringContaining("point --ca at the server's certificate"),
    });
  });

  it('refuses a CA file that holds no certificate', async () => {
    const err = await rejection(readCaFile(server.keyFile, 'KILN_CA'));
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toContain(`[KILN_CA] ${server.keyFile} is not a PEM certificate`);
  });
});
