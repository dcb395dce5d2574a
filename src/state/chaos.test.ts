import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, ValidationError } from '../errors/index.js';
import type { NewChaosRun, NewChaosTermination } from './chaos.js';
import { catchError, StateFixture, TestClock } from './testkit.js';

const fx = new StateFixture();
afterEach(() => fx.cleanup());

const T0 = '2026-01-01T00:00:00.000Z';

function setup() {
  const clock = new TestClock();
  const store = fx.open(undefined, { clock: clock.now });
  return { clock, store, chaos: store.chaos };
}

const run = (over: Partial<NewChaosRun> = {}): NewChaosRun => ({
  service: 'api',
  mode: 'kill',
  kills: 3,
  intervalMs: 1000,
  dryRun: false,
  createdBy: 'alice',
  message: 'terminating 3 instance(s) of api by kill, one every 1000 ms',
  ...over,
});

const kill = (over: Partial<NewChaosTermination> = {}): NewChaosTermination => ({
  service: 'api',
  instance: 'api-r1-000001',
  mode: 'kill',
  dryRun: false,
  outcome: 'terminated',
  reason: 'kill api-r1-000001',
  ...over,
});

/** The issue paths of the ValidationError `fn` throws. */
function issuePaths(fn: () => unknown): string[] {
  const err = catchError(fn);
  expect(err).toBeInstanceOf(ValidationError);
  return (err as ValidationError).issues.map((i) => i.path);
}

describe('chaos runs', () => {
  it('creates a running run and ends it with the totals', () => {
    const { clock, chaos } = setup();
    const created = chaos.createRun(run({ id: 'chaos-1', dryRun: true }));
    expect(created).toEqual({
      id: 'chaos-1',
      service: 'api',
      mode: 'kill',
      kills: 3,
      intervalMs: 1000,
      dryRun: true,
      phase: 'running',
      message: 'terminating 3 instance(s) of api by kill, one every 1000 ms',
      createdBy: 'alice',
      startedAt: T0,
    });
    expect(chaos.getRun('chaos-1')).toEqual(created);
    clock.tick(5000);
    const done = chaos.finishRun('chaos-1', { phase: 'done', message: '3 done', requests: 1000, failed: 2 });
    expect(done).toEqual({
      ...created,
      phase: 'done',
      message: '3 done',
      finishedAt: '2026-01-01T00:00:05.000Z',
      requests: 1000,
      failed: 2,
    });
    expect(chaos.createRun(run({ service: undefined })).id).toMatch(/^chaos-[0-9a-f]{12}$/);
  });

  it('keeps a run without a service and without totals free of those fields', () => {
    const { chaos } = setup();
    const r = chaos.createRun(run({ service: undefined }));
    expect(r).not.toHaveProperty('service');
    const ended = chaos.finishRun(r.id, { phase: 'failed', message: 'stopped: boom' });
    expect(ended.phase).toBe('failed');
    expect(ended).not.toHaveProperty('requests');
    expect(ended).not.toHaveProperty('failed');
  });

  it('refuses to end a run twice, and names a run that does not exist', () => {
    const { chaos } = setup();
    const r = chaos.createRun(run());
    chaos.finishRun(r.id, { phase: 'done', message: 'ok' });
    const err = catchError(() => chaos.finishRun(r.id, { phase: 'failed', message: 'again' }));
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(/already ended \(done\)/);
    expect(() => chaos.getRun('chaos-nope')).toThrow(NotFoundError);
    expect(chaos.findRun('chaos-nope')).toBeUndefined();
    expect(() => chaos.finishRun('chaos-nope', { phase: 'done', message: '' })).toThrow(NotFoundError);
    expect(() => chaos.createRun(run({ id: r.id }))).toThrow(ConflictError);
  });

  it('lists runs newest first, at most limit', () => {
    const { clock, chaos } = setup();
    const ids = [1, 2, 3].map((i) => {
      clock.tick(1000);
      return chaos.createRun(run({ id: `chaos-${i}` })).id;
    });
    expect(chaos.listRuns().map((r) => r.id)).toEqual([...ids].reverse());
    expect(chaos.listRuns(2).map((r) => r.id)).toEqual(['chaos-3', 'chaos-2']);
  });

  it.each([
    [{ service: 'API' }, ['service']],
    [{ mode: 'nuke' as never }, ['mode']],
    [{ kills: 0 }, ['kills']],
    [{ kills: 1.5, intervalMs: -1 }, ['kills', 'intervalMs']],
    [{ dryRun: 'yes' as never }, ['dryRun']],
    [{ createdBy: '' }, ['createdBy']],
    [{ id: 'Bad Id' }, ['id']],
  ])('refuses a run with %j', (over, paths) => {
    const { chaos } = setup();
    expect(issuePaths(() => chaos.createRun(run(over)))).toEqual(paths);
  });

  it.each([
    [{ phase: 'running' as never, message: '' }, ['phase']],
    [{ phase: 'done' as const, message: '', requests: -1 }, ['requests']],
    [{ phase: 'done' as const, message: '', requests: 10, failed: 11 }, ['failed']],
  ])('refuses to end a run with %j', (end, paths) => {
    const { chaos } = setup();
    const r = chaos.createRun(run());
    expect(issuePaths(() => chaos.finishRun(r.id, end))).toEqual(paths);
    expect(chaos.getRun(r.id).phase).toBe('running');
  });
});

