import type { Selectable } from 'kysely';
import { canonicalJson, parseJson, type JsonObject } from './json.js';
import type { EventsTable } from './schema.js';
import type { Sql } from './sqlite.js';
import { Issues } from './validate.js';

/** How many records one read returns when the caller names no limit. */
export const DEFAULT_READ_LIMIT = 500;
/** The most records one read returns. */
export const MAX_READ_LIMIT = 10_000;

/** Something that happened, as the event log keeps it. */
export interface EventRecord {
  /** Position in the log: strictly increasing, never reused. */
  readonly seq: number;
  readonly at: string;
  /** What kind of thing happened, such as `release.created` or `instance.unhealthy`. */
  readonly kind: string;
  readonly service?: string;
  /** What it happened to: an instance id, a rollout id, a release name. */
  readonly subject?: string;
  /** A CamelCase constant, like a condition's reason. */
  readonly reason: string;
  readonly message: string;
  readonly data: JsonObject;
}

/** What `EventLog.append` needs; the log assigns `seq` and `at`. */
export interface NewEvent {
  readonly kind: string;
  readonly service?: string;
  readonly subject?: string;
  readonly reason: string;
  readonly message: string;
  /** @default {} */
  readonly data?: object;
}

/** Narrows a read of the event log. */
export interface EventFilter {
  readonly service?: string;
  readonly kinds?: readonly string[];
  /** @default DEFAULT_READ_LIMIT (at most MAX_READ_LIMIT) */
  readonly limit?: number;
}

/**
 * The event log: append-only (the database's triggers refuse UPDATE and DELETE), read by
 * sequence number. An SSE stream remembers the last `seq` it sent and asks `since(seq)` again.
 *
 * @example
 * let last = store.events.lastSeq();
 * for (;;) { for (const e of store.events.since(last)) { send(e); last = e.seq; } await sleep(250); }
 */
export class EventLog {
  /** @internal Created by `openState`. */
  constructor(private readonly sql: Sql) {}

  /** Appends an event and returns it with its `seq` and time. */
  append(event: NewEvent): EventRecord {
    new Issues()
      .text('kind', event.kind, 128)
      .text('reason', event.reason, 128)
      .check(typeof event.message === 'string', 'message', 'must be text')
      .throwIfAny(`event ${JSON.stringify(event.kind)}`);
    const row = this.sql.get(
      this.sql.q
        .insertInto('events')
        .values({
          at: this.sql.now(),
          kind: event.kind,
          service: event.service ?? null,
          subject: event.subject ?? null,
          reason: event.reason,
          message: event.message,
          data: canonicalJson(event.data ?? {}, `data of event ${event.kind}`),
        })
        .returningAll(),
    );
    return toEvent(row!);
  }

  /** Events after `seq` (0 for the start), oldest first. */
  since(seq: number, filter: EventFilter = {}): EventRecord[] {
    const rows = this.sql.all(
      this.filtered(filter).where('seq', '>', seq).orderBy('seq').limit(readLimit(filter.limit)),
    );
    return rows.map(toEvent);
  }

  /** The last `n` events, oldest first. */
  tail(n: number, filter: Omit<EventFilter, 'limit'> = {}): EventRecord[] {
    const rows = this.sql.all(this.filtered(filter).orderBy('seq', 'desc').limit(readLimit(n)));
    return rows.reverse().map(toEvent);
  }

  /** The `seq` of the newest event, 0 when the log is empty. */
  lastSeq(): number {
    const row = this.sql.get(this.sql.q.selectFrom('events').select('seq').orderBy('seq', 'desc').limit(1));
    return row?.seq ?? 0;
  }

  private filtered(filter: EventFilter) {
    let q = this.sql.q.selectFrom('events').selectAll();
    if (filter.service !== undefined) q = q.where('service', '=', filter.service);
    if (filter.kinds !== undefined && filter.kinds.length > 0) q = q.where('kind', 'in', filter.kinds);
    return q;
  }
}

/** `limit` clamped to 0…MAX_READ_LIMIT, DEFAULT_READ_LIMIT when absent. */
export function readLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_READ_LIMIT;
  return Math.max(0, Math.min(MAX_READ_LIMIT, Math.floor(limit)));
}

function toEvent(row: Selectable<EventsTable>): EventRecord {
  return {
    seq: row.seq,
    at: row.at,
    kind: row.kind,
    ...(row.service === null ? {} : { service: row.service }),
    ...(row.subject === null ? {} : { subject: row.subject }),
    reason: row.reason,
    message: row.message,
    data: parseJson<JsonObject>(row.data),
  };
}
