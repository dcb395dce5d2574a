import { describe, expect, it } from 'vitest';
import { buildLayer } from '../../src/oci/index.js';
import { useBakery } from '../support/bakery.js';

const bakery = useBakery();
const project = bakery.project;

const IMAGE = (app: string) =>
  `  - name: svc\n    from: debian:testing\n    packages: [busybox-static]\n    app: ${app}\n`;

describe('the app, delivered as a package', () => {
  it('packs an npm project with npm pack: only what it publishes, under /app', async () => {
    const p = await project();
    await p.write(
      'svc/package.json',
      JSON.stringify({ name: 'svc', version: '1.2.3', files: ['server.js'] }),
    );
    await p.write('svc/server.js', 'console.log(1)\n');
    await p.write('svc/secret.env', 'TOKEN=x\n');
    await p.config(bakery.archive(), IMAGE('{ src: ./svc, type: npm, owner: "1000:1000" }'));
    await p.bake();
    const files = await p.files('svc');
    expect(files.get('app/server.js')).toMatchObject({ type: 'file', uid: 1000, gid: 1000, mode: 0o644 });
    expect(files.has('app/package.json')).toBe(true);
    expect(files.has('app/secret.env')).toBe(false);
    expect([...files.keys()].some((f) => f.startsWith('app/package/'))).toBe(false);
  });

  it('unpacks a tarball (an npm-style package/ prefix is taken off) to the destination', async () => {
    const p = await project();
    const tar = await buildLayer(
      [
        { path: 'package/index.js', type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.from('x\n') },
        {
          path: 'package/bin/run',
          type: 'file',
          mode: 0o755,
          uid: 0,
          gid: 0,
          content: Buffer.from('#!/bin/sh\n'),
        },
      ],
      { mtime: 0 },
    );
    await p.write('svc.tgz', tar.blob);
    await p.config(bakery.archive(), IMAGE('{ src: ./svc.tgz, dest: /srv/svc }'));
    await p.bake();
    const files = await p.files('svc');
    expect(files.get('srv/svc/index.js')!.content!.toString()).toBe('x\n');
    expect(files.get('srv/svc/bin/run')).toMatchObject({ mode: 0o755 });
  });

  it('copies a directory, leaving out what `ignore` names, with modes normalised', async () => {
    const p = await project();
    await p.write('site/index.html', '<h1>hi</h1>\n');
    await p.write('site/.git/HEAD', 'ref\n');
    await p.write('site/tmp/cache', 'junk\n');
    await p.config(bakery.archive(), IMAGE('{ src: ./site, ignore: [".git/**", "tmp/**", "tmp"] }'));
    await p.bake();
    const files = await p.files('svc');
    expect(files.get('app/index.html')).toMatchObject({ mode: 0o644, uid: 0 });
    expect([...files.keys()].filter((f) => f.startsWith('app/'))).toEqual(['app/index.html']);
  });

  it('says which field is wrong when the app is missing', async () => {
    const p = await project();
    await p.config(bakery.archive(), IMAGE('{ src: ./nowhere }'));
    await expect(p.bake()).rejects.toThrow(/\[app\.src\] .*nowhere does not exist/);
  });
});
