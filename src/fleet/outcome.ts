/**
 * How a rollout's end is recorded, whoever decides it (the planner at a deadline or on success, the
 * canary judge on a failed analysis): the phase, the Progressing condition and an event. A failed
 * rollout that had an origin is recorded as rolled back, since the next pass returns to it.
 */
import {
  ConditionReason,
  ConditionType,
  isTerminalPhase,
  setCondition,
  type StateStore,
} from '../state/index.js';
import type { Action } from './types.js';

/**
 * Records the outcome `a` on its rollout unless the rollout has already ended. Returns the phase
 * and message recorded (for the log), or undefined when nothing was.
 */
export function recordOutcome(
  store: StateStore,
  a: Extract<Action, { type: 'rollout' }>,
  now: number,
): string | undefined {
  const current = store.rollouts.find(a.id);
  if (!current || isTerminalPhase(current.phase)) return undefined;
  const rolledBack = a.phase === 'failed' && current.fromRelease !== undefined;
  const phase = rolledBack ? 'rolled-back' : a.phase;
  const message = rolledBack ? `${a.reason}; rolled back to r${current.fromRelease}` : a.reason;
  const conditions = setCondition(
    current.status.conditions,
    {
      type: ConditionType.Progressing,
      status: phase === 'succeeded' ? 'True' : 'False',
      reason:
        phase === 'succeeded'
          ? ConditionReason.RolloutSucceeded
          : (a.cause ?? (rolledBack ? ConditionReason.RolledBack : ConditionReason.ProgressDeadlineExceeded)),
      message,
    },
    new Date(now),
  );
  store.rollouts.update(current.id, current.version, {
    phase,
    status: {
      ...current.status,
      conditions,
      ...(a.switchedAt !== undefined ? { switchedAt: new Date(a.switchedAt).toISOString() } : {}),
    },
  });
  store.events.append({
    kind: `rollout.${phase}`,
    service: a.service,
    subject: a.id,
    reason: phase,
    message,
  });
  return `${phase}: ${message}`;
}
