import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  homePaths,
  readLock,
  verifyEnvelope,
  type DsseEnvelope,
  type ImageSummary,
} from '../../src/bake/index.js';
import { startTestArchive } from '../support/debian-archive.js';
import { cli, startBakeryArchive, updatedPackages, useBakery, type Project } from '../support/bakery.js';

const bakery = useBakery();
const project = bakery.project;

const TOOL = `  - name: tool\n    from: debian:testing\n    packages: [hello-tool]\n`;

describe('the lock, outdated packages and --update', () => {
  it('follows kiln.lock after the bakery.archive() moves on, lists the security update, and takes it with --update', async () => {
    // Given a project baked against the bakery.archive() as it was
    const p = await project();
    await p.config(bakery.archive(), TOOL);
    const [before] = await p.bake();
    // When a security update of hello-tool appears
    const newer = await startBakeryArchive({ packages: updatedPackages() });
    bakery.track(newer);
    await p.config(newer, TOOL);
    // Then bake still follows the lock
    const [same] = await p.bake();
    expect(same!.digest).toBe(before!.digest);
    // And outdated lists the update, marked as security
    const out = await cli(p.dir, ['outdated', '--json'], { KILN_HOME: p.home });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual([
      {
        image: 'tool',
        name: 'hello-tool',
        locked: '1.0-1',
        available: '1.0-1+deb1u1',
        suite: 'testing-security',
        security: true,
      },
    ]);
    const human = await cli(p.dir, ['outdated', '--exit-code'], { KILN_HOME: p.home });
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/hello-tool\s+1\.0-1\s+1\.0-1\+deb1u1\s+testing-security\s+SECURITY/);
    // And --update takes it: a new lock entry and a new digest
    const [updated] = await p.bake({ update: true });
    expect(updated!.digest).not.toBe(before!.digest);
    const lock = (await readLock(p.dir))!;
    expect(lock.images.tool!.packages.find((x) => x.name === 'hello-tool')).toMatchObject({
      version: '1.0-1+deb1u1',
      suite: 'testing-security',
    });
    expect((await p.files('tool')).get('usr/bin/hello-tool')!.content!.toString()).toContain('patched');
  });

  it('resolves again only the image whose packages changed, and --frozen refuses to change the lock', async () => {
    const p = await project();
    await p.config(
      bakery.archive(),
      `${TOOL}  - name: other\n    from: debian:testing\n    packages: [libfake1]\n`,
    );
    await p.bake();
    const lockBefore = (await readLock(p.dir))!;
    await p.config(
      bakery.archive(),
      `${TOOL}  - name: other\n    from: debian:testing\n    packages: [libfake1, fake-certs]\n`,
    );
    await expect(p.bake({ frozen: true })).rejects.toThrow(
      /its packages changed since kiln.lock was written/,
    );
    await p.bake();
    const lockAfter = (await readLock(p.dir))!;
    expect(lockAfter.images.tool).toEqual(lockBefore.images.tool);
    expect(lockAfter.images.other!.packages.map((x) => x.name)).toEqual(['fake-certs', 'libfake1']);
  });

  it('refuses a lock edited by hand', async () => {
    const p = await project();
    await p.config(bakery.archive(), TOOL);
    await p.bake();
    const file = path.join(p.dir, 'kiln.lock');
    await writeFile(file, (await readFile(file, 'utf8')).replace('"1.0-1"', '"1.0-2"'));
    const r = await cli(p.dir, ['bake'], { KILN_HOME: p.home });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}`);
    expect(r.stderr).toMatch(/\[checksum\] does not match/);
  });
});

describe('images built on images', () => {
  const STACK = (basePkgs: string) => `  - name: app
    from: base
    packages: [hello-tool]
    app: { src: ./app }
  - name: base
    from: debian:testing
    packages: [${basePkgs}]
    users: [{ name: svc, uid: 900 }]
`;

  it('bakes bases first, shares their layers, and rebakes the image when its base changes', async () => {
    const p = await project();
    await p.write('app/main.txt', 'app\n');
    await p.config(bakery.archive(), STACK('busybox-static'));
    const first = await p.bake();
    expect(first.map((i) => i.name)).toEqual(['base', 'app']);
    const store = await p.store();
    const base1 = await store.getManifest(first[0]!.digest);
    const app1 = await store.getManifest(first[1]!.digest);
    expect(app1.layers.slice(0, base1.layers.length)).toEqual(base1.layers);
    expect(app1.annotations?.['org.opencontainers.image.base.digest']).toBe(first[0]!.digest);
    const appFiles = await p.files('app');
    expect(appFiles.get('etc/passwd')!.content!.toString()).toContain('svc:x:900:900');
    const status = appFiles.get('var/lib/dpkg/status')!.content!.toString();
    expect([...status.matchAll(/^Package: (.+)$/gm)].map((m) => m[1])).toEqual([
      'busybox-static',
      'fake-mta',
      'hello-tool',
      'libfake1',
    ]);

    // When the base changes, the app is rebaked on top of the new base
    await p.config(bakery.archive(), STACK('busybox-static, fake-certs'));
    const second = await p.bake({ names: ['app'] });
    expect(second.map((i) => i.name)).toEqual(['base', 'app']);
    expect(second[0]!.digest).not.toBe(first[0]!.digest);
    expect(second[1]!.digest).not.toBe(first[1]!.digest);
    const app2 = await store.getManifest(second[1]!.digest);
    expect(app2.annotations?.['org.opencontainers.image.base.digest']).toBe(second[0]!.digest);
  });

  it('refuses a cycle, naming it, with exit code 2', async () => {
    const p = await project();
    await p.config(
      bakery.archive(),
      `  - { name: a, from: b }\n  - { name: b, from: c }\n  - { name: c, from: a }\n`,
    );
    const r = await cli(p.dir, ['bake', '--all'], { KILN_HOME: p.home });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('a → b → c → a');
  });
});

describe('SBOM and signature', () => {
  it('attaches a CycloneDX 1.6 SBOM and a DSSE signature that verifies, and lists them', async () => {
    const p = await project();
    await p.config(bakery.archive(), TOOL);
    const [tool] = await p.bake();
    const r = await cli(p.dir, ['images', '--json'], { KILN_HOME: p.home });
    const [summary] = JSON.parse(r.stdout) as ImageSummary[];
    expect(summary).toMatchObject({
      name: 'tool',
      digest: tool!.digest,
      sbom: { format: 'CycloneDX', specVersion: '1.6', components: 3 },
      signature: { verified: true },
    });
    const store = await p.store();
    const sbomManifest = await store.getManifest(tool!.attachments.sbom.digest);
    expect(sbomManifest.subject?.digest).toBe(tool!.digest);
    const bom = JSON.parse((await store.getBlob(sbomManifest.layers[0]!.digest)).toString()) as {
      bomFormat: string;
      specVersion: string;
      components: { name: string; version: string; purl: string; licenses?: unknown[] }[];
    };
    expect(bom).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.6' });
    const lib = bom.components.find((c) => c.name === 'libfake1')!;
    expect(lib.purl).toBe('pkg:deb/debian/libfake1@1.0-1?arch=amd64');
    expect(lib.licenses).toEqual([{ license: { id: 'LGPL-2.1-or-later' } }]);

    const sigManifest = await store.getManifest(tool!.attachments.signature.digest);
    const envelope = JSON.parse(
      (await store.getBlob(sigManifest.layers[0]!.digest)).toString(),
    ) as DsseEnvelope;
    const pub = await readFile(path.join(homePaths(p.home).keys, 'signing.pub'), 'utf8');
    expect(verifyEnvelope(envelope, [pub], tool!.digest)).toMatch(/^sha256:/);
    expect(() => verifyEnvelope(envelope, [pub], first64('sha256:0'))).toThrow(/covers/);
    const { generateKeyPairSync } = await import('node:crypto');
    const stranger = generateKeyPairSync('ed25519')
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    expect(() => verifyEnvelope(envelope, [stranger], tool!.digest)).toThrow(/no signature by a trusted key/);
  });
});

function first64(prefix: string): `sha256:${string}` {
  return `${prefix}${'0'.repeat(71 - prefix.length)}` as `sha256:${string}`;
}

describe('hostile or broken input is refused and leaves nothing behind', () => {
  async function storeFiles(p: Project): Promise<string[]> {
    const dir = homePaths(p.home).store;
    const blobs = await readdir(path.join(dir, 'blobs', 'sha256')).catch(() => []);
    const index = await readFile(path.join(dir, 'index.json'), 'utf8').catch(() => '');
    return [...blobs.sort(), index];
  }

  it('a .deb whose hash does not match: exit 4, no image, no temp files', async () => {
    const bad = await startTestArchive({
      packages: (await import('../support/bakery.js')).basePackages(),
      corrupt: { debs: ['hello-tool'] },
    });
    bakery.track(bad);
    const p = await project();
    await p.config(bad, TOOL);
    const r = await cli(p.dir, ['bake'], { KILN_HOME: p.home });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/hello-tool/);
    expect(r.stderr).toMatch(/sha-?256/i);
    const store = await p.store();
    expect(await store.list()).toEqual([]);
    expect((await storeFiles(p)).join('\n')).not.toMatch(/tmp/);
    await expect(readFile(path.join(p.dir, 'kiln.lock'))).rejects.toThrow();
  });

  it('an index whose signature fails: exit 4, naming the InRelease and the keyring', async () => {
    const bad = await startTestArchive({
      packages: (await import('../support/bakery.js')).basePackages(),
      corrupt: { signature: ['testing'] },
    });
    bakery.track(bad);
    const p = await project();
    await p.config(bad, TOOL);
    const r = await cli(p.dir, ['bake'], { KILN_HOME: p.home });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('InRelease');
  });

  it('an app tarball with ../ entries: exit 4, naming the entry', async () => {
    const { craftTar } = await import('../support/oci-fixtures.js');
    const p = await project();
    await p.write('app.tar', await craftTar([{ name: '../escape.txt', body: 'x' }]));
    await p.config(bakery.archive(), `${TOOL}    app: { src: ./app.tar }\n`);
    const r = await cli(p.dir, ['bake'], { KILN_HOME: p.home });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('../escape.txt');
    expect(await (await p.store()).list()).toEqual([]);
  });

  it('a config with wrong types: exit 2, naming the file, the field and the fix', async () => {
    const p = await project();
    const file = await p.config(
      bakery.archive(),
      `  - name: tool\n    from: debian:testing\n    packages: hello-tool\n    ports: [http]\n`,
    );
    const r = await cli(p.dir, ['bake'], { KILN_HOME: p.home });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toMatch(/\[images\[0\]\.packages\] line 6: .*expected array.*\(fix: give an array\)/);
    expect(r.stderr).toMatch(/\[images\[0\]\.ports\[0\]\]/);
    expect(await (await p.store()).list()).toEqual([]);
  });

  it('an unknown package: exit 2, naming it', async () => {
    const p = await project();
    await p.config(bakery.archive(), `  - name: tool\n    from: debian:testing\n    packages: [hello-tol]\n`);
    const r = await cli(p.dir, ['bake'], { KILN_HOME: p.home });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/hello-tol/);
    expect(r.stderr).toMatch(/hello-tool/);
  });
});
