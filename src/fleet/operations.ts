/**
 * Deploy and rollback: the only two ways a service changes. Each records an immutable release (or
 * reuses one) and a rollout to it; the controller's next pass carries the rollout out. A release is
 * never edited, and an instance never changes: everything new arrives as new instances.
 */
import { ConflictError, ValidationError } from '../errors/index.js';
import type { ServiceSpec } from '../spec/index.js';
import {
  ConditionReason,
  ConditionType,
  parseReleaseRef,
  setCondition,
  type ReleaseRecord,
  type RolloutRecord,
  type StateStore,
} from '../state/index.js';
import { configHash, releaseSpec, viewOf, type ReleaseSpec } from './desired.js';
import type { ImageCatalog } from './images.js';

/** What deploy and rollback need. */
export interface OperationsContext {
  readonly store: StateStore;
  readonly images: ImageCatalog;
  readonly clock: () => number;
  /** The service as declared now (the project's config is read again for every deploy). */
  readonly declared: (service: string) => Promise<ServiceSpec>;
  /** Called after a rollout was recorded, so the controller acts at once. */
  readonly kick: () => void;
}

export interface DeployInput {
  readonly service: string;
  /** An image name in the store or a digest; default: the service's `image`. */
  readonly image?: string;
  readonly strategy?: 'rolling' | 'bluegreen' | 'canary';
  readonly reason?: string;
  /** Who asks (the API token's name). */
  readonly actor: string;
}

export interface Outcome {
  readonly release: ReleaseRecord;
  readonly rollout: RolloutRecord;
  readonly unchanged?: boolean;
  readonly instant?: boolean;
}

/**
 * Records release `rN+1` of the service (its spec as declared now and the image's digest) and a
 * rollout to it. Deploying what already runs changes nothing and says so. The image is admitted
 * first (`ImageCatalog.admit`: signed by a key the service trusts, every blob intact); a refused
 * one records nothing.
 */
export async function deploy(ctx: OperationsContext, input: DeployInput): Promise<Outcome> {
  const spec = await ctx.declared(input.service);
  const strategy = input.strategy ?? spec.strategy.type;
  if (spec.kind === 'stateful' && strategy !== 'rolling') {
    throw new ValidationError(undefined, [
      {
        path: 'strategy',
        message: `${input.service} is stateful: it is updated one instance at a time, highest ordinal first, never by ${strategy}`,
        fix: 'deploy it without a strategy',
      },
    ]);
  }
  const ref = input.image ?? spec.image;
  const image = await ctx.images.resolve(ref);
  // Before anything is recorded: an image no trusted key signed, or with a damaged blob, never
  // becomes a release (and so is never started, nor rolled back to).
  await ctx.images.admit(spec, ref, image.digest);
  const frozen: ReleaseSpec = { service: spec, process: image.process };
  const hash = configHash(frozen);
  const { store } = ctx;
  const outcome = store.transaction((): Outcome => {
    store.services.put(input.service, spec);
    const view = viewOf(store, input.service, ctx.clock());
    const current = view.current;
    const same = current !== undefined && current.digest === image.digest && current.configHash === hash;
    // Deploying what is already rolling out (a `kiln up` again after a Ctrl-C mid-rollout) joins it.
    if (view.active && same) return { release: current, rollout: view.active, unchanged: true };
    if (view.active) {
      throw new ConflictError(
        `${input.service} is already rolling out to r${view.active.toRelease} (rollout ${view.active.id}); ` +
          `wait for it (kiln status ${input.service}) or roll it back (kiln rollback ${input.service})`,
      );
    }
    if (same && view.lastRollout) return { release: current, rollout: view.lastRollout, unchanged: true };
    const release = store.releases.create({
      service: input.service,
      digest: image.digest,
      configHash: hash,
      spec: frozen,
      createdBy: input.actor,
      reason: input.reason ?? (input.image ? `deploy of ${input.image}` : 'deploy'),
    });
    const rollout = begin(ctx, {
      service: input.service,
      ...(current ? { fromRelease: current.number } : {}),
      toRelease: release.number,
      strategy,
      message: current
        ? `${strategy} rollout from ${current.name} to ${release.name}`
        : `first release ${release.name}`,
    });
    return { release, rollout };
  });
  if (!outcome.unchanged) ctx.kick();
  return outcome;
}

/**
 * Goes back to an earlier release (`to`, default the one before the current). A rollout still in
 * flight is abandoned, which returns the service to its origin. While a blue/green standby is kept,
 * going back to it is instant: its instances are warm, so traffic switches on the next pass.
 */
