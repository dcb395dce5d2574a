/**
 * Fixtures for the tests of kiln's own registry (`src/api/registry-*.ts`): an API server whose registry
 * serves a temp store holding a tiny image, and raw HTTP requests sent exactly as written.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OciStore } from '../../src/oci/index.js';
import { buildTinyImage } from './oci-fixtures.js';
import { serve as serveFake } from '../../src/api/testkit.js';

/** An answer to a raw request (the path is sent exactly as given: no URL normalising). */
export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  code: () => string;
}

/** Sends `method path` exactly, with a bearer token and body when given. */
export function raw(
  url: string,
  method: string,
  path: string,
  init: { token?: string; body?: Buffer | string; headers?: Record<string, string> } = {},
): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: hostname,
        port,
        method,
        path,
        headers: {
          ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
          ...(init.body !== undefined ? { 'content-length': String(Buffer.byteLength(init.body)) } : {}),
          ...init.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            code: () => (JSON.parse(body.toString('utf8')) as { errors: { code: string }[] }).errors[0]!.code,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** A server whose registry serves a temp store holding a tiny image tagged `web`, with an SBOM. */
export async function registryFixture(undo: (() => unknown)[]) {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-registry-test-'));
  undo.push(() => rm(dir, { recursive: true, force: true }));
  const store = await OciStore.open(join(dir, 'store'));
  const image = await buildTinyImage(store, 'web');
  const sbom = await store.attach(image.descriptor, {
    artifactType: 'application/vnd.cyclonedx+json',
    mediaType: 'application/vnd.cyclonedx+json',
    data: Buffer.from('{"bomFormat":"CycloneDX"}'),
  });
  const sig = await store.attach(image.descriptor, {
    artifactType: 'application/vnd.dev.kiln.signature',
    mediaType: 'application/json',
    data: Buffer.from('{"sig":1}'),
  });
  const s = await serveFake(undo, { registry: store });
  // `store` is the image store; `state` the state store, with the tokens and the audit log.
  return { ...s, state: s.store, dir, store, image, sbom, sig, read: s.tokens.reader, deploy: s.tokens.ci };
}
