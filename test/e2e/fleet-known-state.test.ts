/**
 * Known state on demand, end to end: `kiln verify` hashes every file of the running roots and
 * finds a file written from the host (tainting the instances, which are then replaced), and
 * `kiln exec` runs a command in an instance through the audited API, taints it at once, holds its
 * replacement while the session is open and for `drift.execGrace` after, then replaces it.
 */
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { VerifyJson } from '../../src/api/index.js';
import { get, pageOf, SERVICE, useFleet, waitFor } from '../support/fleet.js';

const { fleet } = useFleet();

describe('kiln verify', () => {
  it('finds every instance clean, then the file written into their root, and they are replaced', async () => {
    // Given two instances, with the background check off so only `kiln verify` looks.
    const f = await fleet({ replicas: 2 });
    await f.startServer(['--verify-interval', '0']);
    const deployed = await f.kiln(['deploy', SERVICE, '--wait', '--timeout', '60s']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    const api = await f.api();
    const before = (await api.instances(SERVICE)).map((i) => i.id).sort();

    // When nothing changed, verify says so and exits 0.
    const clean = await f.kiln(['verify']);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toContain('2 instances checked (every file hashed): 2 clean, 0 drifted');

    // When a file appears in the image root, written from the host,
    const rootfsDir = path.join(f.project.home, 'rootfs');
    const [root] = (await readdir(rootfsDir)).filter((d) => /^[0-9a-f]{64}$/.test(d));
    await writeFile(path.join(rootfsDir, root!, 'etc', 'evil'), 'not in the image\n');

    // Then verify finds it in both, exits 4, taints them,
    const drifted = await f.kiln(['verify', '--all', '--json']);
    expect(drifted.code, drifted.stderr).toBe(4);
    const result = JSON.parse(drifted.stdout) as VerifyJson;
    expect(result.drifted).toBe(2);
    expect(result.instances.map((i) => i.id).sort()).toEqual(before);
    for (const i of result.instances) {
      expect(i.verdict).toBe('drifted');
      // Compared with the manifest of files bake attached to the image, which the root was checked against.
      expect(i.manifest).toBe('image');
      expect(i.files).toContainEqual({ path: 'etc/evil', change: 'added', detail: 'file not in the image' });
      expect(i.taint?.reason).toBe('DriftDetected');
      expect(i.action).toBe('replace');
    }
    // and the controller replaces them with instances of a fresh root, which verify finds clean.
    await waitFor(
      'both instances replaced',
      async () => {
        const live = await api.instances(SERVICE);
        return live.length === 2 && live.every((i) => !before.includes(i.id) && i.state === 'healthy')
          ? live
          : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const after = await f.kiln(['verify']);
    expect(after.code, after.stdout).toBe(0);
    expect(after.stdout).toContain('2 clean, 0 drifted');
    expect(await get(f.url)).toEqual({ status: 200, body: pageOf('r1', 1) });
  }, 180_000);
});

describe('kiln exec', () => {
  it('runs a command in an instance, audited; taints it, and replaces it once the session and its grace end', async () => {
    // Given two instances whose service replaces an exec'd instance 1 s after its session ends.
    const f = await fleet({ replicas: 2, drift: { execGrace: '1s' } });
    await f.startServer();
    const deployed = await f.kiln(['deploy', SERVICE, '--wait', '--timeout', '60s']);
    expect(deployed.code, deployed.stdout + deployed.stderr).toBe(0);
    const api = await f.api();
    const [a, b] = (await api.instances(SERVICE)).map((i) => i.id).sort();

    // When a command runs in one (the image has busybox, no /bin/sh),
    const hi = await f.kiln(['exec', b!, '--', '/bin/busybox', 'sh', '-c', 'echo hi']);
    // Then it prints its output, and kiln says what happens to the instance.
    expect(hi.code, hi.stderr).toBe(0);
    expect(hi.stdout).toBe('hi\n');
    expect(hi.stderr).toContain(`${b} is now tainted (ExecDetected`);
    expect(hi.stderr).toContain('it is replaced 1 s after this session ends');

    // When a session stays open, its instance is tainted (kiln instances, kiln status) and kept.
    const open = f.spawnKiln([
      'exec',
      a!,
      '--',
      '/bin/busybox',
      'sh',
      '-c',
      'echo started; /bin/busybox sleep 4',
    ]);
    await waitFor('the session to start', async () => (open.output().includes('started') ? true : undefined));
    const instances = await f.kiln(['instances']);
    expect(instances.stdout.split('\n').find((l) => l.startsWith(a!))).toContain('(tainted: ExecDetected)');
    expect(await f.kiln(['status'])).toMatchObject({ code: 0, stdout: expect.stringContaining('tainted)') });
    expect((await api.instances(SERVICE)).find((i) => i.id === a)?.taint?.reason).toBe('ExecDetected');
    expect(await open.exited).toBe(0);

    // Then both are replaced after their grace, and the fleet is whole and serving.
    const replaced = await waitFor(
      'both exec-tainted instances replaced',
      async () => {
        const live = await api.instances(SERVICE);
        return live.length === 2 && live.every((i) => i.id !== a && i.id !== b && i.state === 'healthy')
          ? live
          : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(replaced).toHaveLength(2);
    expect(await get(f.url)).toEqual({ status: 200, body: pageOf('r1', 1) });

    // The events tell the story: tainted, started, ended, then (not before the grace) replaced.
    const events = await api.events(0, SERVICE, 1000);
    for (const id of [a!, b!]) {
      const of = events.filter((e) => e.subject === id);
      const at = (kind: string) => of.find((e) => e.kind === kind);
      expect(of.find((e) => e.kind === 'drift.detected')?.reason).toBe('ExecDetected');
      expect(at('exec.started')).toBeDefined();
      const ended = at('exec.ended')!;
      const tainted = at('instance.tainted')!;
      expect(ended.seq).toBeLessThan(tainted.seq);
      expect(Date.parse(tainted.at) - Date.parse(ended.at)).toBeGreaterThanOrEqual(900);
    }
    // The audit log has who opened and ended each session, on which instance.
    const audit = (await api.audit(100)).map((r) => [r.actor, r.action, r.target, r.result]);
    for (const id of [a!, b!]) {
      expect(audit).toContainEqual(['admin', 'exec', id, 'ok']);
      expect(audit).toContainEqual(['admin', 'exec.end', id, 'ok']);
    }
  }, 180_000);
});
