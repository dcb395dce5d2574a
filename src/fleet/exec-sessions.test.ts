import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../errors/index.js';
import { EXEC_DETECTED, ExecSessions } from './exec-sessions.js';
import { Harness } from './testkit.js';

let h: Harness | undefined;
let sessions: ExecSessions | undefined;
afterEach(async () => {
  sessions?.close();
  sessions = undefined;
  await h?.close();
  h = undefined;
});

/** Two healthy instances of `web`, and sessions over the controller with a clock the test moves. */
async function setup(drift: { action?: 'replace' | 'alert'; execGrace?: string } = {}) {
  h = new Harness();
  h.declare({ name: 'web', replicas: 2, drift: { execGrace: '1s', ...drift } });
  await h.controller.start();
  const { rollout } = await h.deploy('web');
  await h.until(() => h!.phase(rollout.id) === 'succeeded', 'the first release');
  const clock = { now: Date.now() };
  const harness = h;
  sessions = new ExecSessions({
    store: h.store,
    taint: (id, reason, message, replace) => harness.controller.taint(id, reason, message, replace),
    clock: () => clock.now,
    ttlMs: 10_000,
  });
  const ids = h
    .live('web')
    .map((i) => i.id)
    .sort();
  return { harness: h, sessions, clock, ids };
}

const kinds = (harness: Harness, id: string) =>
  harness.store.events
    .since(0, { service: 'web' })
    .filter((e) => e.subject === id && (e.kind.startsWith('exec.') || e.kind === 'drift.detected'))
    .map((e) => `${e.kind} ${e.reason}`);

describe('ExecSessions', () => {
  it('taints the instance at once, holds it while open and for the grace after, then replaces it', async () => {
    const { harness, sessions, clock, ids } = await setup();
    const s = sessions.open(ids[0]!, 'alice', ['/bin/sh']);
    expect(s).toMatchObject({
      instance: ids[0],
      actor: 'alice',
      state: 'open',
      graceMs: 1000,
      replace: true,
    });
    expect(harness.store.instances.get(ids[0]!).taint).toMatchObject({ reason: EXEC_DETECTED });
    expect(kinds(harness, ids[0]!)).toEqual(['drift.detected ExecDetected', `exec.started ${EXEC_DETECTED}`]);

    clock.now += 9_000;
    sessions.heartbeat(s.id);
    clock.now += 9_000; // 18 s after opening, 9 s after the heartbeat: still open
    sessions.sweep();
    expect(sessions.held(ids[0]!)).toBe(true);
    expect(sessions.end(s.id, 3)).toMatchObject({ state: 'ended', exitCode: 3, endedAt: clock.now });
    clock.now += 999;
    sessions.sweep();
    expect(sessions.held(ids[0]!)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(harness.store.instances.get(ids[0]!).state).not.toBe('stopped');

    clock.now += 1;
    expect(sessions.held(ids[0]!)).toBe(false);
    sessions.sweep();
    await harness.until(
      () => harness.store.instances.get(ids[0]!).state === 'stopped',
      'the exec-tainted one stopped',
    );
    await harness.until(
      () => harness.live('web').filter((i) => i.state === 'healthy').length === 2,
      'a replacement',
    );
    expect(harness.live('web').map((i) => i.id)).not.toContain(ids[0]);
    expect(harness.store.instances.get(ids[1]!).taint).toBeUndefined();
    expect(kinds(harness, ids[0]!)).toContain('exec.ended ExecEnded');
    expect(sessions.list()).toEqual([]);
  });

  it('ends a session whose client stopped heartbeating at its last heartbeat', async () => {
    const { harness, sessions, clock, ids } = await setup();
    const s = sessions.open(ids[1]!, 'bob', ['top']);
    clock.now += 4_000;
    sessions.heartbeat(s.id);
    clock.now += 10_000; // ttl after the heartbeat
    expect(sessions.list()).toEqual([
      expect.objectContaining({ id: s.id, state: 'expired', endedAt: clock.now - 10_000 }),
    ]);
    expect(() => sessions.heartbeat(s.id)).toThrow(NotFoundError);
    // Its grace ran from the last heartbeat, long over.
    expect(sessions.held(ids[1]!)).toBe(false);
    sessions.sweep();
    await harness.until(
      () => harness.store.instances.get(ids[1]!).state === 'stopped',
      'the expired one replaced',
    );
    expect(kinds(harness, ids[1]!)).toContain('exec.ended ExecExpired');
  });

  it('only reports when the service says alert', async () => {
    const { harness, sessions, clock, ids } = await setup({ action: 'alert' });
    const s = sessions.open(ids[0]!, 'alice', ['/bin/sh']);
    expect(s.replace).toBe(false);
    sessions.end(s.id);
    clock.now += 5_000;
    sessions.sweep();
    await new Promise((r) => setTimeout(r, 100));
    expect(harness.store.instances.get(ids[0]!)).toMatchObject({
      state: 'healthy',
      taint: { reason: EXEC_DETECTED },
    });
  });

  it('refuses unknown instances and sessions', async () => {
    const { sessions } = await setup();
    expect(() => sessions.open('nope', 'alice', ['sh'])).toThrow(NotFoundError);
    expect(() => sessions.heartbeat('exec-000000000000')).toThrow(NotFoundError);
    expect(() => sessions.end('exec-000000000000')).toThrow(NotFoundError);
  });

  it('after a restart, holds an exec-tainted instance for one grace from the start, then replaces it', async () => {
    const { harness, sessions, clock, ids } = await setup();
    sessions.open(ids[0]!, 'alice', ['/bin/sh']);
    sessions.close();
    const again = new ExecSessions({
      store: harness.store,
      taint: (id, reason, message, replace) => harness.controller.taint(id, reason, message, replace),
      clock: () => clock.now,
      sweepMs: 10,
    });
    try {
      again.start();
      expect(again.held(ids[0]!)).toBe(true);
      expect(again.held(ids[1]!)).toBe(false);
      clock.now += 1_000;
      await harness.until(
        () => harness.store.instances.get(ids[0]!).state === 'stopped',
        'replaced after the grace',
      );
    } finally {
      again.close();
    }
  });
});
