import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createJiti } from 'jiti';
import { LineCounter, parseDocument, isNode } from 'yaml';
import type { z } from 'zod';
import { NotFoundError, ValidationError, type ValidationIssue } from '../errors/index.js';
import { checkRegions } from './targets.js';
import { resolveTrustKeyPaths } from './trust.js';
import {
  appSchema,
  fileSchema,
  imageSchema,
  mirrorSchema,
  stackSchema,
  userSchema,
  type StackSpec,
} from './schema.js';

/** The file names kiln looks for, in order, when no `-c FILE` is given. */
export const CONFIG_FILE_NAMES: readonly string[] = Object.freeze([
  'kiln.config.ts',
  'kiln.config.js',
  'kiln.yaml',
]);

/** A validated stack and where it came from. */
export interface LoadedConfig {
  /** Absolute path of the config file. */
  readonly file: string;
  /** The directory relative paths in the config are resolved against. */
  readonly dir: string;
  readonly stack: StackSpec;
}

/** Finds the config file in `dir`: `kiln.config.ts`, then `kiln.config.js`, then `kiln.yaml`. */
export function findConfig(dir: string): string {
  for (const name of CONFIG_FILE_NAMES) {
    const candidate = path.resolve(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new NotFoundError(
    `no kiln config in ${path.resolve(dir)}: looked for ${CONFIG_FILE_NAMES.join(', ')}. ` +
      'Create one (see examples/hello) or pass -c FILE.',
  );
}

/**
 * Loads and validates a config file (`.ts`, `.js`, `.mjs` or `.yaml`/`.yml`). Every problem is
 * reported at once as a ValidationError naming the file, the field path (and the YAML line) and a fix.
 */
export async function loadConfig(file: string): Promise<LoadedConfig> {
  const abs = path.resolve(file);
  const info = await stat(abs).catch(() => undefined);
  if (!info?.isFile()) throw new NotFoundError(`config file ${abs} does not exist`);
  const ext = path.extname(abs);
  let raw: unknown;
  let locate: (p: readonly PropertyKey[]) => string = () => '';
  if (ext === '.yaml' || ext === '.yml') {
    const text = await readFile(abs, 'utf8');
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { lineCounter, prettyErrors: true });
    if (doc.errors.length > 0) {
      throw new ValidationError(
        abs,
        doc.errors.map((e) => ({
          path: '',
          message: `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`,
          fix: 'correct the YAML syntax',
        })),
      );
    }
    try {
      raw = doc.toJS() ?? {};
    } catch (err) {
      // The yaml library throws (a ReferenceError) for an alias with no anchor, and for aliases
      // that would expand into a huge document (the "billion laughs" attack).
      throw new ValidationError(
        abs,
        [
          {
            path: '',
            message: `cannot be read: ${err instanceof Error ? err.message : String(err)}`,
            fix: 'define each anchor (&name) before its aliases (*name), and use aliases sparingly',
          },
        ],
        { cause: err },
      );
    }
    locate = (p) => {
      for (let n = p.length; n > 0; n--) {
        const node = doc.getIn(p.slice(0, n) as unknown[], true);
        if (isNode(node) && node.range) return `line ${lineCounter.linePos(node.range[0]).line}: `;
      }
      return '';
    };
  } else if (ext === '.ts' || ext === '.js' || ext === '.mjs' || ext === '.mts') {
    raw = await importConfigModule(abs);
  } else {
    throw new ValidationError(abs, [
      { path: '', message: `unknown config type "${ext}"`, fix: `name it ${CONFIG_FILE_NAMES.join(' or ')}` },
    ]);
  }
  const stack = resolveTrustKeyPaths(validateStack(raw, abs, locate), path.dirname(abs));
  return { file: abs, dir: path.dirname(abs), stack };
}

/** Validates an already-parsed config value; `file` is used in messages. */
export function validateStack(
  raw: unknown,
  file: string | undefined,
  locate: (p: readonly PropertyKey[]) => string = () => '',
): StackSpec {
  let parsed: ReturnType<typeof stackSchema.safeParse>;
  try {
    parsed = stackSchema.safeParse(raw);
  } catch (err) {
    // A config module's value ran code while being read (a getter, a Proxy) and that code threw.
    throw new ValidationError(
      file,
      [
        {
          path: '',
          message: `could not be read: ${err instanceof Error ? err.message : String(err)}`,
          fix: 'export plain data (objects, arrays, strings, numbers) from the config',
        },
      ],
      { cause: err },
    );
  }
  if (!parsed.success) {
    throw new ValidationError(
      file,
      parsed.error.issues.map((issue) => toValidationIssue(issue, locate)),
    );
  }
  const issues = crossCheck(parsed.data);
  if (issues.length > 0) throw new ValidationError(file, issues);
  return parsed.data;
}

async function importConfigModule(abs: string): Promise<unknown> {
  const jiti = createJiti(import.meta.url, {
    alias: { kiln: selfEntry() },
    moduleCache: false,
    fsCache: false,
  });
  let mod: unknown;
  try {
    mod = await jiti.import(abs);
  } catch (err) {
    throw new ValidationError(
      abs,
      [
        {
          path: '',
          message: `could not be loaded: ${err instanceof Error ? err.message : String(err)}`,
          fix: 'fix the error above; the config must default-export defineStack({...})',
        },
      ],
      { cause: err },
    );
  }
  const value = (mod as { default?: unknown }).default ?? mod;
  return value;
}

/** kiln's own public entry, so a config's `import { defineStack } from 'kiln'` works without installing kiln. */
function selfEntry(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const js = path.resolve(here, '../index.js');
  return existsSync(js) ? js : path.resolve(here, '../index.ts');
}

function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

function toValidationIssue(
  issue: z.core.$ZodIssue,
  locate: (p: readonly PropertyKey[]) => string,
): ValidationIssue {
  const where = locate(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.join('", "');
    const guesses = issue.keys.map(closestField).filter((g): g is string => g !== undefined);
    return {
      path: formatPath(issue.path),
      message: `${where}unknown field "${keys}"`,
      fix: guesses.length
        ? `did you mean "${guesses.join('", "')}"?`
        : 'remove it or check its spelling against the reference in README.md',
    };
  }
  const fix =
    issue.code === 'invalid_type'
      ? `give ${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected}`
      : issue.code === 'invalid_value'
        ? `use one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`
        : undefined;
  return { path: formatPath(issue.path), message: `${where}${issue.message}`, ...(fix ? { fix } : {}) };
}

function crossCheck(stack: StackSpec): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const names = new Map<string, number>();
  stack.images.forEach((img, i) => {
    const seen = names.get(img.name);
    if (seen !== undefined) {
      issues.push({
        path: `images[${i}].name`,
        message: `image "${img.name}" is declared twice (also images[${seen}])`,
        fix: 'give each image a unique name',
      });
    }
    names.set(img.name, i);
  });
  stack.images.forEach((img, i) => {
    const from = img.from;
    if (from === 'scratch' && img.packages.length > 0) {
      issues.push({
        path: `images[${i}].from`,
        message: 'packages need a Debian suite to come from, but the image is "scratch"',
        fix: 'set from: "debian:bookworm"',
      });
    }
    if (img.user !== undefined && !/^\d+(:\d+)?$/.test(img.user) && !declaresUser(stack, img, img.user)) {
      issues.push({
        path: `images[${i}].user`,
        message: `user "${img.user}" is not declared in this image's users`,
        fix: 'add it to users, or give a numeric "uid:gid"',
      });
    }
    if (from === 'scratch' || /^debian:[a-z0-9-]+$/.test(from)) return;
    if (from.startsWith('debian:')) {
      issues.push({
        path: `images[${i}].from`,
        message: `"${from}" is not a Debian suite`,
        fix: 'write it as "debian:bookworm"',
      });
    } else if (!names.has(from)) {
      issues.push({
        path: `images[${i}].from`,
        message: `"${from}" is neither "scratch", "debian:<suite>", nor an image in this stack`,
        fix: `declare an image named "${from}" or use one of: scratch, debian:bookworm${names.size ? ', ' + [...names.keys()].join(', ') : ''}`,
      });
    }
  });
  issues.push(...checkServices(stack, names));
  issues.push(...checkRegions(stack));
  return issues;
}

