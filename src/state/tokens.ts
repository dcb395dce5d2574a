import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { sql as raw } from 'kysely';
import { ConflictError, NotFoundError } from '../errors/index.js';
import { parseJson } from './json.js';
import type { TokensTable } from './schema.js';
import { sqliteCode, type Sql } from './sqlite.js';
import { Issues } from './validate.js';

/** What a token may do. */
export const TOKEN_SCOPES = ['read', 'deploy', 'admin'] as const;

/** What a token may do. */
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** Every secret starts with this, so secret scanners and people can recognise one. */
export const TOKEN_PREFIX = 'kiln_';

/** An API token as stored, without its hash. */
export interface TokenRecord {
  /** 12 hex digits, also embedded in the secret so it can be looked up without trying every hash. */
  readonly id: string;
  /** Unique among tokens not revoked; the audit log's actor. */
  readonly name: string;
  readonly scopes: readonly TokenScope[];
  readonly createdAt: string;
  readonly revokedAt?: string;
}

/** A new token and its secret, which is shown once and never stored. */
export interface CreatedToken {
  readonly token: TokenRecord;
  /** `kiln_<id>_<43 base64url characters>`. */
  readonly secret: string;
}

const SECRET_RE = /^kiln_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
/** Compared against when the id is unknown, so a miss costs the same as a wrong secret. */
const DUMMY_HASH = createHash('sha256').update('kiln-no-such-token').digest();

/**
 * API tokens. Only the SHA-256 of a secret is stored; `create` returns the secret once.
 *
 * @example
 * const { secret } = store.tokens.create('ci', ['read', 'deploy']);
 * store.tokens.verify(secret)?.scopes; // ['read', 'deploy']
 */
export class TokenRepository {
  /** @internal Created by `openState`. */
  constructor(private readonly sql: Sql) {}

  /**
   * Creates a token named `name` with `scopes` and returns its secret, 256 random bits. Throws
   * ConflictError when a live token already has the name.
   */
  create(name: string, scopes: readonly TokenScope[]): CreatedToken {
    const v = new Issues()
      .check(
        typeof name === 'string' && /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$/.test(name),
        'name',
        `${JSON.stringify(name)} is not a token name`,
        'use up to 64 letters, digits, ".", "_", "@", ":" or "-"',
      )
      .check(
        Array.isArray(scopes) && scopes.length > 0,
        'scopes',
        'must name at least one scope',
        `use some of ${TOKEN_SCOPES.join(', ')}`,
      );
    if (Array.isArray(scopes)) scopes.forEach((s, i) => v.oneOf(`scopes[${i}]`, s, TOKEN_SCOPES));
    v.throwIfAny(`token ${JSON.stringify(name)}`);
    const id = randomBytes(6).toString('hex');
    const secret = `${TOKEN_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
    const row: TokensTable = {
      id,
      name,
      hash: hashSecret(secret).toString('hex'),
      scopes: JSON.stringify(TOKEN_SCOPES.filter((s) => scopes.includes(s))),
      created_at: this.sql.now(),
      revoked_at: null,
    };
    try {
      this.sql.run(this.sql.q.insertInto('tokens').values(row));
    } catch (err) {
      if (sqliteCode(err) !== 'SQLITE_CONSTRAINT_UNIQUE') throw err;
      throw new ConflictError(
        `a token named '${name}' already exists; revoke it first or choose another name`,
        {
          cause: err,
        },
      );
    }
    return { token: toToken(row), secret };
  }

  /**
   * The live token whose secret this is, or undefined for a malformed, unknown, wrong or revoked
   * secret (the caller answers all four the same way). The hashes are compared in constant time.
   */
  verify(secret: string): TokenRecord | undefined {
    const m = typeof secret === 'string' ? SECRET_RE.exec(secret) : null;
    const row = m ? this.row(m[1]!) : undefined;
    const stored = row ? Buffer.from(row.hash, 'hex') : DUMMY_HASH;
    const given = hashSecret(typeof secret === 'string' ? secret : '');
    const same = stored.length === given.length && timingSafeEqual(stored, given);
    if (!row || !same || row.revoked_at !== null) return undefined;
    return toToken(row);
  }

  /** Revokes the token with id or name `ref` (a name means the live token of that name); revoking twice is harmless. */
  revoke(ref: string): TokenRecord {
    return this.sql.tx(() => {
      const row =
        this.row(ref) ??
        this.sql.get(
          this.sql.q.selectFrom('tokens').selectAll().where('name', '=', ref).where('revoked_at', 'is', null),
        );
      if (!row) throw new NotFoundError(`no live token has id or name '${ref}'; list tokens to see them`);
      if (row.revoked_at === null) {
        this.sql.run(
          this.sql.q.updateTable('tokens').set({ revoked_at: this.sql.now() }).where('id', '=', row.id),
        );
      }
      return toToken(this.row(row.id)!);
    });
  }

  /** Every token, revoked ones included, oldest first. */
  list(): TokenRecord[] {
    return this.sql
      .all(
        this.sql.q
          .selectFrom('tokens')
          .selectAll()
          .orderBy(raw`rowid`),
      )
      .map(toToken);
  }

  private row(id: string): TokensTable | undefined {
    return this.sql.get(this.sql.q.selectFrom('tokens').selectAll().where('id', '=', id));
  }
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

function toToken(row: TokensTable): TokenRecord {
  return {
    id: row.id,
    name: row.name,
    scopes: parseJson<TokenScope[]>(row.scopes),
    createdAt: row.created_at,
    ...(row.revoked_at === null ? {} : { revokedAt: row.revoked_at }),
  };
}