export async function rollback(
  ctx: OperationsContext,
  input: { readonly service: string; readonly to?: string; readonly actor: string; readonly abort?: boolean },
): Promise<Outcome> {
  const { store } = ctx;
  const outcome = store.transaction((): Outcome => {
    const view = viewOf(store, input.service, ctx.clock());
    if (!view.lastRollout) {
      throw new ValidationError(undefined, [
        {
          path: 'service',
          message: `${input.service} has no releases`,
          fix: `deploy it first: kiln deploy ${input.service}`,
        },
      ]);
    }
    const active = view.active;
    if (active && input.to === undefined) {
      if (active.fromRelease === undefined) {
        throw new ValidationError(undefined, [
          {
            path: 'service',
            message: `${input.service}'s first release is rolling out; there is nothing to roll back to`,
            fix: 'wait for it, or deploy another image',
          },
        ]);
      }
      const rollout = finish(
        ctx,
        active,
        'rolled-back',
        `${input.abort ? 'aborted' : 'rolled back'} by ${input.actor}`,
      );
      return { release: store.releases.get(input.service, active.fromRelease), rollout };
    }
    if (active) {
      throw new ConflictError(
        `${input.service} is rolling out (rollout ${active.id}); roll that back first (kiln rollback ${input.service})`,
      );
    }
    const current = view.current!;
    const target = input.to
      ? store.releases.get(input.service, parseReleaseRef(input.to))
      : previous(store, input.service, current);
    if (target.number === current.number) {
      throw new ValidationError(undefined, [
        {
          path: 'to',
          message: `${input.service} already runs ${target.name}`,
          fix: `name another release: kiln releases ${input.service}`,
        },
      ]);
    }
    const instant = view.standby?.release.number === target.number;
    const declared = releaseSpec(target).service.strategy.type;
    const strategy = instant ? 'bluegreen' : declared === 'canary' ? 'rolling' : declared;
    const rollout = begin(ctx, {
      service: input.service,
      fromRelease: current.number,
      toRelease: target.number,
      strategy,
      message: instant
        ? `rollback to ${target.name}: switching back to its warm standby`
        : `rollback from ${current.name} to ${target.name} by ${strategy}`,
    });
    return { release: target, rollout, instant };
  });
  ctx.kick();
  return outcome;
}

/** The release the service ran before `current`: the origin of the rollout that brought `current`. */
function previous(store: StateStore, service: string, current: ReleaseRecord): ReleaseRecord {
  const brought = store.rollouts
    .list(service, 100)
    .find((r) => r.phase === 'succeeded' && r.toRelease === current.number && r.fromRelease !== undefined);
  if (brought) return store.releases.get(service, brought.fromRelease!);
  if (current.number > 1) return store.releases.get(service, current.number - 1);
  throw new ValidationError(undefined, [
    {
      path: 'to',
      message: `${service} has only ${current.name}; there is no earlier release`,
      fix: 'deploy another image instead',
    },
  ]);
}

function begin(
  ctx: OperationsContext,
  input: {
    readonly service: string;
    readonly fromRelease?: number;
    readonly toRelease: number;
    readonly strategy: 'rolling' | 'bluegreen' | 'canary';
    readonly message: string;
  },
): RolloutRecord {
  const { store } = ctx;
  const created = store.rollouts.create({
    service: input.service,
    ...(input.fromRelease !== undefined ? { fromRelease: input.fromRelease } : {}),
    toRelease: input.toRelease,
    strategy: input.strategy,
  });
  const conditions = setCondition(
    [],
    {
      type: ConditionType.Progressing,
      status: 'True',
      reason: ConditionReason.RolloutStarted,
      message: input.message,
    },
    new Date(ctx.clock()),
  );
  const rollout = store.rollouts.update(created.id, created.version, {
    phase: 'progressing',
    status: {
      ...created.status,
      conditions,
      // A canary starts at its first step; a first release has nothing to compare with and runs as any first release.
      ...(input.strategy === 'canary' && input.fromRelease !== undefined
        ? { canary: { step: 0, stepStartedAt: new Date(ctx.clock()).toISOString(), looks: [] } }
        : {}),
    },
  });
  store.events.append({
    kind: 'rollout.started',
    service: input.service,
    subject: rollout.id,
    reason: input.strategy,
    message: input.message,
  });
  return rollout;
}

function finish(
  ctx: OperationsContext,
  rollout: RolloutRecord,
  phase: 'rolled-back',
  message: string,
): RolloutRecord {
  const conditions = setCondition(
    rollout.status.conditions,
    { type: ConditionType.Progressing, status: 'False', reason: ConditionReason.RolledBack, message },
    new Date(ctx.clock()),
  );
  const done = ctx.store.rollouts.update(rollout.id, rollout.version, {
    phase,
    status: { ...rollout.status, conditions },
  });
  ctx.store.events.append({
    kind: `rollout.${phase}`,
    service: rollout.service,
    subject: rollout.id,
    reason: phase,
    message,
  });
  return done;
}