function checkServices(stack: StackSpec, images: ReadonlyMap<string, number>): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const names = new Map<string, number>();
  const ports = new Map<number, string>();
  stack.services.forEach((svc, i) => {
    if (!images.has(svc.image) && !/^sha256:[a-f0-9]{64}$/.test(svc.image)) {
      issues.push({
        path: `services[${i}].image`,
        message: `"${svc.image}" is neither an image of this stack nor a digest`,
        fix: `use one of: ${[...images.keys()].join(', ') || '(no images declared)'}, or sha256:<digest>`,
      });
    }
    if (names.has(svc.name)) {
      issues.push({
        path: `services[${i}].name`,
        message: `service "${svc.name}" is declared twice (also services[${names.get(svc.name)}])`,
        fix: 'give each service a unique name',
      });
    } else names.set(svc.name, i);
    // A stateful service's identity k listens on port + k: each of those ports is its own.
    const span = svc.kind === 'stateful' ? Math.max(1, svc.replicas) : 1;
    for (let k = 0; k < span; k++) {
      const port = svc.port + k;
      const other = ports.get(port);
      if (other !== undefined) {
        issues.push({
          path: `services[${i}].port`,
          message:
            k === 0
              ? `port ${port} is already the port of service "${other}"`
              : `identity ${svc.name}-${k} would listen on port ${port}, which is already the port of service "${other}"`,
          fix: 'give each service its own port (a stateful service takes port … port + replicas - 1)',
        });
        break;
      }
      ports.set(port, svc.name);
    }
    const image = images.has(svc.image) ? stack.images[images.get(svc.image)!] : undefined;
    if (!image) return;
    const mountPoints = volumesOf(stack, image);
    const mounts = [
      ...svc.volumes.map((v, k) => ({ path: v.path, at: `services[${i}].volumes[${k}].path` })),
      ...(svc.config ? [{ path: svc.config.path, at: `services[${i}].config.path` }] : []),
    ];
    for (const m of mounts) {
      if (mountPoints.has(m.path)) continue;
      issues.push({
        path: m.at,
        message: `${m.path} is not a mount point of image "${image.name}" (its root is read-only, so the directory must be in the image)`,
        fix: `add "${m.path}" to the volumes of image "${image.name}"`,
      });
    }
  });
  return issues;
}

