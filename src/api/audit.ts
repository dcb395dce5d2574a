/**
 * The API's side of the audit log: {@link audited} runs a change and appends who asked for it,
 * what, on what and how it went. `FleetPlane` and {@link TokenAdmin} record every change they make
 * through it; the server records the mutating calls it refuses before they reach the plane (401,
 * 403, a bad request), so every mutating call leaves exactly one record.
 */
import type { NewAuditRecord } from '../state/index.js';

/** Longest target the state store's audit log takes (`Issues.text`'s default limit). */
export const MAX_AUDIT_TARGET = 1024;

/**
 * `target` cut to {@link MAX_AUDIT_TARGET} characters: a target comes from the request path, which
 * a client may make as long as it likes, and the record of its call must still be written.
 */
export function auditTarget(target: string): string {
  return target.length <= MAX_AUDIT_TARGET ? target : `${target.slice(0, MAX_AUDIT_TARGET - 1)}…`;
}

/** Where audit records go; the state store's append-only `store.audit` is one. */
export interface AuditSink {
  append(record: NewAuditRecord): unknown;
}

/**
 * Runs `change` and appends one record: result `ok` with `detail(result)`, or `failed` with the
 * error's message (and rethrows it).
 *
 * @example
 * await audited(store.audit, 'alice', 'deploy', 'web', () => deploy(ctx, { service: 'web' }), (o) => o.release.name);
 */
export async function audited<T>(
  sink: AuditSink,
  actor: string,
  action: string,
  target: string,
  change: () => Promise<T>,
  detail: (done: T) => string,
): Promise<T> {
  let result: T;
  try {
    result = await change();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    sink.append({ actor, action, target: auditTarget(target), result: 'failed', detail: why });
    throw err;
  }
  sink.append({ actor, action, target: auditTarget(target), result: 'ok', detail: detail(result) });
  return result;
}
