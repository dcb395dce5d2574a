/**
 * A person stepping into a canary rollout, as `kubectl argo rollouts promote|abort|pause|resume`
 * does: promote skips the rest of the current step (or, with `full`, every step), abort rolls back,
 * pause holds the rollout where it is (traffic stays, no look is taken, no deadline runs) and
 * resume lets it go on, with a fresh analysis window for the current step.
 */
import { ConflictError, ValidationError } from '../errors/index.js';
import {
  ConditionReason,
  ConditionType,
  setCondition,
  type ConditionInput,
  type RolloutRecord,
} from '../state/index.js';
import { canaryStatusOf, type CanaryStatus } from './canary-status.js';
import { releaseSpec, strategyOf, viewOf } from './desired.js';
import { rollback, type OperationsContext } from './operations.js';

/** What a person can do to a rollout in flight. */
export type RolloutCommand = 'promote' | 'abort' | 'pause' | 'resume';

export interface RolloutCommandInput {
  readonly service: string;
  readonly command: RolloutCommand;
  readonly actor: string;
  /** promote: skip every remaining step, not only the current one. */
  readonly full?: boolean;
}

/** Carries out `input.command` on the service's active rollout and returns the rollout as it then is. */
export async function controlRollout(
  ctx: OperationsContext,
  input: RolloutCommandInput,
): Promise<RolloutRecord> {
  const { store } = ctx;
  if (input.command === 'abort') {
    activeCanary(ctx, input.service, 'abort');
    return (await rollback(ctx, { service: input.service, actor: input.actor, abort: true })).rollout;
  }
  const updated = store.transaction(() => {
    const active = activeCanary(ctx, input.service, input.command);
    const status = canaryStatusOf(active);
    const now = new Date(ctx.clock());
    const apply = (
      phase: 'progressing' | 'paused',
      canary: CanaryStatus,
      condition: ConditionInput,
      kind: string,
    ): RolloutRecord => {
      const conditions = setCondition(active.status.conditions, condition, now);
      const next = store.rollouts.update(active.id, active.version, {
        phase,
        status: { ...active.status, canary: canary as unknown as Record<string, unknown>, conditions },
      });
      store.events.append({
        kind,
        service: input.service,
        subject: active.id,
        reason: input.command,
        message: condition.message,
      });
      return next;
    };
    switch (input.command) {
      case 'pause':
        if (active.phase === 'paused') return active;
        return apply(
          'paused',
          status,
          {
            type: ConditionType.Progressing,
            status: 'Unknown',
            reason: ConditionReason.PausedByUser,
            message: `paused by ${input.actor} at step ${status.step + 1}`,
          },
          'rollout.paused',
        );
      case 'resume': {
        if (active.phase !== 'paused') return active;
        // Counters kept through the pause are not comparable with a fresh look: the step's window starts over.
        const { window: _window, ...rest } = status;
        return apply(
          'progressing',
          { ...rest, stepStartedAt: now.toISOString(), looks: status.looks },
          {
            type: ConditionType.Progressing,
            status: 'True',
            reason: ConditionReason.RolloutStarted,
            message: `resumed by ${input.actor} at step ${status.step + 1}`,
          },
          'rollout.resumed',
        );
      }
      case 'promote': {
        const current = viewOf(store, input.service, ctx.clock()).current!;
        const strategy = strategyOf(active, releaseSpec(current).service);
        const last = strategy.type === 'canary' ? strategy.steps.length : status.step + 1;
        const step = input.full ? last : Math.min(status.step + 1, last);
        return apply(
          'progressing',
          { step, stepStartedAt: now.toISOString(), looks: status.looks },
          {
            type: ConditionType.Progressing,
            status: 'True',
            reason: ConditionReason.StepCompleted,
            message: input.full
              ? `promoted in full by ${input.actor}: skipping to 100%`
              : `promoted by ${input.actor}: step ${status.step + 1} skipped`,
          },
          'rollout.promoted',
        );
      }
    }
    return active;
  });
  ctx.kick();
  return updated;
}

function activeCanary(ctx: OperationsContext, service: string, command: RolloutCommand): RolloutRecord {
  const view = viewOf(ctx.store, service, ctx.clock());
  const active = view.active;
  if (!active) {
    throw new ConflictError(
      `${service} has no rollout in progress to ${command}; see its history with: kiln rollout status ${service}`,
    );
  }
  if (active.strategy !== 'canary' || active.fromRelease === undefined) {
    throw new ValidationError(undefined, [
      {
        path: 'service',
        message: `${service}'s rollout ${active.id} is a ${active.fromRelease === undefined ? 'first release' : active.strategy} rollout; only canary rollouts can be ${command === 'abort' ? 'aborted' : `${command}d`}`,
        fix: command === 'abort' ? `roll it back instead: kiln rollback ${service}` : 'wait for it to finish',
      },
    ]);
  }
  return active;
}
