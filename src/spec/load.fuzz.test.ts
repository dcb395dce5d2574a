/**
 * Hostile configs against the loader: YAML text the fuzzer writes (aliases, tags, anchors, deep
 * nesting), valid configs with one field replaced by anything, and arbitrary JavaScript values as a
 * `kiln.config.ts` could export. The loader must return a stack or throw a ValidationError naming
 * the file, each issue with its path and message.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { expectKilnError, fuzzParams, fuzzTimeout } from '../../test/support/fuzz.js';
import { loadConfig, validateStack } from './load.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-fuzz-spec-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A valid stack touching most of the schema, which the properties then damage. */
const VALID = {
  images: [
    {
      name: 'base',
      from: 'debian:bookworm',
      packages: ['busybox-static', 'ca-certificates'],
      users: [{ name: 'app', uid: 1000, groups: ['app'] }],
      groups: [{ name: 'app', gid: 1000 }],
      files: [{ src: 'motd', dest: '/etc/motd', mode: '0644' }],
      env: { LANG: 'C.UTF-8' },
      ports: [8080, '9090/tcp'],
      labels: { team: 'web' },
    },
    { name: 'web', from: 'base', user: 'app', entrypoint: ['/bin/sh'], cmd: ['-c', 'true'], run: ['true'] },
  ],
  services: [{ name: 'web', image: 'web', port: 8080, replicas: 2 }],
};

/** Checks what every refusal must carry: a ValidationError for `file`, each issue with a message. */
function expectRefusal(err: unknown, file: string | undefined): void {
  expectKilnError(err, 'config');
  expect(err).toBeInstanceOf(ValidationError);
  const v = err as ValidationError;
  expect(v.file).toBe(file);
  expect(v.issues.length).toBeGreaterThan(0);
  for (const i of v.issues) {
    expect(typeof i.path).toBe('string');
    expect(i.message.length).toBeGreaterThan(0);
  }
}

async function loadText(text: string, name = 'kiln.yaml'): Promise<void> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  await loadConfig(file).then(
    (loaded) => expect(loaded.file).toBe(file),
    (err: unknown) => expectRefusal(err, file),
  );
}

/** Every path to a value in `value`, objects and arrays included. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out = [prefix];
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value))
      out.push(...pathsOf(v, [...prefix, Array.isArray(value) ? Number(k) : k]));
  }
  return out;
}

/** `value` with the thing at `at` replaced by `by` (or removed when `by` is undefined). */
function replaced(value: unknown, at: readonly (string | number)[], by: unknown): unknown {
  if (at.length === 0) return by;
  const copy = (Array.isArray(value) ? [...value] : { ...(value as object) }) as Record<
    string | number,
    unknown
  >;
  const [head, ...rest] = at;
  if (rest.length === 0 && by === undefined) delete copy[head!];
  else copy[head!] = replaced(copy[head!], rest, by);
  return copy;
}

const hostileValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    undefined,
    '',
    '../../etc/passwd',
    '/..',
    'sha256:' + 'a'.repeat(64),
    -1,
    1e308,
    0.5,
    65536,
    'debian:',
    '__proto__',
  ),
  fc.dictionary(
    fc.constantFrom('__proto__', 'constructor', 'name', 'entrypint', 'x'),
    fc.jsonValue({ maxDepth: 1 }),
  ),
);
const YAML_SYNTAX = 'images:name:from:- []{}&a*a!!str|>"\'#\n  ,?<<:debian:bookworm 0';

