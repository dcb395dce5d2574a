import { KilnError, ValidationError } from '../errors/index.js';

/** kiln's exit codes; README documents them. */
export const ExitCode = {
  Ok: 0,
  /** The operation failed (a bake, a push, a rollout that failed or was rolled back). */
  Failed: 1,
  /** Usage or configuration error. */
  Usage: 2,
  /** The control plane or a registry cannot be reached. */
  Unreachable: 3,
  /** Content failed an integrity check: a digest, a checksum, a signature, a path escaping its root. */
  Integrity: 4,
} as const;

/** The one place errors become exit codes. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof ValidationError) return ExitCode.Usage;
  if (err instanceof KilnError) {
    switch (err.code) {
      case 'validation':
      case 'not-found':
      case 'conflict':
        return ExitCode.Usage;
      case 'unavailable':
        return ExitCode.Unreachable;
      case 'integrity':
        return ExitCode.Integrity;
      default:
        return ExitCode.Failed;
    }
  }
  return ExitCode.Failed;
}

/** A one-paragraph message for the terminal; stack traces only with KILN_DEBUG=1. */
export function describeError(err: unknown): string {
  if (process.env.KILN_DEBUG === '1' && err instanceof Error && err.stack) return err.stack;
  if (err instanceof Error) return `kiln: ${err.message}`;
  return `kiln: ${String(err)}`;
}