/** The mount points an image declares, with those of the images it is built on. */
function volumesOf(stack: StackSpec, image: StackSpec['images'][number]): Set<string> {
  const out = new Set<string>();
  const seen = new Set<string>();
  for (let img: typeof image | undefined = image; img && !seen.has(img.name);) {
    seen.add(img.name);
    for (const v of img.volumes) out.add(v);
    const from: string = img.from;
    img = stack.images.find((x) => x.name === from);
  }
  return out;
}

/** True when the image or an image it is built on declares the user. */
function declaresUser(stack: StackSpec, image: StackSpec['images'][number], user: string): boolean {
  const seen = new Set<string>();
  for (let img: typeof image | undefined = image; img && !seen.has(img.name);) {
    if (img.users.some((u) => u.name === user)) return true;
    seen.add(img.name);
    const from: string = img.from;
    img = stack.images.find((other) => other.name === from);
  }
  return false;
}

const KNOWN_FIELDS: readonly string[] = [
  ...new Set([
    ...Object.keys(stackSchema.shape),
    ...Object.keys(imageSchema.shape),
    ...Object.keys(appSchema.shape),
    ...Object.keys(fileSchema.shape),
    ...Object.keys(userSchema.shape),
    ...Object.keys(mirrorSchema.options[1].shape),
  ]),
];

/** The known field nearest to a misspelt one (at most two edits away). */
function closestField(key: string): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const known of KNOWN_FIELDS) {
    const d = editDistance(key.toLowerCase(), known.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [known, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
