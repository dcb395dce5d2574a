import { rollingStep } from './counts.js';
import type { Action, DesiredService, ObservedInstance, ReleaseRef, StopReason } from './types.js';

/**
 * The reconcile function: `plan(desired, observed, now) → actions`. Pure: it reads nothing and
 * does nothing; the executor carries the actions out and the loop calls it again. It is shaped like
 * Argo Rollouts' reconcile: one context per service, then a short ordered list of steps, each
 * returning early when going on would be unsafe.
 */
export function plan(
  desired: readonly DesiredService[],
  observed: readonly ObservedInstance[],
  now: number,
): Action[] {
  const actions: Action[] = [];
  const byService = new Map<string, ObservedInstance[]>();
  for (const i of observed) byService.set(i.service, [...(byService.get(i.service) ?? []), i]);
  const known = new Set(desired.map((d) => d.name));
  for (const svc of desired) actions.push(...planService(svc, byService.get(svc.name) ?? [], now));
  // Instances of services no longer declared are retired.
  for (const i of observed) {
    if (!known.has(i.service) && i.phase !== 'stopped' && i.phase !== 'draining') {
      actions.push({ type: 'stop', service: i.service, id: i.id, reason: 'surplus', drain: true });
    }
  }
  return actions;
}

/** What one pass knows about one service. */
interface Context {
  readonly svc: DesiredService;
  readonly now: number;
  readonly actions: Action[];
  /** Instances that still count: not stopped, not draining. */
  readonly live: ObservedInstance[];
}

const isLive = (i: ObservedInstance) => i.phase === 'starting' || i.phase === 'healthy';

function planService(svc: DesiredService, instances: readonly ObservedInstance[], now: number): Action[] {
  const ctx: Context = { svc, now, actions: [], live: [] };
  reconcileFailures(ctx, instances);
  const rollout = svc.rollout;
  if (rollout && rollout.phase === 'progressing' && rollout.from) {
    if (svc.strategy.type === 'bluegreen')
      reconcileBlueGreen(ctx, rollout.from, rollout.to, rollout.id, rollout.switchedAt);
    else reconcileRolling(ctx, rollout.from, rollout.to, rollout.id);
    reconcileDeadline(ctx);
  } else {
    reconcileSteady(ctx);
    if (rollout && rollout.phase === 'progressing') reconcileFirst(ctx, rollout.id);
  }
  return ctx.actions;
}

/**
 * A service's first rollout has nothing to replace, so it runs as steady state: it succeeds once
 * every replica is healthy, and fails at its deadline.
 */
function reconcileFirst(ctx: Context, id: string): void {
  const { svc } = ctx;
  if (ofRelease(ctx, svc.release).healthy.length >= svc.replicas) {
    ctx.actions.push({
      type: 'rollout',
      service: svc.name,
      id,
      phase: 'succeeded',
      reason: `all ${svc.replicas} instances of ${svc.release.name} are healthy`,
    });
    return;
  }
  reconcileDeadline(ctx);
}

/**
 * Exited, unhealthy and tainted instances are replaced, never repaired: each is stopped here and
 * the steps below count it as gone, so a new one is started from the same release.
 */
function reconcileFailures(ctx: Context, instances: readonly ObservedInstance[]): void {
  const reasons: Partial<Record<ObservedInstance['phase'], StopReason>> = {
    unhealthy: 'unhealthy',
    tainted: 'tainted',
  };
  for (const i of instances) {
    const reason = reasons[i.phase];
    if (reason) ctx.actions.push({ type: 'stop', service: i.service, id: i.id, reason, drain: false });
    else if (isLive(i)) ctx.live.push(i);
  }
}

function ofRelease(ctx: Context, release: ReleaseRef) {
  const live = ctx.live.filter((i) => i.release === release.name);
  return { live, healthy: live.filter((i) => i.phase === 'healthy') };
}

function start(ctx: Context, release: ReleaseRef, n: number): void {
  for (let k = 0; k < n; k++) ctx.actions.push({ type: 'start', service: ctx.svc.name, release });
}

/** Stops `n` of `instances`, the ones not yet healthy first, then the newest (oldest keep serving). */
function stop(ctx: Context, instances: readonly ObservedInstance[], n: number, reason: StopReason): void {
  const order = [...instances].sort(
    (a, b) =>
      Number(a.phase === 'healthy') - Number(b.phase === 'healthy') ||
      b.since - a.since ||
      (a.id < b.id ? -1 : 1),
  );
  for (const i of order.slice(0, n))
    ctx.actions.push({ type: 'stop', service: i.service, id: i.id, reason, drain: i.phase === 'healthy' });
}

