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

/** Where a canary step puts instances and traffic. */
export interface CanaryPlacement {
  /** Canary instances (new release), and as many baseline instances (old release) when analysed. */
  readonly canaries: number;
  readonly baselines: number;
  /** Percent of the service's traffic for the stable, baseline and canary instances. */
  readonly shares: { readonly stable: number; readonly baseline: number; readonly canary: number };
}

/**
 * A canary step's placement, as Kayenta runs one: the canary gets `weight` % of the traffic on
 * `ceil(replicas × weight / 100)` instances (at least one), and an analysed step adds a fresh
 * baseline of the old release, as many instances with the same share, so the two are compared on
 * equal terms. The stable instances keep the rest.
 *
 * @example
 * canaryPlacement(4, 10, true); // { canaries: 1, baselines: 1, shares: { stable: 80, baseline: 10, canary: 10 } }
 */
export function canaryPlacement(replicas: number, weight: number, analysed: boolean): CanaryPlacement {
  const canaries = weight <= 0 ? 0 : Math.max(1, Math.ceil((replicas * weight) / 100));
  const baselines = analysed ? canaries : 0;
  const baseline = analysed ? weight : 0;
  return {
    canaries,
    baselines,
    shares: { stable: Math.max(0, 100 - weight - baseline), baseline, canary: weight },
  };
}

/**
 * Per-instance router weights (whole numbers up to `max`) that give each group its share of the
 * traffic however many instances it has: the busiest instance gets `max`, the rest in proportion,
 * and any instance of a group with a share gets at least 1.
 *
 * @example
 * instanceWeights([{ share: 90, instances: 3 }, { share: 5, instances: 1 }], 256); // [256, 43]
 */
export function instanceWeights(
  groups: readonly { readonly share: number; readonly instances: number }[],
  max: number,
): number[] {
  const per = groups.map((g) => (g.instances > 0 ? g.share / g.instances : 0));
  const top = Math.max(0, ...per);
  return per.map((p) => (p <= 0 || top === 0 ? 0 : Math.max(1, Math.round((p / top) * max))));
}
