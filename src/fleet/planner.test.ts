import { describe, expect, it } from 'vitest';
import { rollingStep } from './counts.js';
import { plan } from './planner.js';
import type { Action, DesiredService, InstancePhase, ObservedInstance } from './types.js';

const R1 = { name: 'r1', digest: 'sha256:1' };
const R2 = { name: 'r2', digest: 'sha256:2' };
const NOW = 1_000_000;

function inst(id: string, release: string, phase: InstancePhase = 'healthy', since = 0): ObservedInstance {
  return { id, service: 'web', release, phase, since };
}

function svc(over: Partial<DesiredService> = {}): DesiredService {
  return {
    name: 'web',
    replicas: 3,
    port: 8080,
    strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: 0 },
    release: R1,
    progressDeadlineMs: 60_000,
    ...over,
  };
}

/** Compact rendering of actions, so each table row reads as the exact ordered list. */
function show(actions: readonly Action[]): string[] {
  return actions.map((a) => {
    switch (a.type) {
      case 'start':
        return `start ${a.release.name}`;
      case 'stop':
        return `stop ${a.id} ${a.reason}${a.drain ? ' drain' : ''}`;
      case 'route':
        return `route ${a.backends.map((b) => b.id).join(',') || '-'}`;
      case 'rollout':
        return `rollout ${a.phase}`;
    }
  });
}

describe('rollingStep', () => {
  it.each([
    // replicas, surge, unavailable, oldLive, oldHealthy, newLive, newHealthy → start, stop
    [3, 1, 0, 3, 3, 0, 0, 1, 0],
    [3, 1, 0, 3, 3, 1, 0, 0, 0],
    [3, 1, 0, 3, 3, 1, 1, 0, 1],
    [3, 1, 0, 2, 2, 1, 1, 1, 0],
    [3, 1, 0, 0, 0, 3, 3, 0, 0],
    [3, '25%', '25%', 3, 3, 0, 0, 1, 0],
    [4, '25%', '25%', 4, 4, 0, 0, 1, 1],
    [3, 0, 0, 3, 3, 0, 0, 1, 0],
    [3, 0, 1, 3, 3, 0, 0, 0, 1],
    [3, 1, 0, 3, 1, 0, 0, 1, 2],
    [10, '50%', 0, 10, 10, 0, 0, 5, 0],
  ])(
    'replicas %i surge %s unavailable %s old %i/%i new %i/%i → start %i stop %i',
    (replicas, maxSurge, maxUnavailable, oldLive, oldHealthy, newLive, newHealthy, startN, stopN) => {
      expect(
        rollingStep({ replicas, maxSurge, maxUnavailable, oldLive, oldHealthy, newLive, newHealthy }),
      ).toEqual({ start: startN, stop: stopN });
    },
  );
});

