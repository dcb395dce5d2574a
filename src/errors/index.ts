/**
 * kiln's one error hierarchy. Every context throws these (or wraps a cause in them); the CLI maps
 * them to exit codes in one place (`src/cli/exit.ts`) and the API to HTTP status in one place.
 *
 * @example
 * throw new ValidationError('kiln.yaml', [{ path: 'images[0].packages[1]', message: 'expected a string', fix: 'write the package name in quotes' }]);
 */

/** A machine-readable error code; stable, documented in README's exit-code table. */
export type KilnErrorCode =
  'validation' | 'not-found' | 'conflict' | 'integrity' | 'unavailable' | 'runtime' | 'internal';

/** The base of every error kiln raises on purpose. */
export class KilnError extends Error {
  readonly code: KilnErrorCode;

  constructor(code: KilnErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** One problem found while validating input: where it is, what is wrong, and how to fix it. */
export interface ValidationIssue {
  /** Path inside the document, such as `images[0].packages[2]`; empty for the document itself. */
  readonly path: string;
  readonly message: string;
  /** What the user should do about it. */
  readonly fix?: string;
}

/** Bad input. Carries every issue found, each with its path, so users fix them all in one go. */
export class ValidationError extends KilnError {
  readonly file: string | undefined;
  readonly issues: readonly ValidationIssue[];

  constructor(file: string | undefined, issues: readonly ValidationIssue[], options?: { cause?: unknown }) {
    super('validation', formatIssues(file, issues), options);
    this.file = file;
    this.issues = issues;
  }
}

/** Something named does not exist (an image, a package, a key). */
export class NotFoundError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('not-found', message, options);
  }
}

/** The request contradicts the current state (a dependency cycle, a name already taken). */
export class ConflictError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('conflict', message, options);
  }
}

/** Content failed a check: a digest, a checksum, a signature, or a path escaping its root. */
export class IntegrityError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('integrity', message, options);
  }
}

/** A dependency outside kiln (a host tool, an archive, a registry) cannot be reached or used. */
export class UnavailableError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, options);
  }
}

function formatIssues(file: string | undefined, issues: readonly ValidationIssue[]): string {
  const where = file ?? 'input';
  const lines = issues.map((i) => {
    const at = i.path === '' ? '' : `[${i.path}] `;
    return `  ${at}${i.message}${i.fix ? ` (fix: ${i.fix})` : ''}`;
  });
  return `${where}: ${issues.length === 1 ? 'invalid' : `${issues.length} problems`}\n${lines.join('\n')}`;
}

/**
 * Adds a short context phrase in front of an error's message, keeping its class and code, as
 * `unpacking layer sha256:…: <message>`. Non-kiln errors become `internal` KilnErrors.
 */
export function wrap(context: string, err: unknown): KilnError {
  if (err instanceof ValidationError) {
    return new ValidationError(
      err.file,
      err.issues.map((i) => ({ ...i, message: `${context}: ${i.message}` })),
      {
        cause: err,
      },
    );
  }
  const message = `${context}: ${err instanceof Error ? err.message : String(err)}`;
  if (err instanceof KilnError) {
    const copy = new (err.constructor as new (m: string, o?: { cause?: unknown }) => KilnError)(message, {
      cause: err,
    });
    if (copy.code !== err.code) return new KilnError(err.code, message, { cause: err });
    return copy;
  }
  return new KilnError('internal', message, { cause: err });
}
