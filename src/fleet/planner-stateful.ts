/**
 * The planner's rules for a stateful service, as Kubernetes' StatefulSet runs them with
 * `podManagementPolicy: OrderedReady` and a rolling update: identities `<name>-0` … `<name>-N-1`
 * are fixed, each with its own port and volume, so at most one instance may hold an identity at
 * a time and a replacement starts only once its predecessor is gone. An update replaces one
 * identity at a time, highest ordinal first, and moves on only when the replacement is healthy
 * and its `ready` check passed; it never takes a second instance down while one is down.
 */
import type { Action, DesiredService, ObservedInstance, ReleaseRef } from './types.js';

/** The actions for one stateful service. Pure, as `plan` is. */
export function planStateful(
  svc: DesiredService,
  instances: readonly ObservedInstance[],
  now: number,
): Action[] {
  const actions: Action[] = [];
  const stop = (i: ObservedInstance, reason: Extract<Action, { type: 'stop' }>['reason']) =>
    actions.push({ type: 'stop', service: svc.name, id: i.id, reason, drain: false });
  // Failed instances are replaced, never repaired: stopped here, their identity started again
  // once they are gone (reattaching the same volume).
  const present: ObservedInstance[] = [];
  for (const i of instances) {
    if (i.phase === 'stopped') continue;
    if (!i.stopping && (i.phase === 'unhealthy' || i.phase === 'tainted')) stop(i, i.phase);
    else if (!i.stopping && i.phase === 'draining') stop(i, 'superseded');
    present.push(i);
  }
  const holders = new Map<number, ObservedInstance>();
  const loose: ObservedInstance[] = [];
  for (const i of present) {
    if (i.ordinal === undefined) loose.push(i);
    else if (!holders.has(i.ordinal) || holders.get(i.ordinal)!.stopping) holders.set(i.ordinal, i);
  }
  const rollout = svc.rollout;
  const updating = rollout?.from !== undefined ? rollout : undefined;
  const target = svc.release;
  const up = (i: ObservedInstance | undefined): i is ObservedInstance =>
    i !== undefined && !i.stopping && i.phase === 'healthy' && i.ready !== false;
  // The identity being updated: the highest one not yet running the target release.
  let next = -1;
  for (let k = svc.replicas - 1; k >= 0; k--) {
    const h = holders.get(k);
    if (!h || h.release !== target.name || h.stopping) {
      next = k;
      break;
    }
  }
  // An identity with no instance is started: with the target when it is the one being updated (or
  // there is no update), else with the release it ran, so a crash below the update point is not
  // an early upgrade.
  for (let k = 0; k < svc.replicas; k++) {
    if (holders.has(k)) continue;
    const release: ReleaseRef = updating && k < next ? updating.from! : target;
    actions.push({ type: 'start', service: svc.name, release, ordinal: k });
  }
  const allUp = [...Array(svc.replicas).keys()].every((k) => up(holders.get(k)));
  // Identities beyond `replicas` (a scale-down) go highest first, one at a time; instances with no
  // identity (the service was stateless before) go once every identity is up.
  const surplus = [...holders.entries()].filter(([k]) => k >= svc.replicas).sort(([a], [b]) => b - a);
  if (surplus.length > 0 && !surplus.some(([, i]) => i.stopping)) stop(surplus[0]![1], 'surplus');
  if (allUp) for (const i of loose) if (!i.stopping) stop(i, 'superseded');
  if (!updating || rollout!.phase === 'paused') {
    if (updating === undefined && rollout?.phase === 'progressing' && allUp)
      succeed(actions, svc, rollout.id);
    else if (rollout?.phase === 'progressing') deadline(actions, svc, now);
    return actions;
  }
  if (next < 0) {
    if (allUp && loose.length === 0) succeed(actions, svc, updating.id);
    else deadline(actions, svc, now);
    return actions;
  }
  // Never a second instance down: the next identity is replaced only while every one is up.
  const holder = holders.get(next);
  if (allUp && holder && holder.release !== target.name) stop(holder, 'superseded');
  deadline(actions, svc, now);
  return actions;
}

function succeed(actions: Action[], svc: DesiredService, id: string): void {
  actions.push({
    type: 'rollout',
    service: svc.name,
    id,
    phase: 'succeeded',
    reason: `all ${svc.replicas} identities run ${svc.release.name}, healthy and ready`,
  });
}

function deadline(actions: Action[], svc: DesiredService, now: number): void {
  const rollout = svc.rollout!;
  if (rollout.phase !== 'progressing' || now - rollout.startedAt <= svc.progressDeadlineMs) return;
  actions.push({
    type: 'rollout',
    service: svc.name,
    id: rollout.id,
    phase: 'failed',
    reason: `${rollout.to.name} did not replace every identity within ${Math.round(svc.progressDeadlineMs / 1000)}s`,
  });
}
