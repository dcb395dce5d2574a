import { createHash } from 'node:crypto';
import { IntegrityError } from '../errors/index.js';
import type { Digest } from './types.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** The sha256 digest of some bytes, as `sha256:<hex>`. */
export function sha256Digest(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** True when `s` is a well-formed sha256 digest. */
export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

/** The hex part of a digest (`sha256:abc…` → `abc…`). */
export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

/** Throws an IntegrityError unless `data` hashes to `expected`. `what` names the content in the message. */
export function verifyDigest(data: Buffer, expected: Digest, what: string): void {
  const actual = sha256Digest(data);
  if (actual !== expected) {
    throw new IntegrityError(`${what}: digest mismatch: expected ${expected}, got ${actual}`);
  }
}

/**
 * JSON with object keys sorted at every level and no insignificant whitespace, so that the same
 * value always serialises to the same bytes (and so the same digest).
 */
export function canonicalJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(sortKeys(value)));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}
