import { afterEach, describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/cli/doctor.js';
import { startTestArchive, type TestArchive } from '../support/debian-archive.js';
import { cli, makeProject, REPO } from '../support/bakery.js';

const archives: TestArchive[] = [];
afterEach(async () => {
  for (const a of archives.splice(0)) await a.close();
});

describe('kiln doctor', () => {
  it('finds the runtimes, kernel features and a verified archive on this machine', async () => {
    // Given apt sources that name a signed archive
    const archive = await startTestArchive({ packages: [{ name: 'x', version: '1' }] });
    archives.push(archive);
    // When the doctor checks
    const checks = await runDoctor({ suite: 'testing', aptRoot: await archive.sourcesFile() });
    const byName = Object.fromEntries(checks.map((c) => [c.name, c]));
    // Then every required check passes, the archive's signature included
    expect(checks.filter((c) => c.level === 'required' && !c.ok)).toEqual([]);
    expect(byName['oci-runtime']!.detail).toMatch(/crun|runc/);
    expect(byName['debian-archive']!.detail).toMatch(/testing: signed InRelease verified/);
  });

  it('says how to fix an archive whose signature fails', async () => {
    const archive = await startTestArchive({
      packages: [{ name: 'x', version: '1' }],
      corrupt: { signature: ['testing'] },
    });
    archives.push(archive);
    const checks = await runDoctor({ suite: 'testing', aptRoot: await archive.sourcesFile() });
    const check = checks.find((c) => c.name === 'debian-archive')!;
    expect(check.ok).toBe(false);
    expect(check.detail).toContain('InRelease');
    expect(check.fix).toMatch(/apt sources|mirror/);
  });

  it('prints every check with --json and exits 0 when nothing required is missing', async () => {
    const archive = await startTestArchive({ packages: [{ name: 'x', version: '1' }] });
    archives.push(archive);
    const r = await cli(REPO, ['doctor', '--json', '--suite', 'testing'], {
      KILN_APT_ROOT: await archive.sourcesFile(),
    });
    const out = JSON.parse(r.stdout) as {
      ok: boolean;
      checks: { name: string; ok: boolean; fix?: string }[];
    };
    expect(out.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'node',
        'oci-runtime',
        'instance-init',
        'root',
        'namespaces',
        'cgroups',
        'gpgv',
        'debian-keyring',
        'debian-archive',
      ]),
    );
    for (const c of out.checks) if (!c.ok) expect(c.fix).toBeTruthy();
    expect(r.code).toBe(out.ok ? 0 : 1);
  });
});

describe('kiln doctor with a config', () => {
  it("checks the config's mirror and suite rather than the machine's apt sources", async () => {
    const archive = await startTestArchive({ packages: [{ name: 'x', version: '1' }] });
    archives.push(archive);
    const p = await makeProject();
    try {
      await p.config(archive, '  - { name: xx, from: "debian:testing", packages: [xx] }\n');
      const r = await cli(p.dir, ['doctor', '--json']);
      const out = JSON.parse(r.stdout) as { checks: { name: string; ok: boolean; detail: string }[] };
      expect(out.checks.find((c) => c.name === 'debian-archive')).toMatchObject({
        ok: true,
        detail: expect.stringMatching(/^testing: signed InRelease verified/),
      });
      expect(archive.requests).toContain('/debian/dists/testing/InRelease');
      expect(out.checks.find((c) => c.name === 'config')).toMatchObject({ ok: true });
    } finally {
      await p.cleanup();
    }
  });

  it('reports an invalid config as a failed check, with the problem', async () => {
    const p = await makeProject();
    try {
      await p.write('kiln.yaml', 'images: [{ name: 7 }]\n');
      const r = await cli(p.dir, ['doctor', '--json']);
      expect(r.code).toBe(1);
      const out = JSON.parse(r.stdout) as { checks: { name: string; ok: boolean; detail: string }[] };
      expect(out.checks.find((c) => c.name === 'config')).toMatchObject({
        ok: false,
        detail: expect.stringContaining('images[0].name'),
      });
    } finally {
      await p.cleanup();
    }
  });
});

describe('kiln CLI', () => {
  it('exits 2 with usage for an unknown verb or flag, 0 for --help', async () => {
    expect((await cli(REPO, ['bakee'])).code).toBe(2);
    expect((await cli(REPO, ['bake', '--bogus'])).code).toBe(2);
    const help = await cli(REPO, ['--help']);
    expect(help.code).toBe(0);
    for (const verb of ['bake', 'images', 'run', 'push', 'outdated', 'doctor'])
      expect(help.stdout).toContain(verb);
  });

  it('exits 2 naming the files it looked for when there is no config', async () => {
    const r = await cli('/', ['images']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/kiln\.config\.ts, kiln\.config\.js, kiln\.yaml/);
  });
});
