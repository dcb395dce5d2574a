import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  filesManifestPath,
  walkTree,
  type InstanceAttestation,
  type InstanceDescription,
  type RuntimeDriver,
} from '../runtime/index.js';
import { DriftWatch } from './drift.js';
import { Harness } from './testkit.js';

let h: Harness | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** `replicas` healthy instances of `web` (with `MODE=prod`) on the fake driver; their ids, sorted. */
async function released(replicas: number): Promise<string[]> {
  h = new Harness();
  h.declare({ name: 'web', replicas, env: { MODE: 'prod' } });
  await h.controller.start();
  const { rollout } = await h.deploy('web');
  await h.until(() => h!.phase(rollout.id) === 'succeeded', 'the first release');
  return h
    .live('web')
    .map((i) => i.id)
    .sort();
}

/** A watch over `driver` that taints through the controller, noting each as `ID REASON REPLACE` and its message. */
function watchOver(driver: RuntimeDriver) {
  const taints: string[] = [];
  const messages = new Map<string, string>();
  const watch = new DriftWatch({
    store: h!.store,
    driver,
    host: '127.0.0.1',
    taint: (id, reason, message, replace) => {
      taints.push(`${id} ${reason} ${replace}`);
      messages.set(id, message);
      h!.controller.taint(id, reason, message, replace);
    },
  });
  return { watch, taints, messages };
}

/** Two healthy instances on the fake driver, and a root with its manifest of files. */
async function setup() {
  const ids = await released(2);
  // In a directory of its own: a root that drifted is set aside beside it.
  const parent = await mkdtemp(path.join(tmpdir(), 'kiln-drift-'));
  dirs.push(parent);
  const root = path.join(parent, 'rootfs');
  await mkdir(path.join(root, 'etc'), { recursive: true });
  await writeFile(path.join(root, 'etc', 'app.conf'), 'x=1\n');
  await writeFile(filesManifestPath(root), JSON.stringify({ files: await walkTree(root) }));
  const overrides = new Map<string, Partial<InstanceDescription>>();
  const driver = {
    describe: async (id: string): Promise<InstanceDescription | undefined> => {
      const spec = h!.host.find(id)?.spec;
      if (!spec) return undefined;
      // As crun and runc do: PATH when the image has none, and HOME from the user's account.
      const env = { PATH: '/usr/bin', ...spec.env };
      return { rootfs: root, args: spec.args, env, liveEnv: { ...env, HOME: '/' }, ...overrides.get(id) };
    },
  } as unknown as RuntimeDriver;
  return { harness: h!, root, overrides, ids, ...watchOver(driver) };
}

describe('DriftWatch', () => {
  it('finds every instance exactly its release', async () => {
    const { watch, ids, taints } = await setup();
    const verdicts = await watch.check({ full: true, act: true });
    expect(verdicts.map((v) => [v.id, v.ok, v.files, v.process]).sort()).toEqual(
      ids.map((id) => [id, true, [], []]),
    );
    expect(taints).toEqual([]);
  });

  it('taints an instance whose environment differs from its release, and it is replaced', async () => {
    const { harness, watch, ids, overrides, taints } = await setup();
    const spec = harness.host.find(ids[0]!)!.spec;
    overrides.set(ids[0]!, { liveEnv: { ...spec.env, MODE: 'debug', EXTRA: '1' } });
    const verdicts = await watch.check({ act: true });
    const bad = verdicts.find((v) => v.id === ids[0])!;
    expect(bad.ok).toBe(false);
    expect(bad.process).toEqual(['live env MODE: "prod" → "debug"', 'live env EXTRA added']);
    expect(verdicts.find((v) => v.id === ids[1])!.ok).toBe(true);
    expect(taints).toEqual([`${ids[0]} DriftDetected true`]);
    expect(harness.store.instances.get(ids[0]!).taint).toMatchObject({ reason: 'DriftDetected' });
    await harness.until(
      () => harness.store.instances.get(ids[0]!).state === 'stopped',
      'the tainted one stopped',
    );
    await harness.until(
      () => harness.live('web').filter((i) => i.state === 'healthy').length === 2,
      'a replacement',
    );
  });

  it('sees a file changed in the shared root, in a quick check too, and taints every instance of it', async () => {
    const { watch, root, ids, taints } = await setup();
    expect((await watch.check({ full: true })).every((v) => v.ok)).toBe(true);
    await new Promise((r) => setTimeout(r, 10));
    await writeFile(path.join(root, 'etc', 'app.conf'), 'x=2\n');
    const verdicts = await watch.check({ act: true });
    expect(verdicts.map((v) => v.files.map((f) => `${f.path} ${f.change}`))).toEqual([
      ['etc/app.conf modified'],
      ['etc/app.conf modified'],
    ]);
    expect(taints.sort()).toEqual(ids.map((id) => `${id} DriftDetected true`));
    expect((await readdir(path.dirname(root))).some((d) => d.startsWith('rootfs.tainted-'))).toBe(true);
  });
});

