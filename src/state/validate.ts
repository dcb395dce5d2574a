import { randomBytes } from 'node:crypto';
import { ValidationError, type ValidationIssue } from '../errors/index.js';

/** Service names as the spec allows them: lowercase letters, digits, `.`, `_`, `-`. */
export const NAME_RE = /^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$/;
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
/** Rollout and instance ids: lowercase letters, digits, `.`, `_`, `-`. */
export const ID_RE = /^[a-z0-9][a-z0-9._-]{0,199}$/;

/**
 * Collects every problem with one input so a ValidationError reports them together.
 *
 * @example
 * const v = new Issues();
 * v.name('service', input.service);
 * v.digest('digest', input.digest);
 * v.throwIfAny('release for api');
 */
export class Issues {
  private readonly list: ValidationIssue[] = [];

  /** Records a problem when `ok` is false. */
  check(ok: boolean, path: string, message: string, fix?: string): this {
    if (!ok) this.list.push(fix === undefined ? { path, message } : { path, message, fix });
    return this;
  }

  /** A service name. */
  name(path: string, value: unknown): this {
    return this.check(
      typeof value === 'string' && NAME_RE.test(value),
      path,
      `${JSON.stringify(value)} is not a service name`,
      'use lowercase letters, digits, ".", "_" or "-", such as "api"',
    );
  }

  /** An identifier for a rollout or instance. */
  id(path: string, value: unknown): this {
    return this.check(
      typeof value === 'string' && ID_RE.test(value),
      path,
      `${JSON.stringify(value)} is not an id`,
      'use up to 200 lowercase letters, digits, ".", "_" or "-"',
    );
  }

  /** A `sha256:<64 hex>` digest or hash. */
  digest(path: string, value: unknown): this {
    return this.check(
      typeof value === 'string' && DIGEST_RE.test(value),
      path,
      `${JSON.stringify(value)} is not a sha256 digest`,
      'write it as "sha256:" followed by 64 lowercase hex digits',
    );
  }

  /** Non-empty text of at most `max` characters. */
  text(path: string, value: unknown, max = 1024): this {
    return this.check(
      typeof value === 'string' && value.length > 0 && value.length <= max,
      path,
      typeof value === 'string' && value.length > max
        ? `is ${value.length} characters long, over the limit of ${max}`
        : 'must be non-empty text',
    );
  }

  /** One of `allowed`. */
  oneOf<T extends string>(path: string, value: unknown, allowed: readonly T[]): this {
    return this.check(
      allowed.includes(value as T),
      path,
      `${JSON.stringify(value)} is not one of ${allowed.join(', ')}`,
    );
  }

  /** Throws a ValidationError for `what` when any problem was recorded. */
  throwIfAny(what: string): void {
    if (this.list.length > 0) throw new ValidationError(what, this.list);
  }
}

/** A random id such as `ro-3f9a0c1b2d4e`, unique enough that a collision is caught by the primary key. */
export function newId(prefix: string): string {
  return `${prefix}${randomBytes(6).toString('hex')}`;
}
