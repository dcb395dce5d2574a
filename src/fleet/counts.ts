/**
 * Pure calculators for rollouts, in the manner of Argo Rollouts' replica-count helpers: every
 * number the planner uses comes from here and is tested with tables.
 */

/** Resolves a maxSurge/maxUnavailable value (`2`, `"25%"`) against the replica count. */
export function resolveCountOrPercent(
  value: number | string,
  replicas: number,
  round: 'up' | 'down',
): number {
  if (typeof value === 'number') return value;
  const pct = Number(value.slice(0, -1)) / 100;
  return round === 'up' ? Math.ceil(replicas * pct) : Math.floor(replicas * pct);
}

/** What a rolling update may do this pass. */
export interface RollingStep {
  /** New instances to start. */
  readonly start: number;
  /** Old instances to stop (healthy ones last). */
  readonly stop: number;
}

/**
 * One pass of a rolling update, as Kubernetes' Deployment does it: never more than
 * `replicas + maxSurge` instances, never fewer than `replicas - maxUnavailable` healthy ones.
 * Surge rounds up and unavailability down, so a 25% surge of 3 is 1 and a 25% unavailability is 0;
 * when both would be 0, one surge is allowed so the update can make progress.
 */
export function rollingStep(input: {
  readonly replicas: number;
  readonly maxSurge: number | string;
  readonly maxUnavailable: number | string;
  /** Old instances still live (starting or healthy). */
  readonly oldLive: number;
  readonly oldHealthy: number;
  readonly newLive: number;
  readonly newHealthy: number;
}): RollingStep {
  const { replicas, oldLive, oldHealthy, newLive, newHealthy } = input;
  let surge = resolveCountOrPercent(input.maxSurge, replicas, 'up');
  const unavailable = resolveCountOrPercent(input.maxUnavailable, replicas, 'down');
  if (surge === 0 && unavailable === 0) surge = 1;
  const maxTotal = replicas + surge;
  const minHealthy = Math.max(0, replicas - unavailable);
  const start = Math.max(0, Math.min(replicas - newLive, maxTotal - (oldLive + newLive)));
  // Old instances that are not healthy serve nothing and can always go; healthy ones only while
  // enough healthy instances (old and new) remain.
  const stop = Math.min(oldLive, oldLive - oldHealthy + Math.max(0, oldHealthy + newHealthy - minHealthy));
  return { start, stop };
}