describe('config loader properties', () => {
  it('accepts the valid base config', async () => {
    expect(validateStack(VALID, 'kiln.yaml').images.map((i) => i.name)).toEqual(['base', 'web']);
    await loadText(stringify(VALID));
  });

  it(
    'a valid config with one field replaced or removed: a stack or a ValidationError with paths',
    () => {
      const paths = pathsOf(VALID);
      fc.assert(
        fc.property(fc.constantFrom(...paths), hostileValue, (at, by) => {
          try {
            validateStack(replaced(VALID, at, by), 'kiln.yaml');
          } catch (err) {
            expectRefusal(err, 'kiln.yaml');
          }
        }),
        fuzzParams(300),
      );
    },
    fuzzTimeout(300),
  );

  it(
    'any JavaScript value a kiln.config.ts could export: a stack or a ValidationError',
    () => {
      const anything = fc.anything({
        maxDepth: 3,
        withNullPrototype: true,
        withBigInt: true,
        withDate: true,
        withMap: true,
        withSet: true,
        withTypedArray: true,
        withSparseArray: true,
        withBoxedValues: true,
        withObjectString: true,
      });
      fc.assert(
        fc.property(
          fc.oneof(anything, fc.record({ images: anything, services: anything }, { requiredKeys: [] })),
          (value) => {
            try {
              validateStack(value, 'kiln.config.ts');
            } catch (err) {
              expectRefusal(err, 'kiln.config.ts');
            }
          },
        ),
        fuzzParams(300),
      );
    },
    fuzzTimeout(300),
  );

  it(
    'YAML text: a stack or a ValidationError naming the file',
    async () => {
      const text = fc.oneof(
        fc.array(fc.constantFrom(...YAML_SYNTAX), { maxLength: 200 }).map((c) => c.join('')),
        fc.string({ maxLength: 200 }),
        fc
          .tuple(fc.constantFrom(...pathsOf(VALID)), hostileValue)
          .map(([at, by]) => stringify(replaced(VALID, at, by)) ?? ''),
      );
      await fc.assert(
        fc.asyncProperty(text, (t) => loadText(t)),
        fuzzParams(150, 0.2),
      );
    },
    fuzzTimeout(150, 0.2, 10),
  );
});

describe('config loader against values that run code', () => {
  it.each([
    // Both escaped as the raw error thrown by the config's own code.
    [
      'a getter that throws',
      {
        get images(): never[] {
          throw new Error('boom');
        },
      },
      /could not be read: boom/,
    ],
    [
      'a Proxy that throws',
      new Proxy(
        {},
        {
          get: () => {
            throw new TypeError('trap');
          },
        },
      ),
      /could not be read: trap/,
    ],
  ])('refuses %s with a ValidationError naming the file', (_name, value, message) => {
    const err = (() => {
      try {
        validateStack(value, 'kiln.config.ts');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expectRefusal(err, 'kiln.config.ts');
    expect((err as Error).message).toMatch(message);
  });
});

describe('config loader against YAML bombs and tricks', () => {
  const laughs = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 10; i++)
    laughs.push(
      `a${i}: &a${i} [${Array(10)
        .fill(`*a${i - 1}`)
        .join(', ')}]`,
    );
  it.each([
    // Both were a raw ReferenceError from the yaml library.
    ['a billion laughs', `${laughs.join('\n')}\nimages: []\n`, /Excessive alias count/],
    ['an alias without its anchor', 'images: *nowhere\n', /Unresolved alias/],
    ['nesting 10,000 deep', `images: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`, /line 1: /],
    ['two documents', 'images: []\n---\nimages: []\n', /multiple documents/],
    ['a key over 1024 characters', `${'k'.repeat(5000)}: 1\n`, /at most 1024 chars/],
    ['a binary tag', 'images: !!binary aGk=\n', /expected array/],
    ['an unknown __proto__ key', '__proto__: {images: []}\nimages: []\n', /unknown field "__proto__"/],
  ])('refuses %s with a ValidationError', async (_name, text, message) => {
    const file = path.join(dir, 'kiln.yaml');
    await writeFile(file, text);
    const started = Date.now();
    const err = await loadConfig(file).catch((e: unknown) => e);
    expectRefusal(err, file);
    expect((err as Error).message).toMatch(message);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
