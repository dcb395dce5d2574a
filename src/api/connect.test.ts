import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, UnavailableError, ValidationError } from '../errors/index.js';
import {
  readConnection,
  readServerFile,
  removeServerFile,
  writeAdminToken,
  writeServerFile,
} from './connect.js';

let dir: string;
let home: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-connect-'));
  home = path.join(dir, '.kiln');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A PID above Linux's largest pid_max, so no process has it. */
const GONE_PID = 2 ** 30;

describe('server.json and admin-token', () => {
  it('writes server.json atomically and admin-token as 0600', async () => {
    const now = new Date('2026-01-01T00:00:00.000Z');
    await writeServerFile(home, { url: 'http://127.0.0.1:7070', pid: process.pid }, now);
    await writeAdminToken(home, 'kiln_secret');
    expect(JSON.parse(await readFile(path.join(home, 'server.json'), 'utf8'))).toEqual({
      url: 'http://127.0.0.1:7070',
      pid: process.pid,
      startedAt: '2026-01-01T00:00:00.000Z',
    });
    expect((await stat(path.join(home, 'admin-token'))).mode & 0o777).toBe(0o600);
    expect(await readFile(path.join(home, 'admin-token'), 'utf8')).toBe('kiln_secret\n');
  });

  it('removes server.json, only when it names the given pid', async () => {
    await writeServerFile(home, { url: 'http://127.0.0.1:7070', pid: process.pid });
    await removeServerFile(home, process.pid + 1);
    expect(await readServerFile(home)).toBeDefined();
    await removeServerFile(home, process.pid);
    expect(await readServerFile(home)).toBeUndefined();
    await removeServerFile(home); // nothing there: harmless
  });

  it('refuses a corrupt server.json, naming it and the fix', async () => {
    await writeServerFile(home, { url: 'http://127.0.0.1:7070', pid: process.pid });
    await writeFile(path.join(home, 'server.json'), '{"url": "ftp://x"}');
    const err = await readConnection(home, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).file).toBe(path.join(home, 'server.json'));
    expect((err as ValidationError).issues[0]?.fix).toContain('kiln server');
  });
});

describe('readConnection', () => {
  it('takes each of URL and token from flags, else the environment, else the files', async () => {
    await writeServerFile(home, { url: 'http://127.0.0.1:7070', pid: process.pid });
    await writeAdminToken(home, 'kiln_file');
    expect(await readConnection(home, {})).toEqual({ url: 'http://127.0.0.1:7070', token: 'kiln_file' });
    const env = { KILN_SERVER: 'http://127.0.0.1:8000', KILN_TOKEN: 'kiln_env' };
    expect(await readConnection(home, env)).toEqual({ url: 'http://127.0.0.1:8000', token: 'kiln_env' });
    expect(await readConnection(home, env, { server: 'http://127.0.0.1:9000' })).toEqual({
      url: 'http://127.0.0.1:9000',
      token: 'kiln_env',
    });
    expect(await readConnection(home, { KILN_TOKEN: 'kiln_env' }, { token: 'kiln_flag' })).toEqual({
      url: 'http://127.0.0.1:7070',
      token: 'kiln_flag',
    });
    expect(await readConnection(home, { KILN_SERVER: '', KILN_TOKEN: '' })).toEqual({
      url: 'http://127.0.0.1:7070',
      token: 'kiln_file',
    });
  });

  it('needs no files when flags or environment give both', async () => {
    expect(await readConnection(undefined, { KILN_SERVER: 'http://127.0.0.1:1', KILN_TOKEN: 't' })).toEqual({
      url: 'http://127.0.0.1:1',
      token: 't',
    });
    expect(await readConnection(home, {}, { server: 'http://127.0.0.1:2', token: 'u' })).toEqual({
      url: 'http://127.0.0.1:2',
      token: 'u',
    });
  });

  it('refuses a server that is not an http URL, naming where it came from', async () => {
    const err = await readConnection(undefined, { KILN_SERVER: '127.0.0.1:7070', KILN_TOKEN: 't' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).file).toBe('KILN_SERVER');
    expect((err as ValidationError).issues[0]?.fix).toBe(
      'write it as http://127.0.0.1:PORT (https:// when the server has --tls-cert)',
    );
    await expect(readConnection(undefined, {}, { server: 'ftp://x', token: 't' })).rejects.toThrow(
      /^--server: invalid/,
    );
  });

  it('says to start a server when server.json is missing or its process is gone', async () => {
    await writeAdminToken(home, 'kiln_file');
    const missing = await readConnection(home, {}).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(UnavailableError);
    expect((missing as Error).message).toBe(
      'no kiln server is running for this project (.kiln/server.json missing): start one with `kiln server` or `kiln up`',
    );
    await writeServerFile(home, { url: 'http://127.0.0.1:7070', pid: GONE_PID });
    const gone = await readConnection(home, {}).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(UnavailableError);
    expect((gone as Error).message).toContain(`(pid ${GONE_PID}) is no longer running`);
  });

  it('says where a token comes from when there is none', async () => {
    await writeServerFile(home, { url: 'http://127.0.0.1:7070', pid: process.pid });
    const err = await readConnection(home, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain('.kiln/admin-token is missing or empty');
    expect((err as Error).message).toContain('KILN_TOKEN');
    await expect(readConnection(undefined, { KILN_SERVER: 'http://127.0.0.1:1' })).rejects.toThrow(
      'no API token given: pass --token or set KILN_TOKEN',
    );
  });
});
