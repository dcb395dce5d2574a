/**
 * Remote image references (`registry/repository:tag@sha256:…`) as the distribution spec names them.
 */
import { ValidationError } from '../errors/index.js';
import { isDigest } from './digest.js';
import type { Digest } from './types.js';

/** A parsed remote reference. At least the registry and repository are present. */
export interface ImageReference {
  /** Host with optional port: `localhost:5000`, `registry.example.com`, `[::1]:5000`. */
  readonly registry: string;
  /** Repository path: `team/app`. */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

const HOST_RE =
  /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$/;
const REPO_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const EXAMPLE = 'localhost:5000/team/app:1.0';

/**
 * Parses `registry/repository[:tag][@sha256:…]`. The registry part is required (kiln never guesses
 * Docker Hub): the first path component is the registry when it has a `.` or `:` or is `localhost`.
 *
 * @example
 * parseReference('localhost:5000/team/app:1.0'); // { registry: 'localhost:5000', repository: 'team/app', tag: '1.0' }
 */
export function parseReference(input: string): ImageReference {
  const fail = (message: string, fix: string): never => {
    throw new ValidationError(undefined, [{ path: 'reference', message: `"${input}": ${message}`, fix }]);
  };
  if (typeof input !== 'string' || input.trim() === '') fail('empty reference', `write it as ${EXAMPLE}`);
  let name = input;
  let digest: Digest | undefined;
  const at = input.indexOf('@');
  if (at !== -1) {
    const d = input.slice(at + 1);
    if (!isDigest(d))
      fail(`"${d}" is not a sha256 digest`, 'use @sha256: followed by 64 lowercase hex digits');
    digest = d as Digest;
    name = input.slice(0, at);
  }
  let tag: string | undefined;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG_RE.test(tag))
      fail(
        `tag "${tag}" is not valid`,
        'a tag is up to 128 letters, digits, _ . - and does not start with . or -',
      );
  }
  const slash = name.indexOf('/');
  const first = slash === -1 ? name : name.slice(0, slash);
  if (
    slash === -1 ||
    !(first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))
  ) {
    fail('no registry host', `start with the registry, e.g. ${EXAMPLE}`);
  }
  if (!HOST_RE.test(first))
    fail(`registry "${first}" is not a host[:port]`, 'use a host name or IP, with an optional :port');
  const repository = name.slice(slash + 1);
  if (repository.length === 0 || repository.length > 255)
    fail('repository is empty or too long', `write it as ${EXAMPLE}`);
  for (const component of repository.split('/')) {
    if (!REPO_COMPONENT_RE.test(component)) {
      fail(
        `repository component "${component}" is not valid`,
        'use lowercase letters and digits, separated by one . or _ or __ or dashes',
      );
    }
  }
  return {
    registry: first,
    repository,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
  };
}

/** Writes a reference back as text (`registry/repository:tag@digest`). */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** Throws a ValidationError unless `repository` is a valid repository path. */
export function assertRepository(repository: string): void {
  const ok =
    typeof repository === 'string' &&
    repository.length > 0 &&
    repository.length <= 255 &&
    repository.split('/').every((c) => REPO_COMPONENT_RE.test(c));
  if (!ok) {
    throw new ValidationError(undefined, [
      {
        path: 'repository',
        message: `"${String(repository)}" is not a valid repository`,
        fix: 'use lowercase components separated by /, e.g. team/app',
      },
    ]);
  }
}

/** Throws a ValidationError unless `tag` is a valid tag. */
export function assertTag(tag: string): void {
  if (typeof tag !== 'string' || !TAG_RE.test(tag)) {
    throw new ValidationError(undefined, [
      {
        path: 'tag',
        message: `"${String(tag)}" is not a valid tag`,
        fix: 'use up to 128 letters, digits, _ . - (not starting with . or -)',
      },
    ]);
  }
}

/** True when `host` (with or without a port) is a loopback address: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackHost(host: string): boolean {
  let h = host.toLowerCase();
  if (h.startsWith('[')) h = h.slice(1, h.indexOf(']'));
  else if (h.split(':').length === 2) h = h.slice(0, h.indexOf(':'));
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}
