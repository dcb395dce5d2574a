import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The layering of docs/architecture.md, enforced: each context may import only the contexts listed
 * for it, and only through their index.ts.
 */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  errors: [],
  spec: ['errors'],
  oci: ['errors'],
  runtime: ['errors', 'oci'],
  bake: ['errors', 'oci', 'runtime', 'spec'],
  traffic: ['errors'],
  analysis: ['errors'],
  state: ['errors'],
  fleet: ['errors', 'spec', 'oci', 'runtime', 'traffic', 'analysis', 'state'],
  chaos: ['errors', 'spec', 'runtime', 'fleet', 'state'],
  dev: ['errors', 'spec', 'oci', 'runtime', 'bake', 'fleet'],
  k8s: ['errors', 'spec', 'runtime'],
  api: ['errors', 'spec', 'oci', 'bake', 'runtime', 'traffic', 'analysis', 'state', 'fleet', 'chaos'],
  cli: [
    'errors',
    'oci',
    'runtime',
    'bake',
    'spec',
    'traffic',
    'analysis',
    'state',
    'fleet',
    'chaos',
    'api',
    'dev',
    'k8s',
  ],
};

const SRC = path.resolve(import.meta.dirname, '../src');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

describe('architecture', () => {
  const contexts = readdirSync(SRC).filter((n) => statSync(path.join(SRC, n)).isDirectory());

  it('knows every context folder', () => {
    expect(contexts.filter((c) => !(c in ALLOWED))).toEqual([]);
  });

  it('imports other contexts only downward and only through their index.ts', () => {
    const violations: string[] = [];
    for (const context of contexts) {
      for (const file of filesUnder(path.join(SRC, context))) {
        for (const spec of importsOf(file)) {
          if (!spec.startsWith('.')) continue;
          const target = path.relative(SRC, path.resolve(path.dirname(file), spec));
          const [targetContext, ...rest] = target.split(path.sep);
          if (!targetContext || targetContext === context || targetContext.startsWith('..')) continue;
          const where = path.relative(SRC, file);
          if (!ALLOWED[context]!.includes(targetContext))
            violations.push(`${where} imports ${targetContext} (not allowed)`);
          else if (rest.join('/') !== 'index.js')
            violations.push(`${where} imports ${target}, not ${targetContext}/index.js`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('keeps source files under 400 lines', () => {
    const long = filesUnder(SRC)
      .map((f) => [path.relative(SRC, f), readFileSync(f, 'utf8').split('\n').length] as const)
      .filter(([, n]) => n > 400);
    expect(long).toEqual([]);
  });
});
