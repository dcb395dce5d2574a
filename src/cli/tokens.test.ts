import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  FakeControlPlane,
  makeSelfSigned,
  startApiServer,
  type TokenCreatedJson,
  type TokenJson,
} from '../api/index.js';
import { IN_MEMORY, openState } from '../state/index.js';
import { ExitCode } from './exit.js';
import { fakeServer, kiln, type FakeServer } from './testkit.js';
import { createdText, tokensTable } from './tokens.js';

let server: FakeServer;
let dir: string;
beforeEach(async () => {
  server = await fakeServer();
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-tokens-cli-'));
});
afterEach(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const SECRET_RE = /kiln_[0-9a-f]{12}_[A-Za-z0-9_-]{43}/;

describe('kiln tokens create', () => {
  it('prints the secret once, saying it is not stored, and the secret works at once', async () => {
    const { code, stdout, error } = await kiln('tokens', 'create', 'ci', '--scope', 'deploy', ...server.conn);
    expect(error).toBe('');
    expect(code).toBe(0);
    const secret = SECRET_RE.exec(stdout)?.[0];
    expect(stdout).toBe(
      `token ci created with scope deploy (id ${secret!.slice(5, 17)})\n` +
        'secret, shown this once (kiln stores only its hash and cannot show it again; keep it now):\n' +
        `  ${secret}\n`,
    );
    server.plane.seedService('web');
    const asCi = await kiln('deploy', 'web', '--server', server.api.url, '--token', secret!);
    expect(asCi.code, asCi.error).toBe(0);
    expect(server.plane.calls.at(-1)).toEqual({ method: 'deploy', args: ['web', {}, 'ci'] });
    expect(server.store.audit.since(0).map((a) => [a.actor, a.action, a.target, a.result])).toEqual([
      ['alice', 'token.create', 'ci', 'ok'],
    ]);
  });

  it('prints TokenCreatedJson with --json', async () => {
    const { code, stdout } = await kiln(
      'tokens',
      'create',
      'viewer',
      '--scope',
      'read',
      '--json',
      ...server.conn,
    );
    expect(code).toBe(0);
    const created = JSON.parse(stdout) as TokenCreatedJson;
    expect(created.token).toMatchObject({ name: 'viewer', scopes: ['read'] });
    expect(created.secret).toMatch(SECRET_RE);
    expect(server.store.tokens.verify(created.secret)?.name).toBe('viewer');
  });

  it('needs --scope, one of read, deploy, admin (exit 2), and refuses a name in use', async () => {
    expect((await kiln('tokens', 'create', 'ci', ...server.conn)).code).toBe(ExitCode.Usage);
    expect((await kiln('tokens', 'create', 'ci', '--scope', 'root', ...server.conn)).code).toBe(
      ExitCode.Usage,
    );
    const taken = await kiln('tokens', 'create', 'alice', '--scope', 'read', ...server.conn);
    expect(taken.code).toBe(ExitCode.Usage);
    expect(taken.error).toContain("a token named 'alice' already exists");
  });
});

describe('kiln tokens list', () => {
  it('lists every token without secrets or hashes, and as TokenJson[] with --json', async () => {
    await kiln('tokens', 'create', 'ci', '--scope', 'deploy', ...server.conn);
    await kiln('tokens', 'revoke', 'ci', ...server.conn);
    const { code, stdout } = await kiln('tokens', 'list', ...server.conn);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME +SCOPES +CREATED +REVOKED +ID$/);
    expect(lines[1]).toMatch(/^alice +admin +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +- +[0-9a-f]{12}$/);
    expect(lines[2]).toMatch(/^ci +deploy +\S+ \S+ +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +[0-9a-f]{12}$/);
    expect(stdout).not.toContain('kiln_');
    const json = JSON.parse((await kiln('tokens', 'list', '--json', ...server.conn)).stdout) as TokenJson[];
    expect(json.map((t) => [t.name, t.revokedAt !== undefined])).toEqual([
      ['alice', false],
      ['ci', true],
    ]);
  });

  it('needs an admin token (exit 2, naming the scope)', async () => {
    const reader = server.store.tokens.create('reader', ['read']).secret;
    const { code, error } = await kiln('tokens', 'list', '--server', server.api.url, '--token', reader);
    expect(code).toBe(ExitCode.Usage);
    expect(error).toContain("GET /v1/tokens needs 'admin'");
  });

  it('formats a table and the created text from the JSON shapes', () => {
    const token: TokenJson = {
      id: '0123456789ab',
      name: 'ci',
      scopes: ['deploy'],
      createdAt: '2026-01-01T00:00:00.000Z',
    };
    expect(tokensTable([token, { ...token, revokedAt: '2026-01-02T00:00:00.000Z' }])).toBe(
      'NAME  SCOPES  CREATED               REVOKED               ID\n' +
        'ci    deploy  2026-01-01 00:00:00Z  -                     0123456789ab\n' +
        'ci    deploy  2026-01-01 00:00:00Z  2026-01-02 00:00:00Z  0123456789ab\n',
    );
    expect(createdText({ token, secret: 'kiln_x' })).toContain('\n  kiln_x\n');
  });
});

