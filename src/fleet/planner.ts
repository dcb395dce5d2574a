import { MAX_BACKEND_WEIGHT } from '../traffic/index.js';
import { canaryPlacement, instanceWeights, rollingStep } from './counts.js';
import { planStateful } from './planner-stateful.js';
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
  /** Tainted instances that were serving: they serve on until replaced (steady state only). */
  readonly tainted: ObservedInstance[];
}

const isLive = (i: ObservedInstance) => i.phase === 'starting' || i.phase === 'healthy';

function planService(svc: DesiredService, instances: readonly ObservedInstance[], now: number): Action[] {
  if (svc.kind === 'stateful') return planStateful(svc, instances, now);
  const ctx: Context = { svc, now, actions: [], live: [], tainted: [] };
  reconcileFailures(ctx, instances);
  const rollout = svc.rollout;
  if (rollout && rollout.from && svc.strategy.type === 'canary' && rollout.canary) {
    reconcileCanary(ctx, rollout.from, rollout.to, rollout.id, rollout.canary);
  } else if (rollout && rollout.phase === 'progressing' && rollout.from) {
    if (svc.strategy.type === 'bluegreen')
      reconcileBlueGreen(ctx, rollout.from, rollout.to, rollout.id, rollout.switchedAt);
    else reconcileRolling(ctx, rollout.from, rollout.to, rollout.id);
    reconcileDeadline(ctx);
  } else {
    reconcileSteady(ctx);
    if (rollout && rollout.phase === 'progressing') reconcileFirst(ctx, rollout.id);
  }
  // Whatever reconcileSteady did not keep serving goes now, as it went before it was kept.
  for (const i of ctx.tainted.splice(0)) {
    ctx.actions.push({ type: 'stop', service: i.service, id: i.id, reason: 'tainted', drain: false });
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
 * Exited, unhealthy and tainted instances are replaced, never repaired: the steps below count each
 * as gone, so a new one is started from the same release. An unhealthy one, or a tainted one that
 * was not serving, is stopped here. A tainted one that was serving is set aside for
 * reconcileTainted: it is not to be trusted, but taking it out of the route before its replacement
 * is healthy would cost capacity, or the whole service when a shared root drifted.
 */
function reconcileFailures(ctx: Context, instances: readonly ObservedInstance[]): void {
  const reasons: Partial<Record<ObservedInstance['phase'], StopReason>> = {
    unhealthy: 'unhealthy',
    tainted: 'tainted',
  };
  for (const i of instances) {
    const reason = reasons[i.phase];
    if (i.phase === 'tainted' && i.wasServing === true && i.stopping !== true) ctx.tainted.push(i);
    else if (reason) ctx.actions.push({ type: 'stop', service: i.service, id: i.id, reason, drain: false });
    else if (isLive(i)) ctx.live.push(i);
  }
}

/**
 * Replace before retire, for tainted instances in steady state: their replacements are already
 * starting (they no longer count as live), and each tainted one serves on only while the service
 * has fewer than `replicas` healthy instances without it. The others are drained and stopped, the
 * longest tainted first. Returns the ones kept, for the route.
 */
function reconcileTainted(ctx: Context, serving: number): ObservedInstance[] {
  const order = ctx.tainted.splice(0).sort((a, b) => a.since - b.since || (a.id < b.id ? -1 : 1));
  const keep = Math.min(order.length, Math.max(0, ctx.svc.replicas - serving));
  for (const i of order.slice(0, order.length - keep)) {
    ctx.actions.push({ type: 'stop', service: i.service, id: i.id, reason: 'tainted', drain: true });
  }
  return order.slice(order.length - keep);
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
  route(ctx, [...serving, ...reconcileTainted(ctx, serving.length)]);
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

/**
 * Canary, one step at a time. Before the last step, the stable instances stay at full strength, the
 * step's canaries (new release) and, when the step is analysed, as many fresh baseline instances
 * (old release) start beside them, and each group gets its share of traffic (see
 * `canaryPlacement`). The analysis and the move to the next step are the controller's; the planner
 * only places. A step of weight 100, or the end of the steps, promotes: the baseline goes, and the
 * canaries replace the stable instances as a rolling update would.
 */
function reconcileCanary(
  ctx: Context,
  from: ReleaseRef,
  to: ReleaseRef,
  id: string,
  progress: { readonly step: number; readonly stepStartedAt: number },
): void {
  const { svc } = ctx;
  if (svc.strategy.type !== 'canary') return;
  const steps = svc.strategy.steps;
  const step = steps[progress.step];
  const old = ofRelease(ctx, from);
  const stable = old.live.filter((i) => i.role !== 'baseline');
  const baseline = old.live.filter((i) => i.role === 'baseline');
  const canary = ofRelease(ctx, to);
  const strays = ctx.live.filter((i) => i.release !== from.name && i.release !== to.name);
  stop(ctx, strays, Infinity, 'superseded');
  if (!step || step.weight >= 100) {
    promoteCanary(ctx, stable, baseline, canary, to, id);
    if (!ctx.actions.some((a) => a.type === 'rollout'))
      stepDeadline(ctx, id, progress.stepStartedAt, `the promotion of ${to.name} to 100% did not finish`);
    return;
  }
  const place = canaryPlacement(svc.replicas, step.weight, step.analyse !== undefined);
  const healthy = (list: readonly ObservedInstance[]) => list.filter((i) => i.phase === 'healthy');
  fill(ctx, from, stable, svc.replicas);
  fill(ctx, from, baseline, place.baselines, 'baseline');
  fill(ctx, to, canary.live, place.canaries, 'canary');
  // Each group's share is spread over the instances it should have, so a group still starting
  // gets only its healthy part of its share.
  const groups = [
    { list: healthy(stable), share: place.shares.stable, target: svc.replicas },
    { list: healthy(baseline), share: place.shares.baseline, target: place.baselines },
    { list: canary.healthy, share: place.shares.canary, target: place.canaries },
  ];
  const weights = instanceWeights(
    groups.map((g) => ({ share: g.share, instances: g.target })),
    MAX_BACKEND_WEIGHT,
  );
  const backends = groups
    .flatMap((g, k) => g.list.map((i) => ({ id: i.id, weight: weights[k]! })))
    .filter((b) => b.weight > 0)
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  ctx.actions.push({ type: 'route', service: svc.name, backends });
  const ready = canary.healthy.length >= place.canaries && healthy(baseline).length >= place.baselines;
  if (!ready)
    stepDeadline(
      ctx,
      id,
      progress.stepStartedAt,
      `the canary step to ${step.weight}% did not become healthy`,
    );
}

/** A canary step that began longer than the progress deadline ago fails (not while paused). */
function stepDeadline(ctx: Context, id: string, began: number, what: string): void {
  const { svc } = ctx;
  if (svc.rollout?.phase !== 'progressing' || ctx.now - began <= svc.progressDeadlineMs) return;
  ctx.actions.push({
    type: 'rollout',
    service: svc.name,
    id,
    phase: 'failed',
    reason: `${what} within ${Math.round(svc.progressDeadlineMs / 1000)}s`,
  });
}

/** Starts or stops instances of `release` in `live` until there are `n`. */
function fill(
  ctx: Context,
  release: ReleaseRef,
  live: readonly ObservedInstance[],
  n: number,
  role?: 'baseline' | 'canary',
): void {
  if (live.length < n) {
    for (let k = live.length; k < n; k++)
      ctx.actions.push({ type: 'start', service: ctx.svc.name, release, ...(role ? { role } : {}) });
  } else if (live.length > n) stop(ctx, live, live.length - n, 'surplus');
}

/** The canary's last step: retire the baseline and replace the stable instances with canaries. */
function promoteCanary(
  ctx: Context,
  stable: readonly ObservedInstance[],
  baseline: readonly ObservedInstance[],
  canary: { live: ObservedInstance[]; healthy: ObservedInstance[] },
  to: ReleaseRef,
  id: string,
): void {
  const { svc } = ctx;
  stop(ctx, baseline, Infinity, 'superseded');
  const stableHealthy = stable.filter((i) => i.phase === 'healthy');
  const step = rollingStep({
    replicas: svc.replicas,
    maxSurge: '25%',
    maxUnavailable: 0,
    oldLive: stable.length,
    oldHealthy: stableHealthy.length,
    newLive: canary.live.length,
    newHealthy: canary.healthy.length,
  });
  start(ctx, to, step.start);
  route(ctx, [...stableHealthy, ...canary.healthy]);
  stop(ctx, stable, step.stop, 'superseded');
  if (canary.live.length > svc.replicas) stop(ctx, canary.live, canary.live.length - svc.replicas, 'surplus');
  if (canary.healthy.length >= svc.replicas && stable.length - step.stop <= 0) {
    ctx.actions.push({
      type: 'rollout',
      service: svc.name,
      id,
      phase: 'succeeded',
      reason: `canary ${to.name} promoted: all ${svc.replicas} instances are healthy`,
    });
  }
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
