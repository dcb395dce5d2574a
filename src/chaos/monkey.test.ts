/**
 * The chaos monkey against an in-memory store and the fake runtime, with no controller: the
 * testkit's World plays the controller's part and the router's (see testkit.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { serviceSchema, type ServiceInput } from '../spec/index.js';
import { OUTAGE_WINDOW_MS } from './monkey.js';
import {
  ACTOR,
  DIGEST,
  ended,
  kinds,
  MINUTE,
  MONDAY_10_ISO,
  ms,
  outcomes,
  PER_KILL,
  RECOVERY_MS,
  runInput,
  sleep,
  World,
} from './testkit.js';

let world: World | undefined;
const open = (base?: number) => (world = new World(base));

afterEach(async () => {
  await world?.close();
  world = undefined;
});

describe('ChaosMonkey.run', () => {
  it('kills distinct victims and measures each recovery, the failures and the run’s totals', async () => {
    const w = open();
    const seeded = await w.seed('web', {}, 3);
    w.counters.set('web', { requests: 1000, failed: 3 });
    w.counters.set('other', { requests: 5000, failed: 900 });
    let draws = 0;
    // Different draws, so the victims are not always the first in id order.
    const monkey = w.monkey({ random: () => [0.9, 0.1, 0.5][draws++ % 3]! });
    const started = monkey.run(runInput({ kills: 3, intervalMs: 10 }));
    expect(started).toMatchObject({ service: 'web', phase: 'running', kills: 3, createdBy: ACTOR });
    expect(started.message).toBe('terminating 3 instance(s) of web by kill, one every 10 ms');

    const run = await ended(w.store, started.id);
    expect(run).toMatchObject({ phase: 'done', message: '3 termination(s) done', requests: 30, failed: 6 });
    expect(w.errors).toEqual([]);
    const ts = w.store.chaos.terminations({ runId: run.id });
    expect(outcomes(ts)).toEqual(['terminated', 'terminated', 'terminated']);
    const killed = ts.map((t) => t.instance);
    expect(new Set(killed).size).toBe(3);
    expect(seeded).toContain(killed[0]); // later victims may be replacements
    expect(w.kills()).toEqual(killed.map((id) => `kill ${id}`));
    expect(w.exits.map((e) => [e.id, e.exitCode])).toEqual(killed.map((id) => [id, 137]));
    expect(new Set(ts.map((t) => t.replacement)).size).toBe(3);
    for (const t of ts) {
      expect(t).toMatchObject({ mode: 'kill', dryRun: false, failedRequests: PER_KILL.failed });
      expect(killed.slice(0, killed.indexOf(t.instance) + 1)).not.toContain(t.replacement);
      expect(w.store.instances.get(t.replacement!).createdAt >= t.startedAt).toBe(true);
      expect(ms(t.startedAt)).toBeLessThanOrEqual(ms(t.detectedAt));
      expect(ms(t.detectedAt) + RECOVERY_MS).toBeLessThanOrEqual(ms(t.recoveredAt));
    }
    const chaosKinds = kinds(w.store).filter((k) => k.startsWith('chaos.'));
    const terminated = Array(3).fill('chaos.terminated');
    expect(chaosKinds).toEqual(['chaos.run-started', ...terminated, 'chaos.run-finished']);
    expect(w.store.events.tail(1)[0]).toMatchObject({ subject: run.id, reason: 'done' });
  });

  it('stops by SIGTERM in mode stop', async () => {
    const w = open();
    await w.seed('web', {}, 2);
    const { run, ts } = await w.run(w.monkey(), { mode: 'stop' });
    expect(run.phase).toBe('done');
    expect(w.exits.map((e) => e.exitCode)).toEqual([143]);
    expect(ts[0]).toMatchObject({ outcome: 'terminated', mode: 'stop' });
    expect(ts[0]!.recoveredAt).toBeDefined();
  });

  it('waits for a replacement that comes later, polling the events', async () => {
    const w = open();
    await w.seed('web', {}, 2);
    w.replace = { afterMs: 60 };
    const { run, ts } = await w.run(w.monkey());
    expect(run.phase).toBe('done');
    const [t] = ts;
    expect(t!.replacement).toBeDefined();
    // Detected at the exit, long before the replacement served (a timer may fire 1 ms early).
    expect(ms(t!.detectedAt) + 55 + RECOVERY_MS).toBeLessThanOrEqual(ms(t!.recoveredAt));
  });

  it('credits each replacement to one termination only when recoveries overlap', async () => {
    const w = open();
    await w.seed('web', {}, 3);
    // Both kills come before either replacement serves, so each watch sees both replacements.
    w.replace = { afterMs: 50 };
    const { ts } = await w.run(w.monkey(), { kills: 2 });
    expect(outcomes(ts)).toEqual(['terminated', 'terminated']);
    expect(ts.every((t) => t.replacement !== undefined)).toBe(true);
    expect(new Set(ts.map((t) => t.replacement)).size).toBe(2);
  });

  it('targets every opted-in service in turn when none is named', async () => {
    const w = open();
    await w.seed('api', { chaos: { enabled: true } }, 2);
    await w.seed('web', { chaos: { enabled: true } }, 2);
    await w.seed('db', {}, 2);
    const { started, ts } = await w.run(w.monkey(), { service: undefined, kills: 2 });
    expect(started.service).toBeUndefined();
    expect(started.message).toContain('of api, web by kill');
    expect(ts.map((t) => t.service)).toEqual(['api', 'web']);
  });

  it('records would-terminate in a dry run and kills nothing', async () => {
    const w = open();
    const ids = await w.seed('web', {}, 3);
    const { started, run, ts } = await w.run(w.monkey(), { kills: 2, intervalMs: 10, dryRun: true });
    expect(run).toMatchObject({ phase: 'done', dryRun: true });
    expect(started.message).toMatch(/^dry run: would terminate 2 instance\(s\) of web/);
    expect(outcomes(ts)).toEqual(['would-terminate', 'would-terminate']);
    for (const t of ts) {
      expect(ids).toContain(t.instance);
      expect(t).toMatchObject({ dryRun: true, reason: `would kill ${t.instance} (dry run)` });
      expect(t.detectedAt).toBeUndefined();
      expect(t.recoveredAt).toBeUndefined();
    }
    expect(w.kills()).toEqual([]);
    expect(w.exits).toEqual([]);
    expect(w.store.instances.list({ service: 'web' }).every((i) => i.state === 'healthy')).toBe(true);
  });

  it.each([
    [1, 1, 'skipped: only 1 healthy instance; keeping at least 1'],
    [3, 3, 'skipped: only 3 healthy instances; keeping at least 3'],
  ])('skips with %i healthy and minHealthy %i, saying why', async (healthy, minHealthy, reason) => {
    const w = open();
    await w.seed('web', { chaos: { minHealthy } }, healthy);
    const { run, ts } = await w.run(w.monkey());
    expect(run.phase).toBe('done');
    expect(ts).toHaveLength(1);
    expect(ts[0]).toMatchObject({ outcome: 'skipped', instance: '', reason });
    expect(w.kills()).toEqual([]);
    expect(kinds(w.store)).toContain('chaos.skipped');
  });

  it('records a victim never replaced without a recovery once watchMs has passed', async () => {
    const w = open();
    await w.seed('web', {}, 2);
    w.replace = 'never';
    const { run, ts } = await w.run(w.monkey({ watchMs: 50 }));
    expect(run.phase).toBe('done');
    expect(ts[0]).toMatchObject({ outcome: 'terminated', detectedAt: expect.any(String) });
    expect(ts[0]!.recoveredAt).toBeUndefined();
    expect(ts[0]!.replacement).toBeUndefined();
    expect(ts[0]!.failedRequests).toBeUndefined();
    expect(ms(run.finishedAt) - ms(ts[0]!.startedAt)).toBeGreaterThanOrEqual(50);
  });

  it('credits neither the victim nor an instance started before the kill as its replacement', async () => {
    const w = open();
    await w.seed('web', {}, 2);
    w.offset += 1_000; // clearly before the kill: the watcher compares times to the millisecond
    w.replace = 'stale';
    const { ts } = await w.run(w.monkey({ watchMs: 80 }));
    expect(ts[0]).toMatchObject({ outcome: 'terminated', detectedAt: expect.any(String) });
    expect(ts[0]!.recoveredAt).toBeUndefined();
    expect(ts[0]!.replacement).toBeUndefined();
  });

  it('fails the run, saying why, when the runtime cannot kill the victim', async () => {
    const w = open();
    await w.seed('web', {}, 0);
    // Healthy in the store, but never started on the runtime.
    for (const id of ['web-ghost-a', 'web-ghost-b']) w.record('web', id);
    const { run, ts } = await w.run(w.monkey({ random: () => 0 }), { kills: 2 });
    expect(run).toMatchObject({ phase: 'failed', message: 'stopped: no instance web-ghost-a' });
    expect(ts).toHaveLength(1);
    expect(w.store.events.tail(1)[0]).toMatchObject({ kind: 'chaos.run-finished', reason: 'failed' });
  });

  it('fails a run the monkey closes before its last kill, saying how far it got', async () => {
    const w = open();
    await w.seed('web', {}, 5);
    const monkey = w.monkey();
    const { id } = monkey.run(runInput({ kills: 4, intervalMs: 200 }));
    await sleep(20);
    await monkey.close();
    const message = 'stopped: the chaos monkey closed after 1 of 4 termination(s)';
    expect(w.store.chaos.getRun(id)).toMatchObject({ phase: 'failed', message });
    expect(w.kills()).toHaveLength(1);
  });

  it('never records more failed requests than requests when the totals go backwards', async () => {
    const w = open();
    await w.seed('web', {}, 3);
    w.counters.set('web', { requests: 1000, failed: 10 });
    const monkey = w.monkey();
    const { id } = monkey.run(runInput()); // reads the totals at once
    w.counters.set('web', { requests: 20, failed: 15 }); // the router restarted
    expect(await ended(w.store, id)).toMatchObject({ phase: 'done', requests: 0, failed: 0 });
  });
});

describe('the outage checker', () => {
  it('holds while a rollout is in progress', async () => {
    const w = open();
    await w.seed('web', {}, 3);
    w.rollout('web');
    const { ts } = await w.run(w.monkey());
    expect(ts).toHaveLength(1);
    expect(ts[0]).toMatchObject({ outcome: 'held', instance: '', reason: 'held: a rollout is in progress' });
    expect(w.kills()).toEqual([]);
    expect(kinds(w.store)).toContain('chaos.held');
  });

  it('holds while the sampled error ratio is above the threshold', async () => {
    const w = open();
    await w.seed('web', { chaos: { errorThreshold: 0.05 } }, 3);
    const monkey = w.monkey();
    w.counters.set('web', { requests: 1000, failed: 10 });
    await monkey.tick(); // chaos is off: this only samples the totals
    w.offset += 1_000;
    w.counters.set('web', { requests: 1100, failed: 20 });
    await monkey.tick();
    expect(w.store.chaos.terminations()).toEqual([]);
    const chaos = monkey.chaosOf('web')!;
    const { record, watch } = await monkey.terminate('web', 'kill', { dryRun: false, chaos });
    expect(watch).toBeUndefined();
    expect(record).toMatchObject({
      outcome: 'held',
      reason: 'held: failed-request ratio 10% (10 of 100) is above the threshold 5%',
    });
    expect(w.kills()).toEqual([]);
  });

  it('forgets samples older than the outage window', async () => {
    const w = open();
    await w.seed('web', {}, 3);
    const monkey = w.monkey();
    w.counters.set('web', { requests: 1000, failed: 0 });
    await monkey.tick();
    w.offset += 1_000;
    w.counters.set('web', { requests: 1100, failed: 50 });
    await monkey.tick();
    expect((await monkey.terminate('web', 'kill', { dryRun: true })).record.outcome).toBe('held');
    // Past the window only the last sample is left, and one sample judges nothing.
    w.offset += OUTAGE_WINDOW_MS + 1_000;
    await monkey.tick();
    expect((await monkey.terminate('web', 'kill', { dryRun: true })).record.outcome).toBe('would-terminate');
  });

  it('holds a scheduled kill when the error ratio is high', async () => {
    const w = open();
    await w.seed('web', {}, 3);
    const monkey = w.monkey({ random: () => 0 });
    w.counters.set('web', { requests: 100, failed: 0 });
    await monkey.tick(); // chaos is off: this only samples the totals
    const spec = serviceSchema.parse({ name: 'web', image: DIGEST, port: 8080, chaos: { enabled: true } });
    w.store.services.put('web', spec);
    w.offset += 2_000;
    w.counters.set('web', { requests: 200, failed: 30 });
    await monkey.tick();
    const ts = w.store.chaos.terminations();
    expect(outcomes(ts)).toEqual(['held']);
    expect(ts[0]!.reason).toBe('held: failed-request ratio 30% (30 of 100) is above the threshold 1%');
  });
});

describe('modes and targets it refuses', () => {
  it.each([
    ['corrupt', /mode corrupt is not available: .*read-only root/],
    ['partition', /mode partition is not available: .*share the host network/],
  ] as const)('%s throws a ValidationError naming the mode and the reason', async (mode, why) => {
    const w = open();
    await w.seed('web', {}, 3);
    const monkey = w.monkey();
    const call = () => monkey.run(runInput({ mode }));
    expect(call).toThrow(ValidationError);
    expect(call).toThrow(why);
    await expect(monkey.terminate('web', mode, { dryRun: true })).rejects.toThrow(why);
    expect(w.store.chaos.listRuns()).toEqual([]);
    expect(w.store.chaos.terminations()).toEqual([]);
  });

  it.each([
    ['a service never deployed', 'nope', 'no service "nope" has been deployed'],
    ['no service named and none opted in', undefined, 'no service opted in to chaos'],
  ])('throws for %s', async (_, service, message) => {
    const w = open();
    await w.seed('web', {}, 3);
    const monkey = w.monkey();
    const call = () => monkey.run(runInput({ service }));
    expect(call).toThrow(ValidationError);
    expect(call).toThrow(message);
    expect(w.store.chaos.listRuns()).toEqual([]);
  });
});

describe('ChaosMonkey.tick (the schedule)', () => {
  it('has a leashed service record would-terminate once its time comes, then waits minTimeBetween', async () => {
    const w = open();
    const ids = await w.seed('web', {
      chaos: { enabled: true, meanTimeBetween: '1h', minTimeBetween: '10m' },
    });
    let u = 0.5; // a gap of −1 h · ln(0.5) ≈ 41.6 min
    const monkey = w.monkey({ random: () => u });
    await monkey.tick();
    w.offset += 40 * MINUTE;
    await monkey.tick();
    expect(w.store.chaos.terminations()).toEqual([]);
    u = 0; // from the next draw on the gap is 0, so only minTimeBetween spaces the kills
    w.offset += 2 * MINUTE;
    await monkey.tick();
    const ts = w.store.chaos.terminations();
    expect(outcomes(ts)).toEqual(['would-terminate']);
    expect(ids).toContain(ts[0]!.instance);
    expect(ts[0]).toMatchObject({ service: 'web', dryRun: true, mode: 'kill' });
    expect(ts[0]!.runId).toBeUndefined();
    expect(w.kills()).toEqual([]);
    w.offset += 5 * MINUTE;
    await monkey.tick();
    expect(w.store.chaos.terminations()).toHaveLength(1);
    w.offset += 6 * MINUTE;
    await monkey.tick();
    expect(outcomes(w.store.chaos.terminations())).toEqual(['would-terminate', 'would-terminate']);
  });

  it('kills for real when unleashed; close ends the watch, recording what it measured', async () => {
    const w = open();
    await w.seed('web', { chaos: { enabled: true, leashed: false } });
    w.replace = 'never';
    const monkey = w.monkey();
    await monkey.tick();
    await monkey.close(); // the watch is still waiting for a replacement
    const ts = w.store.chaos.terminations();
    expect(outcomes(ts)).toEqual(['terminated']);
    expect(w.kills()).toEqual([`kill ${ts[0]!.instance}`]);
    expect(ts[0]).toMatchObject({ detectedAt: expect.any(String) });
    expect(ts[0]!.recoveredAt).toBeUndefined();
  });

  const quiet: [string, string, NonNullable<ServiceInput['chaos']>][] = [
    ['with chaos disabled', MONDAY_10_ISO, { enabled: false, leashed: false }],
    ['outside its hours', '2026-01-05T18:00:00.000Z', { enabled: true }],
    ['outside its days', MONDAY_10_ISO, { enabled: true, schedule: { hours: '0-24', days: ['tue'] } }],
    ['outside its hours in Tokyo', MONDAY_10_ISO, { enabled: true, schedule: { timezone: 'Asia/Tokyo' } }],
  ];
  it.each(quiet)('never acts for a service %s', async (_, at, chaos) => {
    const w = open(Date.parse(at));
    await w.seed('web', { chaos });
    const monkey = w.monkey();
    for (let i = 0; i < 4; i++) {
      await monkey.tick();
      w.offset += 30 * MINUTE;
    }
    expect(w.store.chaos.terminations()).toEqual([]);
    expect(w.kills()).toEqual([]);
  });

  it('logs a service whose mode this runtime lacks and goes on to the others', async () => {
    const w = open();
    await w.seed('api', { chaos: { enabled: true, mode: 'corrupt' } });
    await w.seed('web', { chaos: { enabled: true } });
    const monkey = w.monkey();
    await monkey.tick();
    expect(w.store.chaos.terminations().map((t) => t.service)).toEqual(['web']);
    const logged = w.logs.filter((l) => l.startsWith('chaos: api: '));
    expect(logged.some((l) => l.includes('mode corrupt is not available'))).toBe(true);
  });

  it('runs the schedule every tickMs once started, until closed', async () => {
    const w = open();
    await w.seed('api', { chaos: { enabled: true, mode: 'partition' } });
    await w.seed('web', { chaos: { enabled: true, minTimeBetween: '0s', meanTimeBetween: '1s' } });
    const monkey = w.monkey({ tickMs: 5 });
    monkey.start();
    const until = Date.now() + 2_000;
    while (w.store.chaos.terminations().length < 2 && Date.now() < until) await sleep(5);
    await monkey.close();
    const ts = w.store.chaos.terminations();
    expect(ts.length).toBeGreaterThanOrEqual(2);
    expect(new Set(ts.map((t) => t.service))).toEqual(new Set(['web']));
    await sleep(30);
    expect(w.store.chaos.terminations()).toHaveLength(ts.length);
  });
});
