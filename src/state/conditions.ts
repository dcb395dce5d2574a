/**
 * Status conditions, `{ type, status, reason, message }` as in Kubernetes, with pure helpers.
 * Controllers set them on the status they write; the time a condition last changed status is kept
 * so that "unhealthy for 5 minutes" can be computed from stored state after a restart.
 */

/** Whether the condition holds. */
export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** One observation about a resource. */
export interface Condition {
  /** What is observed, such as `Available` (see `ConditionType`). */
  readonly type: string;
  readonly status: ConditionStatus;
  /** A CamelCase constant saying why (see `ConditionReason`). */
  readonly reason: string;
  /** A sentence for people. */
  readonly message: string;
  /** ISO 8601 UTC time `status` last changed. */
  readonly lastTransitionTime: string;
}

/** A condition as a controller reports it; `setCondition` supplies the transition time. */
export type ConditionInput = Omit<Condition, 'lastTransitionTime'>;

/** Condition types kiln's controllers set. */
export const ConditionType = {
  /** Enough healthy instances of the service serve traffic. */
  Available: 'Available',
  /** A rollout is moving the service towards its desired release. */
  Progressing: 'Progressing',
  /** The canary judge's verdict on the current analysis. */
  Analysed: 'Analysed',
  /** The instance passes its health check. */
  Healthy: 'Healthy',
  /** What runs matches what was released. */
  Verified: 'Verified',
} as const;

/** Reasons kiln's controllers give; stable strings that tools and tests can match on. */
export const ConditionReason = {
  RolloutStarted: 'RolloutStarted',
  StepCompleted: 'StepCompleted',
  PausedByUser: 'PausedByUser',
  AnalysisRunning: 'AnalysisRunning',
  AnalysisPassed: 'AnalysisPassed',
  AnalysisFailed: 'AnalysisFailed',
  RolloutSucceeded: 'RolloutSucceeded',
  RolledBack: 'RolledBack',
  ProgressDeadlineExceeded: 'ProgressDeadlineExceeded',
  MinimumReplicasAvailable: 'MinimumReplicasAvailable',
  MinimumReplicasUnavailable: 'MinimumReplicasUnavailable',
  HealthCheckPassing: 'HealthCheckPassing',
  HealthCheckFailing: 'HealthCheckFailing',
  DriftDetected: 'DriftDetected',
  ExecDetected: 'ExecDetected',
  DigestMatches: 'DigestMatches',
} as const;

/**
 * Returns `conditions` with `next` in place of the condition of the same type (or appended).
 * `lastTransitionTime` stays as it was unless `status` changed (or the condition is new), when it
 * becomes `now`. Returns the very same array when nothing changed, so a caller can tell a change
 * (and record an event only then) with `!==`.
 *
 * @example
 * const conditions = setCondition(status.conditions, {
 *   type: ConditionType.Available, status: 'False',
 *   reason: ConditionReason.MinimumReplicasUnavailable, message: '1 of 3 instances healthy',
 * }, now);
 * if (conditions !== status.conditions) events.append({ ... });
 */
export function setCondition(
  conditions: readonly Condition[],
  next: ConditionInput,
  now: Date,
): readonly Condition[] {
  const i = conditions.findIndex((c) => c.type === next.type);
  const current = conditions[i];
  if (!current) return [...conditions, { ...next, lastTransitionTime: now.toISOString() }];
  if (current.status === next.status && current.reason === next.reason && current.message === next.message) {
    return conditions;
  }
  const lastTransitionTime = current.status === next.status ? current.lastTransitionTime : now.toISOString();
  const updated: Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime,
  };
  return conditions.map((c, j) => (j === i ? updated : c));
}

/** The condition of `type`, if set. */
export function findCondition(conditions: readonly Condition[], type: string): Condition | undefined {
  return conditions.find((c) => c.type === type);
}

/** True when the condition of `type` is set and has status `True`. */
export function isConditionTrue(conditions: readonly Condition[], type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}
