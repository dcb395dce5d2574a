import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { homePaths, readLock } from '../../src/bake/index.js';
import { useBakery } from '../support/bakery.js';

const bakery = useBakery();
const project = bakery.project;

const TOOL_IMAGE = `  - name: tool
    from: debian:testing
    packages: [hello-tool, fake-certs]
    users: [{ name: app, uid: 1000, home: /home/app }]
    user: app
`;

describe('baking packages', () => {
  it('installs only the declared packages and their dependencies, in merged-/usr, without docs', async () => {
    // Given a stack asking for hello-tool (which needs libfake1 and an MTA) and fake-certs
    const p = await project();
    await p.config(bakery.archive(), TOOL_IMAGE);
    // When it is baked
    const [tool] = await p.bake();
    // Then the image holds exactly those packages
    expect(tool!.packages).toBe(4);
    const files = await p.files('tool');
    const status = files.get('var/lib/dpkg/status')!.content!.toString();
    expect([...status.matchAll(/^Package: (.+)$/gm)].map((m) => m[1])).toEqual([
      'fake-certs',
      'fake-mta',
      'hello-tool',
      'libfake1',
    ]);
    expect(status).toMatch(/^Status: install ok installed$/m);
    expect(files.has('usr/bin/unrelated')).toBe(false);
    // merged-/usr: /bin is a link, the files live under /usr, and relative links still resolve
    expect(files.get('bin')).toMatchObject({ type: 'symlink', linkname: 'usr/bin' });
    expect(files.get('lib')).toMatchObject({ type: 'symlink', linkname: 'usr/lib' });
    expect(files.get('usr/bin/hello-tool')).toMatchObject({ type: 'file', mode: 0o755 });
    expect(files.get('usr/lib/x86_64-linux-gnu/libfake.so.1')).toMatchObject({
      type: 'symlink',
      linkname: 'libfake.so.1.0',
    });
    expect([...files.keys()].some((f) => f.startsWith('bin/') || f.startsWith('lib/'))).toBe(false);
    // docs and man pages are left out, copyright files kept
    expect(files.has('usr/share/man/man1/hello-tool.1.gz')).toBe(false);
    expect(
      [...files.keys()]
        .filter((f) => f.startsWith('usr/share/doc/'))
        .every((f) => /^usr\/share\/doc\/[^/]+(\/copyright)?$/.test(f)),
    ).toBe(true);
    expect(files.has('usr/share/doc/hello-tool/copyright')).toBe(true);
    expect(files.has('usr/share/hello-tool/data.txt')).toBe(true);
    // what maintainer scripts would have made
    expect(files.get('etc/passwd')!.content!.toString()).toBe(
      'root:x:0:0:root:/root:/usr/sbin/nologin\napp:x:1000:1000:app:/home/app:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
    );
    expect(files.get('etc/group')!.content!.toString()).toBe('root:x:0:\napp:x:1000:\nnogroup:x:65534:\n');
    expect(files.get('home/app')).toMatchObject({ type: 'directory', uid: 1000 });
    expect(files.get('etc/ssl/certs/ca-certificates.crt')!.content!.toString()).toBe(
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n',
    );
    expect(files.get('tmp')).toMatchObject({ type: 'directory', mode: 0o1777 });
  });

  it('keeps what `exclude` brings back and drops what it adds', async () => {
    const p = await project();
    await p.config(
      bakery.archive(),
      `  - name: t\n    from: debian:testing\n    packages: [hello-tool]\n    exclude: ["/usr/share/hello-tool/**", "/usr/share/doc/**"]\n`,
    );
    await p.bake();
    const files = await p.files('t');
    expect(files.has('usr/share/hello-tool/data.txt')).toBe(false);
    expect(files.has('usr/share/doc/hello-tool/copyright')).toBe(false);
    expect(files.has('usr/share/man/man1/hello-tool.1.gz')).toBe(true);
  });

  it('bakes declared mount points as empty directories and records them as Volumes', async () => {
    const p = await project();
    await p.config(
      bakery.archive(),
      `  - name: base\n    from: debian:testing\n    packages: [hello-tool]\n    volumes: [/data]\n` +
        `  - name: t\n    from: base\n    volumes: [/etc/kiln, /var/lib/db]\n`,
    );
    const [, t] = await p.bake();
    const files = await p.files('t');
    for (const dir of ['data', 'etc/kiln', 'var/lib/db']) {
      expect(files.get(dir)).toMatchObject({ type: 'directory', mode: 0o755, uid: 0, gid: 0 });
      expect([...files.keys()].some((f) => f.startsWith(`${dir}/`))).toBe(false);
    }
    const store = await p.store();
    const manifest = await store.getManifest(t!.digest);
    const config = JSON.parse((await store.getBlob(manifest.config.digest)).toString()) as {
      config: { Volumes?: Record<string, object> };
    };
    expect(config.config.Volumes).toEqual({ '/data': {}, '/etc/kiln': {}, '/var/lib/db': {} });
  });

  it('writes a lock with every package version, SHA-256 and suite, and a checksum', async () => {
    const p = await project();
    await p.config(bakery.archive(), TOOL_IMAGE);
    await p.bake();
    const lock = (await readLock(p.dir))!;
    const pkgs = lock.images.tool!.packages;
    expect(pkgs.map((x) => `${x.name}=${x.version}@${x.suite}`)).toEqual([
      'fake-certs=1@testing',
      'fake-mta=2.0-1@testing',
      'hello-tool=1.0-1@testing',
      'libfake1=1.0-1@testing',
    ]);
    const deb = await readFile(bakery.archive().debPath('hello-tool', '1.0-1'));
    const { createHash } = await import('node:crypto');
    expect(pkgs[2]!.sha256).toBe(createHash('sha256').update(deb).digest('hex'));
    expect(lock.checksum).toMatch(/^sha256:[a-f0-9]{64}$/);
  });
});

