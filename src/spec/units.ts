import { z } from 'zod';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses `"500ms"`, `"2s"`, `"1.5m"`, `"1h"` into milliseconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text.trim());
  return m ? Math.round(Number(m[1]) * DURATION_MS[m[2]!]!) : undefined;
}

const BYTES_RE = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/;
const BYTE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
};

/** Parses `"256Mi"`, `"1Gi"`, `"512M"` or a plain byte count into bytes; undefined when it is not a size. */
export function parseBytes(text: string): number | undefined {
  const m = BYTES_RE.exec(text.trim());
  return m ? Math.round(Number(m[1]) * BYTE_UNITS[m[2] ?? '']!) : undefined;
}

/** A duration with a unit (`"2s"`), validated and turned into milliseconds. Bare numbers are refused: a unit is never implied. */
export const durationSchema = z
  .string()
  .refine((s) => parseDuration(s) !== undefined, {
    message: 'must be a duration with a unit, such as "500ms", "2s" or "5m"',
  })
  .transform((s) => parseDuration(s)!);

/** A memory size (`"256Mi"`), validated and turned into bytes. */
export const bytesSchema = z
  .union([z.number().int().positive(), z.string()])
  .refine((v) => typeof v === 'number' || parseBytes(v) !== undefined, {
    message: 'must be a size such as "256Mi", "1Gi" or a number of bytes',
  })
  .transform((v) => (typeof v === 'number' ? v : parseBytes(v)!));
