import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  FAKE_DIGEST,
  FakeControlPlane,
  startApiServer,
  writeAdminToken,
  writeServerFile,
  type ApiServer,
  type DeployResultJson,
  type InstanceJson,
} from '../api/index.js';
import { IN_MEMORY, openState, type StateStore } from '../state/index.js';
import { ExitCode } from './exit.js';
import { age, instancesTable } from './fleet-common.js';
import { kiln } from './testkit.js';

const SHORT = FAKE_DIGEST.slice(0, 19);

let store: StateStore;
let plane: FakeControlPlane;
let api: ApiServer;
let conn: string[];
let dir: string;

beforeEach(async () => {
  for (const name of ['KILN_SERVER', 'KILN_TOKEN', 'KILN_HOME', 'KILN_DEBUG']) vi.stubEnv(name, '');
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-fleet-cli-'));
  store = openState(IN_MEMORY);
  plane = new FakeControlPlane();
  plane.seedService('web', {
    url: 'http://127.0.0.1:8080/',
    port: 8080,
    replicas: 3,
    healthy: 3,
    instances: 3,
  });
  plane.seedService('api', { url: 'http://127.0.0.1:8081/', port: 8081 });
  api = await startApiServer({ plane, tokens: store.tokens, version: '9.9.9', log: () => {} });
  conn = ['--server', api.url, '--token', store.tokens.create('alice', ['admin']).secret];
});