describe('kiln tokens revoke', () => {
  it('revokes at once, and refuses the last live admin token (exit 2)', async () => {
    const created = JSON.parse(
      (await kiln('tokens', 'create', 'ci', '--scope', 'deploy', '--json', ...server.conn)).stdout,
    ) as TokenCreatedJson;
    expect(await kiln('tokens', 'revoke', 'ci', ...server.conn)).toEqual({
      code: 0,
      stdout: `token ci revoked (id ${created.token.id})\n`,
      error: '',
    });
    const refused = await kiln('status', '--server', server.api.url, '--token', created.secret);
    expect(refused.code).toBe(ExitCode.Usage);
    expect(refused.error).toContain('the token was refused');
    const last = await kiln('tokens', 'revoke', 'alice', ...server.conn);
    expect(last.code).toBe(ExitCode.Usage);
    expect(last.error).toContain("token 'alice' is the last live admin token");
    expect(last.error).toContain('kiln tokens create NAME --scope admin');
    expect((await kiln('tokens', 'list', ...server.conn)).code).toBe(0);
  });
});

describe('the fleet verbs over HTTPS', () => {
  it('trust the certificate given by --ca or KILN_CA, and say how when none is given', async () => {
    const cert = await makeSelfSigned(dir, 'server', 1);
    const store = openState(IN_MEMORY);
    const api = await startApiServer({
      plane: new FakeControlPlane({ store }),
      tokens: store.tokens,
      version: '9.9.9',
      log: () => {},
      tls: cert,
    });
    try {
      const conn = ['--server', api.url, '--token', store.tokens.create('alice', ['admin']).secret];
      expect((await kiln('tokens', 'list', ...conn, '--ca', cert.certFile)).code).toBe(0);
      vi.stubEnv('KILN_CA', cert.certFile);
      expect((await kiln('status', ...conn)).code).toBe(0);
      vi.stubEnv('KILN_CA', '');
      const untrusted = await kiln('status', ...conn);
      expect(untrusted.code).toBe(ExitCode.Usage);
      expect(untrusted.error).toContain('its TLS certificate is not trusted');
      expect(untrusted.error).toContain('--ca FILE');
    } finally {
      await api.close();
      store.close();
    }
  });
});

describe('kiln server --tls-cert/--tls-key', () => {
  it('needs both, and names a missing file before starting anything (exit 2)', async () => {
    const config = path.join(dir, 'kiln.yaml');
    await writeFile(config, 'images: []\n');
    const one = await kiln('-c', config, 'server', '--tls-cert', path.join(dir, 'server.crt'));
    expect(one.code).toBe(ExitCode.Usage);
    expect(one.error).toContain('--tls-key: invalid');
    expect(one.error).toContain('HTTPS needs both a certificate and its key');
    const missing = await kiln(
      '-c',
      config,
      'server',
      '--tls-cert',
      path.join(dir, 'server.crt'),
      '--tls-key',
      path.join(dir, 'server.key'),
    );
    expect(missing.code).toBe(ExitCode.Usage);
    expect(missing.error).toContain(`[--tls-cert] ${path.join(dir, 'server.crt')} does not exist`);
    expect(missing.error).toContain(`[--tls-key] ${path.join(dir, 'server.key')} does not exist`);
    expect(existsSync(path.join(dir, '.kiln', 'state.db'))).toBe(false);
  });
});
