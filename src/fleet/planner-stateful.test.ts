import { describe, expect, it } from 'vitest';
import { plan } from './planner.js';
import type { Action, DesiredService, ObservedInstance, RolloutState } from './types.js';

const R1 = { name: 'r1', digest: 'sha256:1' };
const R2 = { name: 'r2', digest: 'sha256:2' };
const NOW = 1_000_000;

function db(over: Partial<DesiredService> = {}): DesiredService {
  return {
    name: 'db',
    kind: 'stateful',
    replicas: 3,
    port: 7000,
    strategy: { type: 'rolling', maxSurge: 0, maxUnavailable: 0 },
    release: R1,
    progressDeadlineMs: 60_000,
    ...over,
  };
}

const updating = (over: Partial<RolloutState> = {}): Partial<DesiredService> => ({
  release: R2,
  rollout: { id: 'ro', from: R1, to: R2, phase: 'progressing', startedAt: NOW - 1000, ...over },
});

function at(ordinal: number, release: string, over: Partial<ObservedInstance> = {}): ObservedInstance {
  return {
    id: `db-${ordinal}-${release}`,
    service: 'db',
    release,
    phase: 'healthy',
    since: 0,
    ordinal,
    ...over,
  };
}

function show(actions: readonly Action[]): string[] {
  return actions.map((a) => {
    switch (a.type) {
      case 'start':
        return `start db-${a.ordinal} ${a.release.name}`;
      case 'stop':
        return `stop ${a.id} ${a.reason}${a.drain ? ' drain' : ''}`;
      case 'route':
        return 'route';
      case 'rollout':
        return `rollout ${a.phase}`;
    }
  });
}

describe('plan: a stateful service', () => {
  it.each<[string, Partial<DesiredService>, ObservedInstance[], string[]]>([
    ['starts every identity of a first release', {}, [], ['start db-0 r1', 'start db-1 r1', 'start db-2 r1']],
    ['restarts a lost identity with its release', {}, [at(0, 'r1'), at(2, 'r1')], ['start db-1 r1']],
    [
      'replaces an unhealthy instance once it is gone, never beside it',
      {},
      [at(0, 'r1'), at(1, 'r1', { phase: 'unhealthy' }), at(2, 'r1')],
      ['stop db-1-r1 unhealthy'],
    ],
    [
      'updates the highest ordinal first',
      updating(),
      [at(0, 'r1'), at(1, 'r1'), at(2, 'r1')],
      ['stop db-2-r1 superseded'],
    ],
    [
      'waits while the replaced instance stops',
      updating(),
      [at(0, 'r1'), at(1, 'r1'), at(2, 'r1', { stopping: true })],
      [],
    ],
    [
      'starts the replacement with the new release once it is gone',
      updating(),
      [at(0, 'r1'), at(1, 'r1')],
      ['start db-2 r2'],
    ],
    [
      'waits for the replacement to be ready before the next',
      updating(),
      [at(0, 'r1'), at(1, 'r1'), at(2, 'r2', { ready: false })],
      [],
    ],
    [
      'moves on once it is ready',
      updating(),
      [at(0, 'r1'), at(1, 'r1'), at(2, 'r2', { ready: true })],
      ['stop db-1-r1 superseded'],
    ],
    [
      'restarts a crash below the update point with the old release, and takes no other down',
      updating(),
      [at(1, 'r1'), at(2, 'r2')],
      ['start db-0 r1'],
    ],
    [
      'never takes a second down while one is starting',
      updating(),
      [at(0, 'r1'), at(1, 'r1'), at(2, 'r2', { phase: 'starting' })],
      [],
    ],
    [
      'stops nothing while paused',
      updating({ phase: 'paused' }),
      [at(0, 'r1'), at(1, 'r1'), at(2, 'r1')],
      [],
    ],
    [
      'succeeds once every identity runs the new release',
      updating(),
      [at(0, 'r2'), at(1, 'r2'), at(2, 'r2')],
      ['rollout succeeded'],
    ],
    [
      'fails at the deadline',
      updating({ startedAt: NOW - 61_000 }),
      [at(0, 'r1'), at(1, 'r1'), at(2, 'r2', { phase: 'starting' })],
      ['rollout failed'],
    ],
    [
      'scales down highest first, one at a time',
      { replicas: 1 },
      [at(0, 'r1'), at(1, 'r1'), at(2, 'r1')],
      ['stop db-2-r1 surplus'],
    ],
  ])('%s', (_name, over, observed, expected) => {
    const actions = plan([db(over)], observed, NOW);
    expect(show(actions)).toEqual(expected);
    expect(actions.some((a) => a.type === 'route')).toBe(false);
  });

  /**
   * Drives the planner through whole updates with a model of the executor (a start is healthy and
   * ready a tick later, a stop is gone a tick later) and random crashes, checking at every tick the
   * invariants the design promises.
   */
  it.each([1, 2, 3, 4, 5])('keeps its promises through an update with crashes (seed %i)', (seed) => {
    let rand = seed;
    const random = () => (rand = (rand * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const replicas = 5;
    let instances: (ObservedInstance & { age: number })[] = [...Array(replicas).keys()].map((k) => ({
      ...at(k, 'r1'),
      age: 9,
    }));
    let id = 0;
    const order: number[] = [];
    let done = false;
    for (let tick = 0; tick < 200 && !done; tick++) {
      const svc = db({ replicas, ...updating() });
      const actions = plan([svc], instances, NOW);
      // One identity is never held twice; at most one is down on purpose.
      for (let k = 0; k < replicas; k++) {
        expect(instances.filter((i) => i.ordinal === k).length).toBeLessThanOrEqual(1);
      }
      // An identity is taken down on purpose only while every one is up, and only one at a time.
      const stops = actions.filter((a) => a.type === 'stop' && a.reason === 'superseded');
      const allUp = [...Array(replicas).keys()].every((k) =>
        instances.some((i) => i.ordinal === k && i.phase === 'healthy' && !i.stopping),
      );
      expect(stops.length).toBeLessThanOrEqual(allUp ? 1 : 0);
      for (const a of actions) {
        if (a.type === 'rollout') done = a.phase === 'succeeded';
        if (a.type === 'stop') {
          const i = instances.find((x) => x.id === a.id)!;
          if (a.reason === 'superseded') order.push(i.ordinal!);
          instances = instances.map((x) => (x.id === a.id ? { ...x, stopping: true, age: 0 } : x));
        }
        if (a.type === 'start') {
          expect(instances.some((x) => x.ordinal === a.ordinal)).toBe(false);
          instances.push({
            ...at(a.ordinal!, a.release.name, { phase: 'starting' }),
            id: `i${id++}`,
            age: 0,
          });
        }
      }
      // A tick passes: stops finish, starts become healthy and ready, and now and then one crashes.
      instances = instances
        .filter((i) => !(i.stopping && i.age >= 1))
        .map((i) => ({
          ...i,
          age: i.age + 1,
          ...(i.phase === 'starting' && i.age >= 1 ? { phase: 'healthy' as const } : {}),
        }));
      if (!done && random() < 0.15 && instances.length > 0) {
        const victim = instances[Math.floor(random() * instances.length)]!;
        instances = instances.filter((i) => i !== victim);
      }
    }
    expect(done).toBe(true);
    expect(instances.map((i) => i.release)).toEqual(Array(replicas).fill('r2'));
    // Replaced highest ordinal first (a crashed identity may be restarted out of turn, never replaced).
    expect(order).toEqual([...order].sort((a, b) => b - a));
  });
});
