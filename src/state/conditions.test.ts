import { describe, expect, it } from 'vitest';
import {
  ConditionReason,
  ConditionType,
  findCondition,
  isConditionTrue,
  setCondition,
  type Condition,
  type ConditionInput,
} from './conditions.js';

const T0 = new Date('2026-01-01T00:00:00.000Z');
const T1 = new Date('2026-01-01T00:05:00.000Z');

const available = (status: Condition['status'], message = ''): ConditionInput => ({
  type: ConditionType.Available,
  status,
  reason:
    status === 'True' ? ConditionReason.MinimumReplicasAvailable : ConditionReason.MinimumReplicasUnavailable,
  message,
});

describe('setCondition', () => {
  const cases: {
    name: string;
    before: readonly Condition[];
    next: ConditionInput;
    after: readonly Condition[];
  }[] = [
    {
      name: 'adds a new condition stamped now',
      before: [],
      next: available('True'),
      after: [{ ...available('True'), lastTransitionTime: T1.toISOString() }],
    },
    {
      name: 'keeps the transition time when only the message changes',
      before: [{ ...available('False', '1 of 3'), lastTransitionTime: T0.toISOString() }],
      next: available('False', '2 of 3'),
      after: [{ ...available('False', '2 of 3'), lastTransitionTime: T0.toISOString() }],
    },
    {
      name: 'moves the transition time when the status changes',
      before: [{ ...available('False', '2 of 3'), lastTransitionTime: T0.toISOString() }],
      next: available('True', '3 of 3'),
      after: [{ ...available('True', '3 of 3'), lastTransitionTime: T1.toISOString() }],
    },
    {
      name: 'replaces by type, keeping the others and their order',
      before: [
        {
          type: 'Progressing',
          status: 'True',
          reason: 'RolloutStarted',
          message: '',
          lastTransitionTime: 'a',
        },
        { ...available('False'), lastTransitionTime: 'b' },
        {
          type: 'Healthy',
          status: 'True',
          reason: 'HealthCheckPassing',
          message: '',
          lastTransitionTime: 'c',
        },
      ],
      next: available('True'),
      after: [
        {
          type: 'Progressing',
          status: 'True',
          reason: 'RolloutStarted',
          message: '',
          lastTransitionTime: 'a',
        },
        { ...available('True'), lastTransitionTime: T1.toISOString() },
        {
          type: 'Healthy',
          status: 'True',
          reason: 'HealthCheckPassing',
          message: '',
          lastTransitionTime: 'c',
        },
      ],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const before = structuredClone(c.before);
      expect(setCondition(c.before, c.next, T1)).toEqual(c.after);
      expect(c.before).toEqual(before);
    });
  }

  it('returns the same array when nothing changed, and a new one when something did', () => {
    const conditions = setCondition([], available('True', 'ok'), T0);
    expect(setCondition(conditions, available('True', 'ok'), T1)).toBe(conditions);
    expect(setCondition(conditions, available('True', 'still ok'), T1)).not.toBe(conditions);
  });
});

describe('findCondition and isConditionTrue', () => {
  const conditions = setCondition(
    setCondition([], available('False'), T0),
    {
      type: ConditionType.Healthy,
      status: 'True',
      reason: ConditionReason.HealthCheckPassing,
      message: '',
    },
    T0,
  );

  it('finds by type', () => {
    expect(findCondition(conditions, ConditionType.Available)?.status).toBe('False');
    expect(findCondition(conditions, ConditionType.Progressing)).toBeUndefined();
  });

  it('is true only for a condition with status True', () => {
    expect(isConditionTrue(conditions, ConditionType.Healthy)).toBe(true);
    expect(isConditionTrue(conditions, ConditionType.Available)).toBe(false);
    expect(isConditionTrue(conditions, ConditionType.Progressing)).toBe(false);
  });
});
