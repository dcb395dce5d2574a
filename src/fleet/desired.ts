/**
 * Desired state, derived from the state store: which release each service runs, the rollout in
 * flight and the blue/green standby. Nothing here is stored twice: a service's current release is
 * what its newest rollout says (its target while it runs or once it succeeded, its origin once it
 * failed or was rolled back), so a restarted controller derives exactly what the old one had.
 */
import { createHash } from 'node:crypto';
import { strategySchema, type ServiceSpec, type StrategySpec } from '../spec/index.js';
import {
  canonicalJson,
  isTerminalPhase,
  type ReleaseRecord,
  type RolloutRecord,
  type StateStore,
} from '../state/index.js';
import { canaryProgress } from './canary-status.js';
import type { DesiredService, ReleaseRef } from './types.js';

/** How a release's instances run: the image's process, fixed when the release is made. */
export interface ReleaseProcess {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly user: { readonly uid: number; readonly gid: number };
}

/** What a release freezes: the service's spec and the image's process. Never changed afterwards. */
export interface ReleaseSpec {
  readonly service: ServiceSpec;
  readonly process: ReleaseProcess;
}

/**
 * sha256 of the canonical JSON of a release spec: two releases with equal hashes run the same.
 * The service's `chaos` settings are left out: they say how kiln tests the service, not what runs,
 * so changing them is no new release (the monkey reads them from the declared service). So is its
 * `trust`: which keys may sign an image is checked at deploy, and changes nothing that runs. And
 * its `drift` policy: how kiln treats an instance that is no longer exactly its release.
 */
export function configHash(spec: ReleaseSpec): string {
  const { chaos: _chaos, trust: _trust, drift: _drift, ...service } = spec.service;
  const text = canonicalJson({ ...spec, service }, 'release spec');
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/** A release's frozen spec. */
export function releaseSpec(release: ReleaseRecord): ReleaseSpec {
  return release.spec as unknown as ReleaseSpec;
}

export function refOf(release: ReleaseRecord): ReleaseRef {
  return { name: release.name, digest: release.digest };
}

/** Where a service stands: its current release, the rollout in flight, the standby. */
export interface ServiceView {
  readonly name: string;
  readonly current?: ReleaseRecord;
  /** The release the newest rollout moved from, if any. */
  readonly from?: ReleaseRecord;
  /** The newest rollout, in flight or finished. */
  readonly lastRollout?: RolloutRecord;
  /** The rollout in flight. */
  readonly active?: RolloutRecord;
  readonly standby?: { readonly release: ReleaseRecord; readonly until: number };
}

/** The service's current release and rollouts, as the store has them. */
export function viewOf(store: StateStore, service: string, now: number): ServiceView {
  const last = store.rollouts.list(service, 1)[0];
  if (!last) return { name: service };
  const to = store.releases.get(service, last.toRelease);
  const from = last.fromRelease === undefined ? undefined : store.releases.get(service, last.fromRelease);
  const active = isTerminalPhase(last.phase) ? undefined : last;
  const current = active || last.phase === 'succeeded' ? to : from;
  const switchedAt = last.status.switchedAt === undefined ? undefined : Date.parse(last.status.switchedAt);
  let standby: ServiceView['standby'];
  if (last.phase === 'succeeded' && from && switchedAt !== undefined && last.strategy === 'bluegreen') {
    const until = switchedAt + rollbackWindowOf(releaseSpec(to).service);
    if (until > now) standby = { release: from, until };
  }
  return {
    name: service,
    ...(current ? { current } : {}),
    ...(from ? { from } : {}),
    lastRollout: last,
    ...(active ? { active } : {}),
    ...(standby ? { standby } : {}),
  };
}

/** What the planner needs for one service, or undefined when it has no release yet. */
export function desiredOf(view: ServiceView): DesiredService | undefined {
  const { current, active, from } = view;
  if (!current) return undefined;
  const spec = releaseSpec(current).service;
  const strategy = active ? strategyOf(active, spec) : spec.strategy;
  return {
    name: view.name,
    replicas: spec.replicas,
    port: spec.port,
    ...(spec.kind === 'stateful' ? { kind: 'stateful' as const } : {}),
    strategy,
    release: refOf(current),
    ...(active
      ? {
          rollout: {
            id: active.id,
            ...(from ? { from: refOf(from) } : {}),
            to: refOf(current),
            phase: active.phase === 'paused' ? ('paused' as const) : ('progressing' as const),
            startedAt: Date.parse(active.createdAt),
            ...(active.status.switchedAt ? { switchedAt: Date.parse(active.status.switchedAt) } : {}),
            ...(active.strategy === 'canary' ? { canary: canaryProgress(active) } : {}),
          },
        }
      : {}),
    ...(view.standby ? { standby: { release: refOf(view.standby.release), until: view.standby.until } } : {}),
    progressDeadlineMs: spec.progressDeadline,
  };
}

/**
 * The canary a rollout uses when the service declares another strategy (a base-image ring, or
 * `deploy --strategy canary`): 10 % analysed for 2 minutes with the default metrics, then 100 %.
 */
export const DEFAULT_CANARY: Extract<StrategySpec, { type: 'canary' }> = strategySchema.parse({
  type: 'canary',
  steps: [{ weight: 10, analyse: '2m' }],
}) as Extract<StrategySpec, { type: 'canary' }>;

/**
 * The strategy a rollout runs by: the service's own when the rollout uses its type, else that
 * type's defaults (a rollback by rolling, a blue/green rollback to a warm standby, a ring's canary).
 */
export function strategyOf(rollout: RolloutRecord, spec: ServiceSpec): StrategySpec {
  if (rollout.strategy === spec.strategy.type) return spec.strategy;
  switch (rollout.strategy) {
    case 'bluegreen':
      return { type: 'bluegreen', rollbackWindow: rollbackWindowOf(spec) };
    case 'rolling':
      return { type: 'rolling', maxSurge: '25%', maxUnavailable: 0 };
    case 'canary':
      return DEFAULT_CANARY;
  }
}

function rollbackWindowOf(spec: ServiceSpec): number {
  return spec.strategy.type === 'bluegreen' ? spec.strategy.rollbackWindow : DEFAULT_ROLLBACK_WINDOW_MS;
}

/** The rollback window of a blue/green rollout of a service declared with another strategy: 10 min. */
export const DEFAULT_ROLLBACK_WINDOW_MS = 10 * 60_000;
