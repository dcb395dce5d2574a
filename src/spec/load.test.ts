import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '../errors/index.js';
import { DEFAULT_EXCLUDES } from './schema.js';
import { findConfig, loadConfig } from './load.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-spec-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function expectInvalid(file: string): Promise<ValidationError> {
  const err = await loadConfig(file).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ValidationError);
  return err as ValidationError;
}

describe('findConfig', () => {
  it('prefers kiln.config.ts, then kiln.config.js, then kiln.yaml', async () => {
    await writeFile(path.join(dir, 'kiln.yaml'), 'images: []\n');
    expect(findConfig(dir)).toBe(path.join(dir, 'kiln.yaml'));
    await writeFile(path.join(dir, 'kiln.config.js'), 'export default { images: [] };\n');
    expect(findConfig(dir)).toBe(path.join(dir, 'kiln.config.js'));
    await writeFile(path.join(dir, 'kiln.config.ts'), 'export default { images: [] };\n');
    expect(findConfig(dir)).toBe(path.join(dir, 'kiln.config.ts'));
  });

  it('names the files it looked for when there is none', () => {
    expect(() => findConfig(dir)).toThrow(NotFoundError);
    expect(() => findConfig(dir)).toThrow(/kiln\.config\.ts, kiln\.config\.js, kiln\.yaml/);
  });
});

describe('loadConfig', () => {
  it('loads a TypeScript config that imports kiln and fills defaults', async () => {
    const file = path.join(dir, 'kiln.config.ts');
    await writeFile(
      file,
      `import { defineImage, defineStack } from 'kiln';
const base: string = 'debian:bookworm';
export default defineStack({ images: [defineImage({ name: 'web', from: base, packages: ['busybox-static'], files: [{ src: 'a', dest: '/a', mode: '0640' }] })] });
`,
    );
    const { stack } = await loadConfig(file);
    const web = stack.images[0]!;
    expect(web.packages).toEqual(['busybox-static']);
    expect(web.profile).toBe('minimal');
    expect(web.exclude).toEqual(DEFAULT_EXCLUDES);
    expect(web.files[0]!.mode).toBe(0o640);
  });

  it('accepts the same schema as YAML', async () => {
    const file = path.join(dir, 'kiln.yaml');
    await writeFile(
      file,
      'images:\n  - name: web\n    from: debian:bookworm\n    packages: [busybox-static]\n',
    );
    const { stack } = await loadConfig(file);
    expect(stack.images[0]!.name).toBe('web');
  });

  it('reports every wrong type at once, with the path, the YAML line and a fix', async () => {
    const file = path.join(dir, 'kiln.yaml');
    await writeFile(
      file,
      'images:\n  - name: web\n    from: debian:bookworm\n    packages: [busybox, 7]\n    profile: fat\n    entrypint: [x]\n',
    );
    const err = await expectInvalid(file);
    expect(err.file).toBe(file);
    const byPath = Object.fromEntries(err.issues.map((i) => [i.path, i]));
    expect(byPath['images[0].packages[1]']!.message).toMatch(/^line 4: /);
    expect(byPath['images[0].profile']!.fix).toMatch(/"minimal", "minbase"/);
    expect(byPath['images[0]']!.message).toMatch(/unknown field "entrypint"/);
    expect(byPath['images[0]']!.fix).toBe('did you mean "entrypoint"?');
    expect(err.message).toContain(file);
  });

  it('refuses unknown bases, duplicate names and packages on scratch', async () => {
    const file = path.join(dir, 'kiln.yaml');
    await writeFile(
      file,
      'images:\n  - { name: a, from: nowhere }\n  - { name: a, from: scratch, packages: [curl] }\n  - { name: b, from: "debian:" }\n',
    );
    const err = await expectInvalid(file);
    const paths = err.issues.map((i) => i.path).sort();
    expect(paths).toEqual(['images[0].from', 'images[1].from', 'images[1].name', 'images[2].from']);
  });

  it('accepts a user declared by the base image', async () => {
    const file = path.join(dir, 'kiln.yaml');
    await writeFile(
      file,
      'images:\n  - { name: base, from: scratch, users: [{ name: app, uid: 1000 }] }\n  - { name: top, from: base, user: app }\n  - { name: bad, from: base, user: ghost }\n',
    );
    const err = await expectInvalid(file);
    expect(err.issues.map((i) => i.path)).toEqual(['images[2].user']);
  });

  it('names the file when a TypeScript config throws', async () => {
    const file = path.join(dir, 'kiln.config.ts');
    await writeFile(file, "throw new Error('boom');\n");
    const err = await expectInvalid(file);
    expect(err.message).toMatch(/could not be loaded: boom/);
  });

  it('reports YAML syntax errors with the line', async () => {
    const file = path.join(dir, 'kiln.yaml');
    await writeFile(file, 'images:\n  - name: [unclosed\n');
    const err = await expectInvalid(file);
    expect(err.issues[0]!.message).toMatch(/^line \d+: /);
  });
});
