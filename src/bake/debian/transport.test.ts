import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError, UnavailableError } from '../../errors/index.js';
import { fetchBytes, writeAtomic } from './transport.js';

describe('fetchBytes', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const status = Number(req.url?.slice(1));
      res.writeHead(Number.isInteger(status) && status >= 200 ? status : 400).end(`body ${req.url}`);
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  });

  const fixes = { notFound: 'the not-found fix', unavailable: 'the unavailable fix' };

  it('returns the body of a 200', async () => {
    expect((await fetchBytes(`${base}/200`, fetch, fixes)).toString()).toBe('body /200');
  });

  it.each([404, 410])('reports a %i as not found, with its fix', async (status) => {
    const err = (await fetchBytes(`${base}/${status}`, fetch, fixes).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toMatch(new RegExp(`^${base}/${status}: ${status} \\w.*: the not-found fix$`));
  });

  it('reports a server error and an unreachable server as unavailable', async () => {
    await expect(fetchBytes(`${base}/503`, fetch, fixes)).rejects.toThrow(
      `${base}/503: 503 Service Unavailable: the unavailable fix`,
    );
    const refused = (): Promise<Response> =>
      Promise.reject(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED') }));
    const err = (await fetchBytes(`${base}/x`, refused, { notFound: 'n' }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toBe(
      `cannot fetch ${base}/x: connect ECONNREFUSED: check the network and the archive URL, and try again`,
    );
  });
});

describe('writeAtomic', () => {
  it('creates directories and leaves no temporary file behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-atomic-'));
    try {
      const file = join(dir, 'a/b/c.txt');
      await writeAtomic(file, 'one');
      await writeAtomic(file, 'two');
      expect(await readFile(file, 'utf8')).toBe('two');
      expect(await readdir(join(dir, 'a/b'))).toEqual(['c.txt']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
