import { createHash } from 'node:crypto';
import { ValidationError, type ValidationIssue } from '../errors/index.js';

/** A value JSON can carry. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;

/** A JSON object, as specs and status documents are stored. */
export interface JsonObject {
  readonly [key: string]: JsonValue;
}

/**
 * Serialises `value` with object keys sorted at every level, so equal documents give equal text
 * (and equal hashes) whatever order their keys were built in. Properties holding `undefined` are
 * left out, as `JSON.stringify` does. Throws a ValidationError listing every value JSON cannot
 * hold (functions, bigints, symbols, NaN, Infinity), each with its path under `what`.
 *
 * state/ keeps its own copy rather than importing oci's `canonicalJson`: it imports nothing of
 * kiln but errors/.
 *
 * @example
 * canonicalJson({ b: 1, a: [true, null] }, 'spec'); // '{"a":[true,null],"b":1}'
 */
export function canonicalJson(value: unknown, what: string): string {
  const issues: ValidationIssue[] = [];
  const text = encode(value, '', issues);
  if (issues.length > 0) throw new ValidationError(what, issues);
  return text;
}

/** `sha256:<hex>` of the text, the form every hash in the state database takes. */
export function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** Parses a JSON column written by this store; the database's `json_valid` checks guarantee it parses. */
export function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

function encode(value: unknown, path: string, issues: ValidationIssue[]): string {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return JSON.stringify(value);
    issues.push({ path, message: `${value} cannot be stored as JSON`, fix: 'use a finite number or null' });
    return 'null';
  }
  if (Array.isArray(value)) {
    const items = value.map((v: unknown, i) => encode(v === undefined ? null : v, `${path}[${i}]`, issues));
    return `[${items.join(',')}]`;
  }
  if (typeof value === 'object') {
    const withJson = value as { toJSON?: () => unknown };
    if (typeof withJson.toJSON === 'function') return encode(withJson.toJSON(), path, issues);
    const record = value as Record<string, unknown>;
    const fields = Object.keys(record)
      .sort()
      .filter((k) => record[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${encode(record[k], path === '' ? k : `${path}.${k}`, issues)}`);
    return `{${fields.join(',')}}`;
  }
  issues.push({
    path,
    message: `a ${typeof value} cannot be stored as JSON`,
    fix: 'store plain data: objects, arrays, strings, finite numbers, booleans and null',
  });
  return 'null';
}
