import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExitCode } from './exit.js';
import { parsePort } from './dev.js';
import { kiln } from './testkit.js';

const CONFIG = `images:
  - { name: base, from: "debian:bookworm", packages: [busybox-static] }
  - { name: site, from: base, app: { src: ./www }, cmd: [httpd] }
  - { name: flat, from: "debian:bookworm", app: { src: ./site.tgz, type: tar }, cmd: [httpd] }
services:
  - { name: web, image: site, port: 8080 }
  - { name: flat, image: flat, port: 8081 }
  - { name: pinned, image: "sha256:${'c'.repeat(64)}", port: 8082 }
`;

describe('kiln dev', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  async function project(): Promise<string> {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-cli-dev-'));
    await writeFile(path.join(dir, 'kiln.yaml'), CONFIG);
    return path.join(dir, 'kiln.yaml');
  }

  it.each([
    ['an unknown service', ['nope'], /no service "nope" in .*kiln\.yaml; declared: web, flat, pinned/],
    [
      'an image on a Debian suite with a tarball app, naming both fields',
      ['flat'],
      /\[images\.flat\.from\][\s\S]*\[images\.flat\.app\.src\]/,
    ],
    ['a service pinned to a digest', ['pinned'], /\[services\.pinned\.image\] is a digest/],
    ['a port that is no port', ['web', '--port', '8o80'], /\[--port\] "8o80" is not a port/],
    ['the router port of another service', ['web', '--port', '8081'], /8081 is where service flat is served/],
  ])('refuses %s before baking anything (exit 2)', async (_what, args, message) => {
    const file = await project();
    const r = await kiln('-c', file, 'dev', ...args);
    expect(r.code).toBe(ExitCode.Usage);
    expect(r.error).toMatch(message);
  });

  it('parses ports', () => {
    expect(parsePort('18080')).toBe(18080);
    expect(() => parsePort('0')).toThrow('"0" is not a port');
    expect(() => parsePort('65536')).toThrow('"65536" is not a port');
  });
});
