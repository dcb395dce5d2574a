/**
 * A service's `trust`: the public keys whose signature an image needs to be deployed as the
 * service. Each key is written as a string in one of three forms, told apart by {@link trustKeyKind}.
 */
import { createPublicKey } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';

/** The file, under the project's `.kiln/keys/`, trusted when a service declares no `trust`. */
export const DEFAULT_TRUSTED_KEY_FILE = 'signing.pub';

const KEYID_RE = /^sha256:[a-f0-9]{64}$/;
const PEM_MARK = '-----BEGIN';

/**
 * How a `trust.keys` entry names its key: `pem`, the PEM text itself (`-----BEGIN PUBLIC KEY-----
 * …`); `keyid`, a key id (`sha256:` and 64 hex digits, as `kiln images` shows it) of a `*.pub`
 * file in the project's `.kiln/keys/`; `file`, anything else: the path of a PEM file, relative to
 * the config file.
 */
export function trustKeyKind(entry: string): 'pem' | 'keyid' | 'file' {
  if (entry.trimStart().startsWith(PEM_MARK)) return 'pem';
  if (entry.startsWith('sha256:')) return 'keyid';
  return 'file';
}

const trustKeySchema = z
  .string()
  .min(1, 'must be a key file path, an inline PEM public key or a key id')
  .superRefine((entry, ctx) => {
    const kind = trustKeyKind(entry);
    if (kind === 'keyid' && !KEYID_RE.test(entry)) {
      ctx.addIssue({
        code: 'custom',
        message: 'a key id is "sha256:" and 64 lowercase hex digits, as `kiln images` shows the signer',
      });
    }
    if (kind !== 'pem') return;
    if (entry.includes('PRIVATE KEY')) {
      ctx.addIssue({
        code: 'custom',
        message:
          "is a private key; give its public half (the signer's signing.pub) and keep the private key secret",
      });
      return;
    }
    try {
      const key = createPublicKey(entry);
      if (key.asymmetricKeyType !== 'ed25519') {
        ctx.addIssue({
          code: 'custom',
          message: `is a ${key.asymmetricKeyType ?? 'unknown'} key; kiln signs with ed25519, so give the signer's signing.pub`,
        });
      }
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `is not a PEM public key (${(err as Error).message}); paste the whole signing.pub, BEGIN and END lines included`,
      });
    }
  });

/**
 * Which keys an image must be signed by to be deployed as the service. Without `trust`, the
 * project's own signing key (`.kiln/keys/signing.pub`, which `kiln bake` signs with) is trusted;
 * with it, exactly the keys listed, and the project's own key only when listed too.
 */
export const trustSchema = z
  .object({
    /** Key file paths (relative to the config file), inline PEM public keys, or key ids. */
    keys: z
      .array(trustKeySchema)
      .min(
        1,
        "an empty list trusts no key, so every deploy would be refused; list a key, or leave trust out to trust this project's own signing key",
      ),
  })
  .strict();

/** A service's trusted keys, as validated (file paths made absolute by {@link resolveTrustKeyPaths}). */
export type TrustSpec = z.output<typeof trustSchema>;

/**
 * The stack with every `trust.keys` file path made absolute against `dir` (the config file's
 * directory), so the keys are found wherever the stack is used from.
 */
export function resolveTrustKeyPaths<
  T extends { readonly services: readonly { readonly trust?: TrustSpec | undefined }[] },
>(stack: T, dir: string): T {
  return {
    ...stack,
    services: stack.services.map((s) =>
      s.trust === undefined
        ? s
        : {
            ...s,
            trust: {
              ...s.trust,
              keys: s.trust.keys.map((k) => (trustKeyKind(k) === 'file' ? path.resolve(dir, k) : k)),
            },
          },
    ),
  };
}
