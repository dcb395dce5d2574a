/**
 * Admitting an image to a service at deploy, before any release of it is recorded: every blob of
 * the image must match its digest, and a key the service trusts must have signed its manifest
 * digest. Anything else is refused with an IntegrityError saying what was found and the fix.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { IntegrityError, ValidationError, wrap, type ValidationIssue } from '../errors/index.js';
import {
  type BlobChecker,
  checkImageSignatures,
  trustedKey,
  type Digest,
  type FoundSignature,
  type OciStore,
  type TrustedKey,
} from '../oci/index.js';
import { DEFAULT_TRUSTED_KEY_FILE, trustKeyKind, type ServiceSpec } from '../spec/index.js';

/** What admitting an image found. */
export interface Admission {
  /** The id of the trusted key whose signature verified. */
  readonly keyid: string;
  /** Where that key came from (a file, or the config field of an inline key). */
  readonly keySource: string;
  /** The blobs checked (config and layers), and how many of them were hashed now. */
  readonly blobs: number;
  readonly hashed: number;
}

/** Where admission reads from. */
export interface AdmissionContext {
  readonly store: OciStore;
  /** The project's `.kiln/keys`: its `signing.pub`, and the `*.pub` files key ids name. */
  readonly keysDir: string;
  /** Remembers blobs found intact, across deploys. */
  readonly checker: BlobChecker;
}

/**
 * Admits image `digest` (named `ref` in the deploy) for `service`: its signatures first (cheap),
 * then every blob, streamed. Throws IntegrityError (deploy refused), or ValidationError when a
 * trusted key the service names cannot be read.
 */
export async function admitImage(
  ctx: AdmissionContext,
  service: ServiceSpec,
  ref: string,
  digest: Digest,
): Promise<Admission> {
  const refusing = `${service.name}: refusing to deploy ${ref === digest ? digest : `${ref} (${digest})`}`;
  const keys = await trustedKeysOf(service, ctx.keysDir, refusing);
  const found = await checkImageSignatures(ctx.store, digest, keys);
  const good = found.find((f) => f.verifiedBy !== undefined);
  if (good === undefined) throw new IntegrityError(untrustedMessage(refusing, service, keys, found));
  const key = keys.find((k) => k.keyid === good.verifiedBy)!;

  const manifest = await ctx.store.getManifest(digest);
  const blobs = [
    { what: 'its config', blob: manifest.config },
    ...manifest.layers.map((blob, i) => ({ what: `layer ${i + 1} of ${manifest.layers.length}`, blob })),
  ];
  let hashed = 0;
  for (const { what, blob } of blobs) {
    try {
      if ((await ctx.checker.check(ctx.store, blob, what)).hashed) hashed++;
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw wrap(refusing, err);
      throw new IntegrityError(
        `${refusing}: ${err.message}` +
          '\n  fix: delete that file and bake the image again (kiln bake), which writes the blob anew, or pull the image again',
        { cause: err },
      );
    }
  }
  return { keyid: key.keyid, keySource: key.source, blobs: blobs.length, hashed };
}

/**
 * The keys `service` trusts: its `trust.keys` (files, inline PEM, key ids of `*.pub` files in
 * `keysDir`), or without `trust` the project's own `keysDir/signing.pub`. A key that cannot be
 * read is a ValidationError naming each such entry; a missing project key, an IntegrityError.
 */
export async function trustedKeysOf(
  service: ServiceSpec,
  keysDir: string,
  refusing = `${service.name}: refusing to deploy`,
): Promise<TrustedKey[]> {
  if (service.trust === undefined) {
    const file = path.join(keysDir, DEFAULT_TRUSTED_KEY_FILE);
    const pem = await readFile(file, 'utf8').catch(() => undefined);
    if (pem === undefined) {
      throw new IntegrityError(
        `${refusing}: the service declares no trust, so only this project's signing key is trusted, and ${file} does not exist` +
          `\n  fix: bake the image in this project (kiln bake makes the key and signs with it), or list the keys that signed it in the service's trust.keys`,
      );
    }
    return [trustedKey(pem, file)];
  }
  const issues: ValidationIssue[] = [];
  const keys: TrustedKey[] = [];
  let inKeysDir: Promise<TrustedKey[]> | undefined;
  for (const [i, entry] of service.trust.keys.entries()) {
    const at = `keys[${i}]`;
    try {
      switch (trustKeyKind(entry)) {
        case 'pem':
          keys.push(trustedKey(entry, `inline PEM of ${service.name}'s trust.${at}`));
          break;
        case 'file': {
          const pem = await readFile(entry, 'utf8').catch((err: NodeJS.ErrnoException) => {
            throw new Error(`${entry} cannot be read (${err.code ?? err.message})`);
          });
          keys.push(trustedKey(pem, entry));
          break;
        }
        case 'keyid': {
          inKeysDir ??= publicKeysIn(keysDir);
          const key = (await inKeysDir).find((k) => k.keyid === entry);
          if (key === undefined) {
            issues.push({
              path: at,
              message: `no public key with id ${entry} among the *.pub files in ${keysDir}`,
              fix: `copy the signer's signing.pub into ${keysDir} (as NAME.pub), or give the file's path instead of its id`,
            });
          } else keys.push(key);
          break;
        }
      }
    } catch (err) {
      const message =
        err instanceof ValidationError
          ? err.issues.map((x) => `${err.file ?? ''} ${x.message}`.trim()).join('; ')
          : (err as Error).message;
      issues.push({
        path: at,
        message,
        fix: "give the signer's signing.pub: a path relative to the config file, the PEM text, or its key id",
      });
    }
  }
  if (issues.length > 0) throw new ValidationError(`service ${service.name}: trust`, issues);
  return keys;
}

/** Every ed25519 public key in `dir/*.pub` (files that are not one are passed over). */
async function publicKeysIn(dir: string): Promise<TrustedKey[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const keys: TrustedKey[] = [];
  for (const name of names.filter((n) => n.endsWith('.pub')).sort()) {
    const file = path.join(dir, name);
    try {
      keys.push(trustedKey(await readFile(file, 'utf8'), file));
    } catch {
      // Not a key kiln can use: a key id never names it.
    }
  }
  return keys;
}

/** The refusal of an image no trusted key signed: what signed it, what is trusted, and the fix. */
function untrustedMessage(
  refusing: string,
  service: ServiceSpec,
  trusted: readonly TrustedKey[],
  found: readonly FoundSignature[],
): string {
  const signers = [...new Set(found.flatMap((f) => f.keyids))];
  const lines = [
    found.length === 0
      ? `${refusing}: it has no signature (kiln bake signs every image it makes)`
      : `${refusing}: no signature by a key the service trusts`,
    `  signed by: ${signers.length > 0 ? signers.join(', ') : 'nobody'}`,
    `  trusted: ${trusted.map((k) => `${k.keyid} (${k.source})`).join(', ')}` +
      (service.trust === undefined ? " (the project's own key: the service declares no trust)" : ''),
    ...found.map((f) => `  signature ${f.artifact}: ${f.problem ?? 'verified'}`),
    `  fix: bake and sign the image with a trusted key (kiln bake, in the project whose key is trusted), ` +
      `or add the key that signed it (its signing.pub) to ${service.name}'s trust.keys`,
  ];
  return lines.join('\n');
}
