/** The API tokens' JSON shapes (docs/api.md, "Tokens"); types.ts re-exports them. */

/** What a token may do: `admin` implies `deploy`, which implies `read`. */
export type TokenScopeJson = 'read' | 'deploy' | 'admin';

/** `POST /v1/tokens`. */
export interface TokenRequest {
  /**
   * Up to 64 letters, digits, `.`, `_`, `@`, `:` or `-`, unique among live tokens; the audit log
   * records it as the actor of everything the token does.
   */
  readonly name: string;
  /** At least one. */
  readonly scopes: readonly TokenScopeJson[];
}

/** `GET /v1/tokens`: one token, never its secret or its hash. */
export interface TokenJson {
  /** 12 hex digits. The secret embeds it (`kiln_<id>_…`) so it can be looked up, but it grants nothing. */
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly TokenScopeJson[];
  readonly createdAt: string;
  /** When it was revoked; absent while the token is live. */
  readonly revokedAt?: string;
}

/** What `POST /v1/tokens` answers: the new token and its secret, shown this once and never stored. */
export interface TokenCreatedJson {
  readonly token: TokenJson;
  /** `kiln_<id>_<43 base64url characters>`; only its SHA-256 is kept. */
  readonly secret: string;
}