describe('plan: steady state and self-healing', () => {
  it.each<[string, DesiredService, ObservedInstance[], string[]]>([
    ['starts every replica of a new service', svc(), [], ['start r1', 'start r1', 'start r1', 'route -']],
    [
      'routes only healthy instances',
      svc(),
      [inst('a', 'r1'), inst('b', 'r1', 'starting'), inst('c', 'r1')],
      ['route a,c'],
    ],
    [
      'replaces an exited instance with a new one, never restarting it',
      svc(),
      [inst('a', 'r1'), inst('b', 'r1', 'stopped'), inst('c', 'r1')],
      ['start r1', 'route a,c'],
    ],
    [
      'replaces an unhealthy instance and a tainted one without draining them',
      svc(),
      [inst('a', 'r1', 'unhealthy'), inst('b', 'r1', 'tainted'), inst('c', 'r1')],
      ['stop a unhealthy', 'stop b tainted', 'start r1', 'start r1', 'route c'],
    ],
    [
      'keeps a tainted instance that was serving in the route while its replacement starts',
      svc(),
      [inst('a', 'r1'), { ...inst('b', 'r1', 'tainted'), wasServing: true }, inst('c', 'r1')],
      ['start r1', 'route a,b,c'],
    ],
    [
      'drains the tainted instance once its replacement is healthy',
      svc(),
      [
        inst('a', 'r1'),
        { ...inst('b', 'r1', 'tainted'), wasServing: true },
        inst('c', 'r1'),
        inst('d', 'r1'),
      ],
      ['stop b tainted drain', 'route a,c,d'],
    ],
    [
      'a drifted shared root taints every instance: all serve on while every replacement starts',
      svc(),
      ['a', 'b', 'c'].map((id) => ({ ...inst(id, 'r1', 'tainted'), wasServing: true })),
      ['start r1', 'start r1', 'start r1', 'route a,b,c'],
    ],
    [
      'keeps every tainted one serving when fewer were tainted than the replicas wanting cover',
      svc({ replicas: 5 }),
      ['a', 'b', 'c'].map((id) => ({ ...inst(id, 'r1', 'tainted'), wasServing: true })),
      ['start r1', 'start r1', 'start r1', 'start r1', 'start r1', 'route a,b,c'],
    ],
    [
      'retires the longest-tainted first as replacements become healthy',
      svc(),
      [
        { ...inst('a', 'r1', 'tainted', 5), wasServing: true },
        { ...inst('b', 'r1', 'tainted', 3), wasServing: true },
        { ...inst('c', 'r1', 'tainted', 4), wasServing: true },
        inst('d', 'r1'),
        inst('e', 'r1', 'starting'),
        inst('f', 'r1', 'starting'),
      ],
      ['stop b tainted drain', 'route a,c,d'],
    ],
    [
      'scales down the newest surplus instances, draining them',
      svc({ replicas: 1 }),
      [inst('a', 'r1', 'healthy', 1), inst('b', 'r1', 'healthy', 2)],
      ['route a,b', 'stop b surplus drain'],
    ],
    [
      'retires instances of another release once the current one is complete',
      svc(),
      [inst('a', 'r1'), inst('b', 'r1'), inst('c', 'r1'), inst('z', 'r0')],
      ['route a,b,c', 'stop z superseded drain'],
    ],
    [
      'keeps a blue/green standby warm without traffic until its window ends',
      svc({ standby: { release: R2, until: NOW + 1 } }),
      [inst('a', 'r1'), inst('b', 'r1'), inst('c', 'r1'), inst('s', 'r2')],
      ['route a,b,c'],
    ],
    [
      'retires the standby when its window has passed',
      svc({ standby: { release: R2, until: NOW } }),
      [inst('a', 'r1'), inst('b', 'r1'), inst('c', 'r1'), inst('s', 'r2')],
      ['stop s standby-expired drain', 'route a,b,c'],
    ],
  ])('%s', (_name, desired, observed, expected) => {
    expect(show(plan([desired], observed, NOW))).toEqual(expected);
  });

  it('retires instances of a service that is no longer declared', () => {
    expect(show(plan([], [inst('a', 'r1')], NOW))).toEqual(['stop a surplus drain']);
  });
});

