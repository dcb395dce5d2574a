import type { Selectable } from 'kysely';
import type { AuditTable } from './schema.js';
import type { Sql } from './sqlite.js';
import { readLimit } from './events.js';
import { Issues } from './validate.js';

/** How an audited request ended. */
export type AuditResult = 'ok' | 'denied' | 'failed';

/** One audited action. */
export interface AuditRecord {
  readonly seq: number;
  readonly at: string;
  /** Who: a token name, or the local user for the CLI. */
  readonly actor: string;
  /** What, such as `deploy`, `rollback`, `token.create`. */
  readonly action: string;
  /** On what, such as `api` or `api/r7`. */
  readonly target: string;
  readonly result: AuditResult;
  /** Anything worth keeping, in a sentence. */
  readonly detail: string;
}

/** What `AuditLog.append` needs; the log assigns `seq` and `at`. */
export type NewAuditRecord = Omit<AuditRecord, 'seq' | 'at' | 'detail'> & { readonly detail?: string };

/** The audit log: append-only like the event log (triggers refuse UPDATE and DELETE). */
export class AuditLog {
  /** @internal Created by `openState`. */
  constructor(private readonly sql: Sql) {}

  /**
   * Appends a record and returns it with its `seq` and time.
   *
   * @example
   * store.audit.append({ actor: token.name, action: 'deploy', target: 'api', result: 'ok' });
   */
  append(record: NewAuditRecord): AuditRecord {
    new Issues()
      .text('actor', record.actor, 256)
      .text('action', record.action, 128)
      .text('target', record.target)
      .oneOf('result', record.result, ['ok', 'denied', 'failed'])
      .throwIfAny(`audit record for ${JSON.stringify(record.action)}`);
    const row = this.sql.get(
      this.sql.q
        .insertInto('audit')
        .values({
          at: this.sql.now(),
          actor: record.actor,
          action: record.action,
          target: record.target,
          result: record.result,
          detail: record.detail ?? '',
        })
        .returningAll(),
    );
    return toAudit(row!);
  }

  /** Records after `seq`, oldest first, of one actor when given. */
  since(seq: number, filter: { readonly actor?: string; readonly limit?: number } = {}): AuditRecord[] {
    let q = this.sql.q.selectFrom('audit').selectAll().where('seq', '>', seq);
    if (filter.actor !== undefined) q = q.where('actor', '=', filter.actor);
    return this.sql.all(q.orderBy('seq').limit(readLimit(filter.limit))).map(toAudit);
  }

  /** The last `n` records, oldest first. */
  tail(n: number): AuditRecord[] {
    const rows = this.sql.all(
      this.sql.q.selectFrom('audit').selectAll().orderBy('seq', 'desc').limit(readLimit(n)),
    );
    return rows.reverse().map(toAudit);
  }
}

function toAudit(row: Selectable<AuditTable>): AuditRecord {
  return {
    seq: row.seq,
    at: row.at,
    actor: row.actor,
    action: row.action,
    target: row.target,
    result: row.result as AuditResult,
    detail: row.detail,
  };
}