describe('reproducible', () => {
  it('gives byte-identical digests for the same config and lock, in two folders, at two times', async () => {
    // Given a project baked once (which writes kiln.lock)
    const first = await project();
    await first.config(bakery.archive(), TOOL_IMAGE);
    await first.write('app/index.js', 'console.log(1)\n');
    const [a] = await first.bake();
    // When a copy of it (config + lock) is baked elsewhere, with its own empty state, later
    const second = await project();
    await first.copyTo(second);
    await new Promise((r) => setTimeout(r, 1100));
    const [b] = await second.bake();
    // Then the digests are the same, of the image and of its SBOM and manifest of files
    expect(b!.digest).toBe(a!.digest);
    expect(b!.attachments.files.digest).toBe(a!.attachments.files.digest);
    expect(b!.attachments.sbom.digest).toBe(a!.attachments.sbom.digest);
    expect(b!.upToDate).toBe(false);
  });
});

describe('cache', () => {
  it('does no work and no network on a second bake, and rebuilds only the app layer after an app change', async () => {
    const p = await project();
    await p.config(bakery.archive(), `${TOOL_IMAGE}    app: { src: ./app }\n`);
    await p.write('app/server.js', 'v1\n');
    const [first] = await p.bake();
    const requestsBefore = bakery.archive().requests.length;
    const [again] = await p.bake();
    expect(again!.digest).toBe(first!.digest);
    expect(again!.upToDate).toBe(true);
    expect(bakery.archive().requests.length).toBe(requestsBefore);

    await p.write('app/server.js', 'v2\n');
    const [changed] = await p.bake();
    expect(changed!.layers.map((l) => `${l.kind}:${l.cached ? 'cached' : 'built'}`)).toEqual([
      'packages:cached',
      'files:cached',
      'app:built',
    ]);
    expect(changed!.digest).not.toBe(first!.digest);
    expect(bakery.archive().requests.length).toBe(requestsBefore);
    const files = await p.files('tool');
    expect(files.get('app/server.js')!.content!.toString()).toBe('v2\n');
  });

  it('re-verifies a cached .deb and refuses one changed on disk', async () => {
    const p = await project();
    await p.config(bakery.archive(), TOOL_IMAGE);
    await p.bake();
    // Damage the cached .deb, drop the layer cache, bake again from the lock
    const { readdir, writeFile, rm } = await import('node:fs/promises');
    const debs = path.join(homePaths(p.home).cache, 'debs');
    for (const f of await readdir(debs)) await writeFile(path.join(debs, f), 'tampered');
    await rm(path.join(homePaths(p.home).cache, 'layers'), { recursive: true });
    await expect(p.bake()).rejects.toThrow(/sha-?256|digest|size/i);
  });
});