describe('chaos terminations', () => {
  it('records a termination and fills in its recovery', () => {
    const { chaos } = setup();
    const r = chaos.createRun(run({ id: 'chaos-1' }));
    const t = chaos.recordTermination(
      kill({ id: 'kill-1', runId: r.id, startedAt: '2026-01-01T00:00:01.000Z' }),
    );
    expect(t).toEqual({
      id: 'kill-1',
      runId: 'chaos-1',
      service: 'api',
      instance: 'api-r1-000001',
      mode: 'kill',
      dryRun: false,
      outcome: 'terminated',
      reason: 'kill api-r1-000001',
      startedAt: '2026-01-01T00:00:01.000Z',
    });
    expect(chaos.updateTermination('kill-1', { detectedAt: '2026-01-01T00:00:01.020Z' })).toEqual({
      ...t,
      detectedAt: '2026-01-01T00:00:01.020Z',
    });
    const recovered = chaos.updateTermination('kill-1', {
      recoveredAt: '2026-01-01T00:00:01.900Z',
      replacement: 'api-r1-000002',
      failedRequests: 0,
    });
    expect(recovered).toEqual({
      ...t,
      detectedAt: '2026-01-01T00:00:01.020Z',
      recoveredAt: '2026-01-01T00:00:01.900Z',
      replacement: 'api-r1-000002',
      failedRequests: 0,
    });
    expect(chaos.updateTermination('kill-1', {})).toEqual(recovered);
    expect(chaos.getTermination('kill-1')).toEqual(recovered);
  });

  it("stamps the store's clock when no start is given, and records held ones without an instance", () => {
    const { chaos } = setup();
    const held = chaos.recordTermination(
      kill({ instance: '', outcome: 'held', reason: 'held: a rollout is in progress' }),
    );
    expect(held).toMatchObject({ instance: '', outcome: 'held', startedAt: T0, dryRun: false });
    expect(held).not.toHaveProperty('runId');
    expect(held.id).toMatch(/^kill-[0-9a-f]{12}$/);
    const dry = chaos.recordTermination(kill({ dryRun: true, outcome: 'would-terminate' }));
    expect(dry).toMatchObject({ dryRun: true, outcome: 'would-terminate' });
  });

  it('filters by run, service and time, oldest first, at most limit', () => {
    const { clock, chaos } = setup();
    const r = chaos.createRun(run({ id: 'chaos-1' }));
    const ids: string[] = [];
    for (const [service, runId] of [
      ['api', undefined],
      ['web', undefined],
      ['api', r.id],
      ['api', r.id],
      ['web', r.id],
    ] as const) {
      clock.tick(1000);
      ids.push(chaos.recordTermination(kill({ service, ...(runId ? { runId } : {}) })).id);
    }
    const of = (filter: Parameters<typeof chaos.terminations>[0]) =>
      chaos.terminations(filter).map((t) => ids.indexOf(t.id));
    expect(of({})).toEqual([0, 1, 2, 3, 4]);
    expect(of({ runId: r.id })).toEqual([2, 3, 4]);
    expect(of({ service: 'api' })).toEqual([0, 2, 3]);
    expect(of({ service: 'web', runId: r.id })).toEqual([4]);
    expect(of({ since: '2026-01-01T00:00:03.000Z' })).toEqual([2, 3, 4]);
    expect(of({ limit: 2 })).toEqual([0, 1]);
    expect(of({ service: 'nope' })).toEqual([]);
  });

  it('orders terminations started at the same instant as they were recorded', () => {
    const { chaos } = setup();
    const a = chaos.recordTermination(kill({ id: 'kill-b' })).id;
    const b = chaos.recordTermination(kill({ id: 'kill-a' })).id;
    expect(chaos.terminations().map((t) => t.id)).toEqual([a, b]);
    expect(chaos.lastTermination('api')!.id).toBe(b);
  });

  it('finds the last kill of a service, dry runs included, held and skipped ones not', () => {
    const { clock, chaos } = setup();
    expect(chaos.lastTermination('api')).toBeUndefined();
    const first = chaos.recordTermination(kill());
    clock.tick(1000);
    chaos.recordTermination(kill({ service: 'web' }));
    clock.tick(1000);
    chaos.recordTermination(
      kill({ instance: '', outcome: 'skipped', reason: 'skipped: only 1 healthy instance' }),
    );
    expect(chaos.lastTermination('api')!.id).toBe(first.id);
    clock.tick(1000);
    const dry = chaos.recordTermination(kill({ dryRun: true, outcome: 'would-terminate' }));
    expect(chaos.lastTermination('api')!.id).toBe(dry.id);
  });

  it('names a run, or a termination, that does not exist', () => {
    const { chaos } = setup();
    expect(() => chaos.recordTermination(kill({ runId: 'chaos-nope' }))).toThrow(NotFoundError);
    expect(chaos.terminations()).toEqual([]);
    expect(() => chaos.updateTermination('kill-nope', {})).toThrow(NotFoundError);
    expect(chaos.findTermination('kill-nope')).toBeUndefined();
    chaos.recordTermination(kill({ id: 'kill-1' }));
    expect(() => chaos.recordTermination(kill({ id: 'kill-1' }))).toThrow(ConflictError);
  });

  it.each([
    [{ service: '' }, ['service']],
    [{ instance: '' }, ['instance']],
    [{ instance: 'x'.repeat(201), outcome: 'held' as const }, ['instance']],
    [{ mode: 'nuke' as never, outcome: 'boom' as never }, ['mode', 'outcome']],
    [{ dryRun: true }, ['outcome']],
    [{ outcome: 'would-terminate' as const }, ['outcome']],
    [{ reason: '' }, ['reason']],
    [{ startedAt: '2026-01-01' }, ['startedAt']],
    [{ startedAt: '2026-02-30T00:00:00.000Z' }, ['startedAt']],
    [{ runId: 'Bad Id' }, ['runId']],
  ])('refuses a termination with %j', (over, paths) => {
    const { chaos } = setup();
    expect(issuePaths(() => chaos.recordTermination(kill(over)))).toEqual(paths);
  });

  it('refuses a bad recovery patch or filter, naming the field and the form it wants', () => {
    const { chaos } = setup();
    const t = chaos.recordTermination(kill());
    expect(
      issuePaths(() =>
        chaos.updateTermination(t.id, {
          detectedAt: 'yesterday',
          recoveredAt: '2026-01-01T00:00:01Z',
          replacement: 'Not An Id',
          failedRequests: -2,
        }),
      ),
    ).toEqual(['detectedAt', 'recoveredAt', 'replacement', 'failedRequests']);
    const err = catchError(() => chaos.terminations({ since: 'last week' })) as ValidationError;
    expect(err.issues[0]!.path).toBe('since');
    expect(err.message).toMatch(/toISOString/);
    expect(chaos.getTermination(t.id)).toEqual(t);
  });

  it('creates both tables in a fresh database', () => {
    const file = fx.tempFile();
    fx.open(file).close();
    const tables = fx
      .raw(file)
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE name LIKE 'chaos%' ORDER BY name")
      .all()
      .map((r) => r.name);
    expect(tables).toEqual([
      'chaos_runs',
      'chaos_terminations',
      'chaos_terminations_by_run',
      'chaos_terminations_by_service',
    ]);
  });
});