describe('DriftWatch on a remote engine (attest, no describe)', () => {
  it('trusts what the engine attests: clean when it matches, tainted for each thing that differs', async () => {
    const ids = await released(3);
    const overrides = new Map<string, Partial<InstanceAttestation>>();
    const driver = {
      attest: async (id: string): Promise<InstanceAttestation | undefined> => {
        const record = h!.store.instances.get(id);
        const spec = h!.host.find(id)?.spec;
        if (!spec) return undefined;
        return {
          image: `10.0.0.1:5000/kiln/web@${record.digest}`,
          args: spec.args,
          env: spec.env,
          changes: [],
          foreignProcesses: [],
          ...overrides.get(id),
        };
      },
    } as unknown as RuntimeDriver;
    const { watch, taints, messages } = watchOver(driver);
    const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : 1);
    const clean = (await watch.check({ act: true })).sort(byId);
    expect(clean.map((v) => [v.id, v.ok, v.manifest])).toEqual(ids.map((id) => [id, true, 'engine']));

    overrides.set(ids[0]!, { changes: [{ path: 'usr/bin/evil', change: 'added', detail: 'by the engine' }] });
    overrides.set(ids[1]!, { image: `10.0.0.1:5000/kiln/web@sha256:${'e'.repeat(64)}` });
    overrides.set(ids[2]!, { foreignProcesses: ['exec 0123456789ab: /bin/sh'] });
    const verdicts = (await watch.check({ act: true })).sort(byId);
    expect(verdicts.map((v) => [v.id, v.ok])).toEqual(ids.map((id) => [id, false]));
    expect(verdicts[0]!.files).toEqual([{ path: 'usr/bin/evil', change: 'added', detail: 'by the engine' }]);
    expect(verdicts[1]!.process).toEqual([
      expect.stringMatching(/^image sha256:[0-9a-f]{64} → .*@sha256:e{64}$/),
    ]);
    expect(verdicts[2]!.process).toEqual(['started in it, not by kiln: exec 0123456789ab: /bin/sh']);
    expect(taints.sort()).toEqual(ids.map((id) => `${id} DriftDetected true`));
    expect(messages.get(ids[0]!)).toContain('/usr/bin/evil added');
    await h!.until(
      () => ids.every((id) => h!.store.instances.get(id).state === 'stopped'),
      'all three replaced',
    );
  });
});

describe('DriftWatch.start', () => {
  it('stops checking once closed, even with a check in flight, so nothing keeps the process alive', async () => {
    const { watch, taints } = await setup();
    let checks = 0;
    const check = watch.check.bind(watch);
    watch.check = async (options) => {
      checks++;
      return check(options);
    };
    watch.start(5);
    await new Promise((r) => setTimeout(r, 60));
    await watch.close();
    const seen = checks;
    expect(seen).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 60));
    expect(checks).toBe(seen);
    expect(taints).toEqual([]);
  });
});
