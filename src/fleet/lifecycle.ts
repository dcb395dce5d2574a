import type { InstancePhase } from './types.js';

/** What can happen to an instance. */
export type InstanceEvent =
  | { readonly type: 'probe'; readonly ok: boolean }
  | { readonly type: 'exited' }
  | { readonly type: 'drain' }
  | { readonly type: 'stopped' }
  | { readonly type: 'tainted'; readonly reason: string };

/** An instance's health state as the controller tracks it. */
export interface InstanceHealth {
  readonly phase: InstancePhase;
  /** Consecutive failed probes. */
  readonly failures: number;
  /** When `phase` was entered (ms). */
  readonly since: number;
}

/**
 * The one transition function of the instance lifecycle,
 * `starting → healthy ⇄ unhealthy → draining → stopped`, plus `tainted`. Returns the same object
 * when nothing changed, so callers fire events only on a real change. `stopped` is final: a stopped
 * instance is never revived (it is replaced).
 */
export function transition(
  state: InstanceHealth,
  event: InstanceEvent,
  threshold: number,
  now: number,
): InstanceHealth {
  const to = (phase: InstancePhase, failures = 0): InstanceHealth =>
    phase === state.phase && failures === state.failures
      ? state
      : { phase, failures, since: phase === state.phase ? state.since : now };
  if (state.phase === 'stopped') return state;
  switch (event.type) {
    case 'exited':
    case 'stopped':
      return to('stopped');
    case 'drain':
      return state.phase === 'draining' ? state : to('draining');
    case 'tainted':
      return state.phase === 'draining' ? state : to('tainted');
    case 'probe': {
      if (state.phase === 'draining' || state.phase === 'tainted') return state;
      if (event.ok) return to('healthy');
      const failures = state.failures + 1;
      // A starting instance is not unhealthy yet: it has not served. The rollout deadline bounds it.
      if (state.phase === 'starting') return to('starting', failures);
      return failures >= threshold ? to('unhealthy', failures) : to(state.phase, failures);
    }
  }
}
