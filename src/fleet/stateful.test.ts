import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configPath, ensureVolume, identityEnv, volumePath, writeConfig } from './stateful.js';
import { Harness } from './testkit.js';

let h: Harness | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'kiln-stateful-'));
  dirs.push(d);
  return d;
}

const DB = {
  name: 'db',
  kind: 'stateful' as const,
  replicas: 3,
  port: 7000,
  volumes: [{ name: 'data', path: '/data' }],
  ready: { exec: ['ready'], interval: '20ms' },
  config: { path: '/etc/kiln', files: { 'db.conf': 'generation 1\n' } },
};

/** A harness with volumes, `db` declared and its first release up: every identity healthy. */
async function firstRelease(): Promise<Harness> {
  const harness = new Harness();
  h = harness;
  harness.dataDir = await tempDir();
  await harness.renew();
  harness.declare(DB);
  await harness.controller.start();
  const { rollout } = await harness.deploy('db');
  await harness.until(() => harness.phase(rollout.id) === 'succeeded', 'the first release');
  return harness;
}

/** The identity (`db-1`) of each live instance, with its release number, sorted. */
function identities(harness: Harness): string[] {
  return harness.store.instances
    .list({ service: 'db' })
    .map((i) => `${i.service}-${i.ordinal} r${i.release} ${i.state}`)
    .sort();
}

describe('stateful identities', () => {
  it('start each identity on port + k with its own volume, its release config read-only, and its peers', async () => {
    h = await firstRelease();
    expect(identities(h)).toEqual(['db-0 r1 healthy', 'db-1 r1 healthy', 'db-2 r1 healthy']);
    const spec = h.host.find(
      h.store.instances.list({ service: 'db' }).find((i) => i.ordinal === 1)!.id,
    )!.spec;
    expect(spec.port).toBe(7001);
    expect(spec.env).toMatchObject({
      PORT: '7001',
      KILN_IDENTITY: 'db-1',
      KILN_ORDINAL: '1',
      KILN_PEERS: 'db-0=127.0.0.1:7000,db-1=127.0.0.1:7001,db-2=127.0.0.1:7002',
    });
    expect(spec.mounts).toEqual([
      { source: volumePath(h.dataDir!, 'db', 1, 'data'), destination: '/data' },
      { source: configPath(h.dataDir!, 'db', 'r1'), destination: '/etc/kiln', readonly: true },
    ]);
    expect(await readFile(path.join(configPath(h.dataDir!, 'db', 'r1'), 'db.conf'), 'utf8')).toBe(
      'generation 1\n',
    );
    expect(h.router.route('db')).toBeUndefined();
  });

  it('reattach the same volume when an instance crashes', async () => {
    h = await firstRelease();
    const victim = h.store.instances.list({ service: 'db' }).find((i) => i.ordinal === 2)!;
    await writeFile(path.join(volumePath(h.dataDir!, 'db', 2, 'data'), 'kept'), 'data\n');
    h.driver.crash(victim.id, 137);
    await h.until(
      () =>
        identities(h!).join() === 'db-0 r1 healthy,db-1 r1 healthy,db-2 r1 healthy' &&
        !h!.store.instances.list().some((i) => i.id === victim.id),
      'db-2 back',
    );
    const back = h.store.instances.list({ service: 'db' }).find((i) => i.ordinal === 2)!;
    expect(back.id).toMatch(/^db-2-r1-/);
    expect(back.port).toBe(7002);
    expect(h.host.find(back.id)!.spec.mounts![0]!.source).toBe(volumePath(h.dataDir!, 'db', 2, 'data'));
    expect(await readdir(volumePath(h.dataDir!, 'db', 2, 'data'))).toEqual(['kept']);
  });

  it('update one identity at a time, highest first, each only after the last passed its ready check', async () => {
    h = await firstRelease();
    h.declare({ ...DB, config: { path: '/etc/kiln', files: { 'db.conf': 'generation 2\n' } } });
    h.unready.add('db-2');
    const { rollout } = await h.deploy('db');
    await h.until(() => identities(h!).includes('db-2 r2 healthy'), 'db-2 replaced');
    // db-2's replacement is healthy but not ready: nothing else is taken down.
    await new Promise((r) => setTimeout(r, 200));
    expect(identities(h)).toEqual(['db-0 r1 healthy', 'db-1 r1 healthy', 'db-2 r2 healthy']);
    h.unready.delete('db-2');
    await h.until(() => h!.phase(rollout.id) === 'succeeded', 'the update');
    expect(identities(h)).toEqual(['db-0 r2 healthy', 'db-1 r2 healthy', 'db-2 r2 healthy']);
    const stops = h.store.events
      .tail(200)
      .filter((e) => e.kind === 'instance.stopped' && e.reason === 'superseded')
      .map((e) => e.subject!.slice(0, 4));
    expect(stops).toEqual(['db-2', 'db-1', 'db-0']);
    expect(await readFile(path.join(configPath(h.dataDir!, 'db', 'r2'), 'db.conf'), 'utf8')).toBe(
      'generation 2\n',
    );
  });

  it('refuse a deploy by another strategy', async () => {
    h = new Harness();
    h.declare(DB);
    await expect(h.deploy('db', { strategy: 'canary' })).rejects.toThrow(/stateful.*one instance at a time/);
  });
});

describe('volumes and config files', () => {
  it('create a volume once, owned by the process user, and keep what is in it', async () => {
    const dir = path.join(await tempDir(), 'volumes', 'db', 'db-0', 'data');
    await ensureVolume(dir, { uid: 999, gid: 999 });
    const info = await stat(dir);
    expect(info.isDirectory()).toBe(true);
    if (process.getuid?.() === 0) expect([info.uid, info.gid]).toEqual([999, 999]);
    await writeFile(path.join(dir, 'x'), '1');
    await ensureVolume(dir, { uid: 0, gid: 0 });
    expect(await readdir(dir)).toEqual(['x']);
    expect(await readdir(path.dirname(dir))).toEqual(['data']);
  });

  it('write a release config once, whole, and never change it', async () => {
    const dir = path.join(await tempDir(), 'config', 'db', 'r1');
    await writeConfig(dir, { 'a.conf': 'one\n', 'b.conf': 'two\n' });
    await writeConfig(dir, { 'a.conf': 'changed\n' });
    expect((await readdir(dir)).sort()).toEqual(['a.conf', 'b.conf']);
    expect(await readFile(path.join(dir, 'a.conf'), 'utf8')).toBe('one\n');
    expect(await readdir(path.dirname(dir))).toEqual(['r1']);
  });

  it('name every identity in the environment', () => {
    const env = identityEnv({ name: 'db', port: 6379, replicas: 2 } as never, 0, '127.0.0.1');
    expect(env).toEqual({
      KILN_IDENTITY: 'db-0',
      KILN_ORDINAL: '0',
      KILN_PEERS: 'db-0=127.0.0.1:6379,db-1=127.0.0.1:6380',
    });
  });
});