describe('plan: rolling update', () => {
  const rollout = { id: 'ro1', from: R1, to: R2, phase: 'progressing' as const, startedAt: NOW - 1000 };
  const desired = svc({ release: R2, rollout });
  it.each<[string, ObservedInstance[], string[]]>([
    [
      'surges one new instance first, old ones keep serving',
      [inst('a', 'r1'), inst('b', 'r1'), inst('c', 'r1')],
      ['start r2', 'route a,b,c'],
    ],
    [
      'waits while the new one starts',
      [inst('a', 'r1'), inst('b', 'r1'), inst('c', 'r1'), inst('n1', 'r2', 'starting')],
      ['route a,b,c'],
    ],
    [
      'retires one old instance (draining it) once a new one is healthy',
      [
        inst('a', 'r1', 'healthy', 1),
        inst('b', 'r1', 'healthy', 2),
        inst('c', 'r1', 'healthy', 3),
        inst('n1', 'r2'),
      ],
      ['route a,b,c,n1', 'stop c superseded drain'],
    ],
    [
      'finishes when every new instance is healthy and the last old one goes',
      [inst('c', 'r1'), inst('n1', 'r2'), inst('n2', 'r2'), inst('n3', 'r2')],
      ['route c,n1,n2,n3', 'stop c superseded drain', 'rollout succeeded'],
    ],
    [
      'stops a tainted instance at once during a rollout, which surges replacements anyway',
      [inst('a', 'r1'), { ...inst('b', 'r1', 'tainted'), wasServing: true }, inst('c', 'r1')],
      ['start r2', 'start r2', 'route a,c', 'stop b tainted'],
    ],
  ])('%s', (_name, observed, expected) => {
    expect(show(plan([desired], observed, NOW))).toEqual(expected);
  });

  it('fails a rollout that makes no progress before its deadline', () => {
    const late = svc({ release: R2, rollout: { ...rollout, startedAt: NOW - 61_000 } });
    expect(
      show(
        plan([late], [inst('a', 'r1'), inst('b', 'r1'), inst('c', 'r1'), inst('n1', 'r2', 'starting')], NOW),
      ),
    ).toEqual(['route a,b,c', 'rollout failed']);
  });
});

describe('plan: a first rollout', () => {
  const first = svc({ rollout: { id: 'ro1', to: R1, phase: 'progressing', startedAt: NOW - 1000 } });

  it('starts the replicas and does not finish while any is not healthy', () => {
    expect(show(plan([first], [], NOW))).toEqual(['start r1', 'start r1', 'start r1', 'route -']);
    expect(show(plan([first], [inst('a', 'r1'), inst('b', 'r1'), inst('c', 'r1', 'starting')], NOW))).toEqual(
      ['route a,b'],
    );
  });

  it('succeeds once every replica is healthy', () => {
    const actions = plan([first], [inst('a', 'r1'), inst('b', 'r1'), inst('c', 'r1')], NOW);
    expect(show(actions)).toEqual(['route a,b,c', 'rollout succeeded']);
    expect(actions.at(-1)).toMatchObject({ id: 'ro1', reason: 'all 3 instances of r1 are healthy' });
  });

  it('fails at its deadline', () => {
    const late = svc({ rollout: { id: 'ro1', to: R1, phase: 'progressing', startedAt: NOW - 61_000 } });
    const actions = plan([late], [inst('a', 'r1', 'starting')], NOW);
    expect(show(actions)).toEqual(['start r1', 'start r1', 'route -', 'rollout failed']);
    expect(actions.at(-1)).toMatchObject({ reason: 'r1 did not become healthy within 60s' });
  });
});

describe('plan: blue/green', () => {
  const rollout = { id: 'ro2', from: R1, to: R2, phase: 'progressing' as const, startedAt: NOW - 1000 };
  const desired = svc({ release: R2, strategy: { type: 'bluegreen', rollbackWindow: 600_000 }, rollout });
  const blue = [inst('a', 'r1'), inst('b', 'r1'), inst('c', 'r1')];

  it('starts every green instance while blue keeps all traffic', () => {
    expect(show(plan([desired], blue, NOW))).toEqual(['start r2', 'start r2', 'start r2', 'route a,b,c']);
  });

  it('does not switch while any green instance is not yet healthy', () => {
    const observed = [...blue, inst('g1', 'r2'), inst('g2', 'r2'), inst('g3', 'r2', 'starting')];
    expect(show(plan([desired], observed, NOW))).toEqual(['route a,b,c']);
  });

  it('switches all traffic at once when green is complete, keeping blue running', () => {
    const observed = [...blue, inst('g1', 'r2'), inst('g2', 'r2'), inst('g3', 'r2')];
    const actions = plan([desired], observed, NOW);
    expect(show(actions)).toEqual(['route g1,g2,g3', 'rollout succeeded']);
    expect(actions[1]).toMatchObject({ switchedAt: NOW });
  });
});
