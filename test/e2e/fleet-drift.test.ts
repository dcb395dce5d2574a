/**
 * Known state, end to end: a file written from the host into the root filesystem running
 * instances share is found by the control plane's background check, every instance of that image
 * is tainted and replaced (within 5 s, at the default 2 s check interval), and the replacements run
 * from a fresh root unpacked from the verified layers, without the file. The tainted instances
 * serve until their replacements are healthy, so no request fails meanwhile.
 */
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { get, pageOf, SERVICE, useFleet, waitFor } from '../support/fleet.js';

const { fleet } = useFleet();

describe('drift', () => {
  it('taints and replaces instances whose root was written to from the host', async () => {
    const f = await fleet({ replicas: 2 });
    await f.startServer();
    const deployed = await f.kiln(['deploy', SERVICE, '--wait', '--timeout', '60s']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    const api = await f.api();
    const before = (await api.instances(SERVICE)).map((i) => i.id).sort();
    expect(before).toHaveLength(2);
    // Instances exactly their release are left alone: a round of checks (2 s) later, nothing drifted.
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await api.events(0, SERVICE, 1000)).filter((e) => e.kind === 'drift.detected')).toEqual([]);
    expect((await api.instances(SERVICE)).map((i) => i.id).sort()).toEqual(before);

    // A file appears in the image root, written from the host.
    const rootfsDir = path.join(f.project.home, 'rootfs');
    const [root] = (await readdir(rootfsDir)).filter((d) => /^[0-9a-f]{64}$/.test(d));
    // A client keeps asking, one request after another, throughout; what is not a 200 is kept
    // with when it came (ms after the write) and what it said.
    const answers: string[] = [];
    let asking = true;
    let written = Date.now();
    const client = (async () => {
      while (asking) {
        const r = await get(f.url);
        const at = Date.now() - written;
        answers.push(
          'body' in r
            ? r.status === 200
              ? '200'
              : `${r.status} at ${at}: ${r.body}`
            : `${r.error} at ${at}`,
        );
        await new Promise((done) => setTimeout(done, 10));
      }
    })();
    written = Date.now();
    await writeFile(path.join(rootfsDir, root!, 'etc', 'evil'), 'not in the image\n');

    // Both instances are tainted and replaced, each replacement from a fresh root.
    const after = await waitFor(
      'both instances replaced',
      async () => {
        const live = await api.instances(SERVICE);
        const fresh = live.filter((i) => !before.includes(i.id) && i.state === 'healthy');
        return fresh.length === 2 && live.every((i) => !before.includes(i.id)) ? fresh : undefined;
      },
      { timeoutMs: 5_000, everyMs: 50 },
    ).finally(() => (asking = false));
    console.info(`drift: both instances replaced ${Date.now() - written} ms after the write`);
    await client;
    // The tainted instances served until their replacements were healthy: not one request failed.
    expect(answers.length).toBeGreaterThan(10);
    expect(answers.filter((a) => a !== '200')).toEqual([]);
    expect(after).toHaveLength(2);
    const events = await api.events(0, SERVICE, 1000);
    const detected = events.filter((e) => e.kind === 'drift.detected');
    expect(detected.map((e) => e.subject).sort()).toEqual(before);
    expect(detected[0]!.reason).toBe('DriftDetected');
    expect(detected[0]!.message).toContain('/etc/evil added');
    expect(
      events
        .filter((e) => e.kind === 'instance.tainted')
        .map((e) => e.subject)
        .sort(),
    ).toEqual(before);
    const roots = await readdir(rootfsDir);
    expect(roots.some((d) => d.startsWith(`${root}.tainted-`))).toBe(true);
    expect(await readdir(path.join(rootfsDir, root!, 'etc'))).not.toContain('evil');
    expect(await get(f.url)).toEqual({ status: 200, body: pageOf('r1', 1) });
  }, 120_000);
});