/** Routes traffic to the given healthy instances, all with the same weight, sorted for a stable config. */
function route(ctx: Context, instances: readonly ObservedInstance[]): void {
  const backends = instances.map((i) => ({ id: i.id, weight: 100 })).sort((a, b) => (a.id < b.id ? -1 : 1));
  ctx.actions.push({ type: 'route', service: ctx.svc.name, backends });
}

/** No rollout: keep `replicas` healthy instances of the release, retire everything else. */
function reconcileSteady(ctx: Context): void {
  const { svc } = ctx;
  const current = ofRelease(ctx, svc.release);
  const standby = svc.standby?.release.name;
  const others = ctx.live.filter((i) => i.release !== svc.release.name && i.release !== standby);
  if (svc.standby && ctx.now >= svc.standby.until) {
    stop(
      ctx,
      ctx.live.filter((i) => i.release === standby),
      Infinity,
      'standby-expired',
    );
  }
  if (current.live.length < svc.replicas) start(ctx, svc.release, svc.replicas - current.live.length);
  // Instances of other releases keep serving until the current release has all its healthy ones;
  // a blue/green standby never serves.
  const serving =
    current.healthy.length >= svc.replicas
      ? current.healthy
      : [...current.healthy, ...others.filter((i) => i.phase === 'healthy')];
  route(ctx, serving);
  if (current.healthy.length >= svc.replicas) stop(ctx, others, Infinity, 'superseded');
  if (current.live.length > svc.replicas)
    stop(ctx, current.live, current.live.length - svc.replicas, 'surplus');
}

/** Rolling: surge new instances and retire old ones within maxSurge/maxUnavailable; traffic to every healthy one. */
function reconcileRolling(ctx: Context, from: ReleaseRef, to: ReleaseRef, id: string): void {
  const { svc } = ctx;
  if (svc.strategy.type !== 'rolling') return;
  const old = ofRelease(ctx, from);
  const next = ofRelease(ctx, to);
  const step = rollingStep({
    replicas: svc.replicas,
    maxSurge: svc.strategy.maxSurge,
    maxUnavailable: svc.strategy.maxUnavailable,
    oldLive: old.live.length,
    oldHealthy: old.healthy.length,
    newLive: next.live.length,
    newHealthy: next.healthy.length,
  });
  start(ctx, to, step.start);
  route(ctx, [...old.healthy, ...next.healthy]);
  stop(ctx, old.live, step.stop, 'superseded');
  // Strays of any third release (an earlier, interrupted rollout) are retired as soon as possible.
  stop(
    ctx,
    ctx.live.filter((i) => i.release !== from.name && i.release !== to.name),
    Infinity,
    'superseded',
  );
  if (next.healthy.length >= svc.replicas && old.live.length - step.stop <= 0) {
    ctx.actions.push({
      type: 'rollout',
      service: svc.name,
      id,
      phase: 'succeeded',
      reason: `all ${svc.replicas} instances of ${to.name} are healthy`,
    });
  }
}

/**
 * Blue/green: start every green instance while blue serves; once all green are healthy, switch all
 * traffic at once. Blue stays up (standby) for the rollback window; the rollout is then done.
 */
function reconcileBlueGreen(
  ctx: Context,
  blue: ReleaseRef,
  green: ReleaseRef,
  id: string,
  switchedAt?: number,
): void {
  const { svc } = ctx;
  const b = ofRelease(ctx, blue);
  const g = ofRelease(ctx, green);
  if (g.live.length < svc.replicas) start(ctx, green, svc.replicas - g.live.length);
  if (switchedAt === undefined && g.healthy.length < svc.replicas) {
    // Unsafe to switch: green is not complete. Blue keeps all traffic.
    route(ctx, b.healthy.length ? b.healthy : g.healthy);
    return;
  }
  route(ctx, g.healthy);
  ctx.actions.push({
    type: 'rollout',
    service: svc.name,
    id,
    phase: 'succeeded',
    reason: `traffic switched to ${green.name}; ${blue.name} kept for rollback`,
    switchedAt: switchedAt ?? ctx.now,
  });
}

/** A rollout that makes no progress within the deadline fails (the controller then rolls back). */
function reconcileDeadline(ctx: Context): void {
  const { svc, now } = ctx;
  const rollout = svc.rollout!;
  if (ctx.actions.some((a) => a.type === 'rollout')) return;
  if (now - rollout.startedAt > svc.progressDeadlineMs) {
    ctx.actions.push({
      type: 'rollout',
      service: svc.name,
      id: rollout.id,
      phase: 'failed',
      reason: `${rollout.to.name} did not become healthy within ${Math.round(svc.progressDeadlineMs / 1000)}s`,
    });
  }
}
