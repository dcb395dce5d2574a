import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_EPOCH, type TestArchive } from '../support/debian-archive.js';
import { makeProject, startBakeryArchive, type Project } from '../support/bakery.js';

/**
 * Golden digests, as apko keeps them: a fixture stack baked from the fixture archive must give
 * exactly the recorded digests. A change to how kiln builds images shows up here; when it is
 * intended, `npm run golden:update` records the new digests (commit them with the change).
 */
const GOLDEN = path.join(import.meta.dirname, 'golden.json');

let archive: TestArchive;
let p: Project;

beforeAll(async () => {
  archive = await startBakeryArchive();
  p = await makeProject();
  await p.write('app/index.js', "console.log('golden');\n");
  await p.write('app/lib/util.js', 'export const x = 1;\n');
  await p.write('etc/app.conf', 'listen = 8080\n');
  await p.config(
    archive,
    `  - name: base
    from: debian:testing
    packages: [hello-tool, fake-certs, busybox-static]
    users: [{ name: app, uid: 1000, home: /home/app, groups: [staff] }]
    groups: [{ name: staff, gid: 50 }]
    files: [{ src: etc/app.conf, dest: /etc/app.conf, mode: "0640" }]
    env: { LANG: C.UTF-8 }
  - name: app
    from: base
    app: { src: ./app, owner: "1000:1000" }
    user: app
    workdir: /app
    entrypoint: [/usr/bin/busybox]
    cmd: [cat, /app/index.js]
    ports: [8080, "9090/udp"]
    labels: { team: platform }
`,
  );
});

afterAll(async () => {
  await p?.cleanup();
  await archive?.close();
});

describe('golden digests', () => {
  it('bakes the fixture stack to the recorded digests', async () => {
    const baked = await p.bake({ sourceDateEpoch: FIXTURE_EPOCH });
    const digests = Object.fromEntries(baked.map((b) => [b.name, b.digest]));
    if (process.env.KILN_GOLDEN_UPDATE === '1' || !existsSync(GOLDEN)) {
      if (process.env.CI === 'true')
        throw new Error(`${GOLDEN} is missing: run npm run golden:update and commit it`);
      await writeFile(GOLDEN, JSON.stringify(digests, null, 2) + '\n');
    }
    expect(digests).toEqual(JSON.parse(await readFile(GOLDEN, 'utf8')));
  });
});