afterEach(async () => {
  vi.unstubAllEnvs();
  await api?.close();
  store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('kiln deploy', () => {
  it('prints the release, its digest, where it rolls from, the strategy and the rollout', async () => {
    expect(await kiln('deploy', 'web', ...conn)).toEqual({
      code: 0,
      stdout: `web: r1 (${SHORT}) rolling out by rolling, rollout rollout-1\n`,
      error: '',
    });
    const second = await kiln('deploy', 'web', '--strategy', 'bluegreen', '--reason', 'login', ...conn);
    expect(second.stdout).toBe(`web: r2 (${SHORT}) rolling out from r1 by bluegreen, rollout rollout-2\n`);
    expect(plane.calls.at(-1)).toEqual({
      method: 'deploy',
      args: ['web', { strategy: 'bluegreen', reason: 'login' }, 'alice'],
    });
  });

  it('prints DeployResultJson with --json', async () => {
    const { stdout, code } = await kiln(
      'deploy',
      'web',
      '--image',
      'sha256:' + 'e'.repeat(64),
      '--json',
      ...conn,
    );
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as DeployResultJson;
    expect(result.release).toEqual({
      service: 'web',
      name: 'r1',
      digest: 'sha256:' + 'e'.repeat(64),
      configHash: FAKE_DIGEST,
      createdAt: '2026-01-01T00:00:00.000Z',
      createdBy: 'alice',
      reason: '',
      current: true,
    });
    expect(result.rollout).toMatchObject({ id: 'rollout-1', service: 'web', to: 'r1', phase: 'progressing' });
  });

  it('with --wait, prints each new message and exits 0 when the rollout succeeds', async () => {
    plane.script('rollout-1', [
      { message: '1 of 3 instances of r1 are healthy' },
      { phase: 'succeeded', done: true, message: 'all 3 instances of r1 are healthy' },
    ]);
    expect(await kiln('deploy', 'web', '--wait', ...conn)).toEqual({
      code: 0,
      stdout:
        `web: r1 (${SHORT}) rolling out by rolling, rollout rollout-1\n` +
        '  progressing: 1 of 3 instances of r1 are healthy\n' +
        'web: r1 succeeded: all 3 instances of r1 are healthy\n',
      error: '',
    });
  });

  it('with --wait, exits 1 when the rollout is rolled back, and --json prints the final rollout', async () => {
    plane.script('rollout-1', [{ phase: 'rolled-back', done: true, message: 'r1 failed its health check' }]);
    const { code, stdout } = await kiln('deploy', 'web', '--wait', '--json', ...conn);
    expect(code).toBe(ExitCode.Failed);
    const result = JSON.parse(stdout) as DeployResultJson;
    expect(result.release.name).toBe('r1');
    expect(result.rollout).toMatchObject({
      phase: 'rolled-back',
      done: true,
      message: 'r1 failed its health check',
    });
  });

  it('refuses a --timeout without a unit before deploying (exit 2)', async () => {
    const { code, error } = await kiln('deploy', 'web', '--wait', '--timeout', '10', ...conn);
    expect(code).toBe(ExitCode.Usage);
    expect(error).toContain('"10" is not a duration');
    expect(plane.calls).toEqual([]);
  });

  it('exits 2 for an unknown service and 3 when the server cannot be reached', async () => {
    const unknown = await kiln('deploy', 'nope', ...conn);
    expect(unknown.code).toBe(ExitCode.Usage);
    expect(unknown.error).toBe('kiln: no service nope is declared');
    await api.close();
    const down = await kiln('deploy', 'web', ...conn);
    expect(down.code).toBe(ExitCode.Unreachable);
    expect(down.error).toContain(`cannot reach the kiln server at ${api.url}`);
  });
});

describe('kiln rollback', () => {
  it('says so when it switched back to a warm standby at once', async () => {
    await kiln('deploy', 'web', ...conn);
    await kiln('deploy', 'web', ...conn);
    plane.services.set('web', { ...plane.services.get('web')!, standby: { release: 'r1', until: 'x' } });
    const { code, stdout } = await kiln('rollback', 'web', '--wait', ...conn);
    expect(code).toBe(0);
    expect(stdout).toBe(
      `web: r1 (${SHORT}) instant (standby r1 switched back) from r2, rollout rollout-3\n` +
        'web: r1 succeeded: traffic switched back to standby r1\n',
    );
  });

  it('rolls back to --to by the rollout, with the same line shape', async () => {
    for (let i = 0; i < 3; i++) await kiln('deploy', 'api', ...conn);
    const { stdout } = await kiln('rollback', 'api', '--to', 'r1', ...conn);
    expect(stdout).toBe(`api: r1 (${SHORT}) rolling back from r3 by rolling, rollout rollout-4\n`);
    expect(plane.calls.at(-1)).toEqual({ method: 'rollback', args: ['api', { to: 'r1' }, 'alice'] });
  });
});

describe('kiln releases, status, instances, logs', () => {
  it('lists releases newest first with * on the current one', async () => {
    await kiln('deploy', 'web', '--reason', 'first', ...conn);
    await kiln('deploy', 'web', ...conn);
    const { stdout } = await kiln('releases', 'web', ...conn);
    expect(stdout).toBe(
      [
        '  NAME  DIGEST               CREATED               BY     REASON',
        `* r2    ${SHORT}  2026-01-01 00:00:00Z  alice  -`,
        `  r1    ${SHORT}  2026-01-01 00:00:00Z  alice  first`,
        '',
      ].join('\n'),
    );
    const json = JSON.parse((await kiln('releases', 'web', '--json', ...conn)).stdout) as unknown[];
    expect(json).toEqual(await plane.releases('web'));
  });

  it('shows each service with its release, health, URL and rollout', async () => {
    await kiln('deploy', 'web', ...conn);
    const { stdout } = await kiln('status', ...conn);
    expect(stdout).toBe(
      [
        'SERVICE  RELEASE  HEALTHY  URL                     ROLLOUT',
        'api      -        0/2      http://127.0.0.1:8081/  -',
        'web      r1       3/3      http://127.0.0.1:8080/  progressing r1',
        '',
      ].join('\n'),
    );
    const one = JSON.parse((await kiln('status', 'web', '--json', ...conn)).stdout) as { name: string }[];
    expect(one.map((s) => s.name)).toEqual(['web']);
    expect(plane.calls.at(-1)).toEqual({ method: 'status', args: ['web'] });
  });

  it('lists instances and prints logs', async () => {
    const instance: InstanceJson = {
      id: 'web-7f3a',
      service: 'web',
      release: 'r1',
      digest: FAKE_DIGEST,
      port: 20001,
      state: 'healthy',
      stateSince: '2026-01-01T00:00:00.000Z',
      health: { status: 'failing', failures: 2 },
      createdAt: '2026-01-01T00:00:00.000Z',
    };
    plane.instanceList = [instance];
    plane.logText.set('web-7f3a', 'one\ntwo\nthree\n');
    const { stdout } = await kiln('instances', '--service', 'web', ...conn);
    expect(stdout.split('\n')[0]).toBe('ID        SERVICE  RELEASE  STATE    PORT   HEALTH       AGE');
    const row = stdout.split('\n')[1]!;
    expect(row.replace(/\d+d$/, 'Nd')).toBe('web-7f3a  web      r1       healthy  20001  failing (2)  Nd');
    expect(JSON.parse((await kiln('instances', '--json', ...conn)).stdout)).toEqual([instance]);
    expect(instancesTable([instance], new Date('2026-01-01T00:03:00.000Z'))).toContain('  3m\n');
    expect((await kiln('logs', 'web-7f3a', '--tail', '2', ...conn)).stdout).toBe('two\nthree\n');
    expect((await kiln('logs', 'web-7f3a', ...conn)).stdout).toBe('one\ntwo\nthree\n');
    const bad = await kiln('logs', 'web-7f3a', '--tail', 'lots', ...conn);
    expect(bad.code).toBe(ExitCode.Usage);
  });

  it('formats ages in the largest whole unit', () => {
    const now = new Date('2026-01-10T00:00:00.000Z');
    const ago = (ms: number) => new Date(now.getTime() - ms).toISOString();
    expect(
      [ago(5_000), ago(125_000), ago(5 * 3_600_000), ago(3 * 86_400_000)].map((t) => age(t, now)),
    ).toEqual(['5s', '2m', '5h', '3d']);
  });
});

describe('finding the server', () => {
  it('reads .kiln/server.json and .kiln/admin-token beside the config', async () => {
    const config = path.join(dir, 'kiln.yaml');
    await writeFile(config, 'images: []\n');
    await writeServerFile(path.join(dir, '.kiln'), { url: api.url, pid: process.pid });
    await writeAdminToken(path.join(dir, '.kiln'), store.tokens.create('first-admin', ['admin']).secret);
    const { code, stdout } = await kiln('-c', config, 'deploy', 'web');
    expect(code).toBe(0);
    expect(stdout).toContain('web: r1');
    expect(plane.calls.at(-1)?.args.at(-1)).toBe('first-admin');
  });

  it('works without a config when KILN_SERVER and KILN_TOKEN are set', async () => {
    vi.stubEnv('KILN_SERVER', api.url);
    vi.stubEnv('KILN_TOKEN', conn[3]!);
    const { code } = await kiln('-c', path.join(dir, 'missing.yaml'), 'status');
    expect(code).toBe(0);
  });

  it('says what to give when there is no config and no server (exit 2), or no server running (exit 3)', async () => {
    const none = await kiln('-c', path.join(dir, 'missing.yaml'), 'status');
    expect(none.code).toBe(ExitCode.Usage);
    expect(none.error).toContain('give --server and --token, or set KILN_SERVER and KILN_TOKEN');
    const config = path.join(dir, 'kiln.yaml');
    await writeFile(config, 'images: []\n');
    const stopped = await kiln('-c', config, 'status');
    expect(stopped.code).toBe(ExitCode.Unreachable);
    expect(stopped.error).toBe(
      'kiln: no kiln server is running for this project (.kiln/server.json missing): ' +
        'start one with `kiln server` or `kiln up`',
    );
  });
});
