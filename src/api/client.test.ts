import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConflictError,
  KilnError,
  NotFoundError,
  UnavailableError,
  ValidationError,
} from '../errors/index.js';
import { IN_MEMORY, openState } from '../state/index.js';
import { ApiClient } from './client.js';
import { FAKE_DIGEST, FAKE_TIME, FakeControlPlane } from './fake.js';
import { startApiServer } from './server.js';
import type { RolloutDetailJson, RolloutJson } from './types.js';

const undo: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of undo.splice(0).reverse()) await fn();
});

async function serve() {
  const store = openState(IN_MEMORY);
  undo.push(() => store.close());
  const plane = new FakeControlPlane();
  plane.seedService('web');
  const api = await startApiServer({ plane, tokens: store.tokens, version: '9.9.9', log: () => {} });
  undo.push(() => api.close());
  const client = (scopes: ('read' | 'deploy' | 'admin')[] = ['admin'], name = 'alice') =>
    new ApiClient({ url: api.url, token: store.tokens.create(name, scopes).secret });
  return { api, plane, client };
}

/** What `promise` rejects with; fails the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

describe('ApiClient', () => {
  it('calls every route and returns the JSON shapes', async () => {
    const { plane, client } = await serve();
    const api = client();
    plane.logText.set('web-1', 'one\ntwo\n');
    plane.eventLog = [
      { seq: 1, at: 'x', kind: 'release.created', service: 'web', reason: 'Deployed', message: 'r1' },
      { seq: 2, at: 'x', kind: 'release.created', service: 'api', reason: 'Deployed', message: 'r1' },
    ];
    expect(await api.health()).toEqual({ ok: true, version: '9.9.9', pid: process.pid });
    const deployed = await api.deploy('web', { reason: 'first' });
    expect(deployed.release).toMatchObject({
      service: 'web',
      name: 'r1',
      digest: FAKE_DIGEST,
      createdBy: 'alice',
    });
    expect(deployed.rollout).toMatchObject({ service: 'web', to: 'r1', phase: 'progressing', done: false });
    await api.deploy('web', { image: `sha256:${'f'.repeat(64)}`, strategy: 'bluegreen' });
    expect((await api.releases('web')).map((r) => [r.name, r.current])).toEqual([
      ['r2', true],
      ['r1', false],
    ]);
    const back = await api.rollback('web');
    expect(back.release.name).toBe('r1');
    expect((await api.rollout(back.rollout.id)).from).toBe('r2');
    expect((await api.status('web'))[0]?.release).toBe('r1');
    expect(await api.instances()).toEqual([]);
    expect(await api.logs('web-1', 1)).toBe('two\n');
    expect(await api.logs('web-1')).toBe('one\ntwo\n');
    expect((await api.events(0, 'web', 5)).map((e) => e.seq)).toEqual([1]);
    const counters = {
      backendId: 'web-1',
      requests: 3,
      responses: { '1xx': 0, '2xx': 2, '3xx': 0, '4xx': 0, '5xx': 1 },
      errors: 0,
      retries: 0,
      inFlight: 0,
      latencyMs: { buckets: [{ le: 5, count: 3 }], sum: 4.5, count: 3 },
    };
    plane.metricsLog.push({ service: 'web', ...counters }, { service: 'api', ...counters });
    expect(await api.metrics('web')).toEqual([{ service: 'web', ...counters }]);
    expect(await api.metrics()).toHaveLength(2);
    expect(plane.calls.map((c) => [c.method, ...c.args])).toEqual([
      ['deploy', 'web', { reason: 'first' }, 'alice'],
      ['deploy', 'web', { image: `sha256:${'f'.repeat(64)}`, strategy: 'bluegreen' }, 'alice'],
      ['releases', 'web'],
      ['rollback', 'web', {}, 'alice'],
      ['rollout', back.rollout.id],
      ['status', 'web'],
      ['instances'],
      ['logs', 'web-1', 1],
      ['logs', 'web-1'],
      ['events', 0, 'web', 5],
      ['metrics', 'web'],
      ['metrics'],
    ]);
  });

  it('round-trips rollout details, rollout commands and rings through the server', async () => {
    // Given a canary of web in progress, one look taken
    const { plane, client } = await serve();
    const api = client(['deploy'], 'ci');
    const detail: RolloutDetailJson = {
      id: 'rollout-4',
      service: 'web',
      from: 'r1',
      to: 'r2',
      strategy: 'canary',
      phase: 'analysing',
      done: false,
      createdAt: FAKE_TIME,
      updatedAt: FAKE_TIME,
      conditions: [],
      canary: {
        step: 1,
        steps: [{ weight: 10, analyseMs: 60_000 }],
        weight: 10,
        looks: [
          {
            step: 1,
            weight: 10,
            look: 1,
            looks: 4,
            at: FAKE_TIME,
            score: null,
            decision: 'continue',
            reason: 'too few samples',
            samples: { baseline: 3, canary: 0 },
            metrics: [],
            warnings: ['errors: no canary samples'],
          },
        ],
      },
    };
    plane.rolloutDetails.set('web', detail);
    const target = { service: 'web', image: 'app', digest: `sha256:${'b'.repeat(64)}` };
    const request = { base: 'base', baseDigest: `sha256:${'a'.repeat(64)}`, targets: [target] };
    // When the client reads, steps in and starts a ring
    expect(await api.serviceRollout('web')).toEqual(detail);
    expect(await api.controlRollout('web', 'pause')).toMatchObject({ id: 'rollout-4', phase: 'paused' });
    expect(await api.controlRollout('web', 'promote', { full: true })).toMatchObject({
      phase: 'progressing',
    });
    const ring = await api.startRing(request);
    expect(ring).toMatchObject({ id: 'ring-1', base: 'base', createdBy: 'ci', phase: 'running' });
    expect(ring.waves[0]?.services).toEqual([target]);
    expect(await api.rings(1)).toEqual([ring]);
    expect(await api.rings()).toEqual([ring]);
    // Then the plane received each with its arguments and the token's name
    expect(plane.calls.map((c) => [c.method, ...c.args])).toEqual([
      ['serviceRollout', 'web'],
      ['controlRollout', 'web', 'pause', {}, 'ci'],
      ['controlRollout', 'web', 'promote', { full: true }, 'ci'],
      ['startRing', request, 'ci'],
      ['rings', 1],
      ['rings'],
    ]);
    // And a finished rollout or an unknown service come back as the plane's errors
    await api.controlRollout('web', 'abort');
    await expect(api.controlRollout('web', 'resume')).rejects.toThrow(ConflictError);
    await expect(api.serviceRollout('api')).rejects.toThrow(NotFoundError);
  });

  it('turns error answers back into the same kiln errors', async () => {
    const { plane, client } = await serve();
    const api = client();
    const invalid = new ValidationError('kiln.yaml', [
      { path: 'services.web.port', message: 'taken', fix: 'pick another' },
    ]);
    plane.failNext('status', invalid);
    const got = await rejection(api.status());
    expect(got).toBeInstanceOf(ValidationError);
    expect((got as ValidationError).message).toBe(invalid.message);
    expect((got as ValidationError).issues).toEqual(invalid.issues);
    for (const [err, type] of [
      [new NotFoundError('no service api is declared'), NotFoundError],
      [new ConflictError('a rollout of web is in progress'), ConflictError],
      [new UnavailableError('the runtime is gone'), UnavailableError],
    ] as const) {
      plane.failNext('status', err);
      const e = await rejection(api.status());
      expect(e).toBeInstanceOf(type);
      expect((e as Error).message).toBe(err.message);
    }
    plane.failNext('status', new TypeError('boom'));
    const internal = await rejection(api.status());
    expect(internal).toBeInstanceOf(KilnError);
    expect((internal as KilnError).code).toBe('internal');
    expect((internal as KilnError).message).toMatch(/answered 500: the control plane failed/);
    const body = await rejection(api.deploy('web', { strategy: 'blue' as 'rolling' }));
    expect(body).toBeInstanceOf(ValidationError);
    expect((body as ValidationError).issues[0]?.path).toBe('strategy');
  });

  it('says how to fix a refused or under-scoped token', async () => {
    const { api, client } = await serve();
    const wrong = new ApiClient({ url: api.url, token: 'kiln_nope' });
    const refused = await rejection(wrong.status());
    expect(refused).toBeInstanceOf(ValidationError);
    expect((refused as Error).message).toContain('the token was refused');
    expect((refused as Error).message).toContain('.kiln/admin-token');
    expect((refused as Error).message).toContain('KILN_TOKEN');
    const reader = client(['read'], 'reader');
    const forbidden = await rejection(reader.deploy('web'));
    expect(forbidden).toBeInstanceOf(ValidationError);
    expect((forbidden as Error).message).toContain("needs 'deploy'");
    expect((forbidden as Error).message).toContain('KILN_TOKEN');
    // health needs a live token too, like every route
    expect(await rejection(wrong.health())).toBeInstanceOf(ValidationError);
    expect(await reader.health()).toMatchObject({ ok: true });
  });

  it('reports an unreachable server as UnavailableError naming the URL and `kiln server`', async () => {
    const { api } = await serve();
    const url = api.url;
    await api.close();
    const err = await rejection(new ApiClient({ url, token: 'kiln_x' }).status());
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain(`cannot reach the kiln server at ${url} (ECONNREFUSED)`);
    expect((err as Error).message).toContain('`kiln server`');
    expect((err as Error).message).toContain('`kiln up`');
  });

  it('gives up on a server that does not answer within timeoutMs', async () => {
    const silent = http.createServer(() => {
      // never answers
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    undo.push(
      () =>
        new Promise<void>((resolve) => {
          silent.closeAllConnections();
          silent.close(() => resolve());
        }),
    );
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const err = await rejection(new ApiClient({ url, token: 'kiln_x', timeoutMs: 50 }).status());
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain(`the kiln server at ${url} did not answer within 50 ms`);
  });
});

describe('ApiClient.waitForRollout', () => {
  it('polls until the rollout is done, telling each change once', async () => {
    const { plane, client } = await serve();
    const api = client();
    const { rollout } = await api.deploy('web');
    plane.script(rollout.id, [
      { message: 'starting r1' },
      { message: '1 of 2 instances of r1 are healthy' },
      { message: '1 of 2 instances of r1 are healthy' },
      { phase: 'succeeded', done: true, message: 'all 2 instances of r1 are healthy' },
    ]);
    const seen: RolloutJson[] = [];
    const final = await api.waitForRollout(rollout.id, {
      pollMs: 1,
      timeoutMs: 60_000,
      onUpdate: (r) => seen.push(r),
    });
    expect(final).toMatchObject({ id: rollout.id, phase: 'succeeded', done: true });
    expect(seen.map((r) => r.message)).toEqual([
      'starting r1',
      '1 of 2 instances of r1 are healthy',
      'all 2 instances of r1 are healthy',
    ]);
    expect(plane.calls.filter((c) => c.method === 'rollout')).toHaveLength(4);
  });

  it('asks again while the server is briefly unavailable, and stops at other errors', async () => {
    const { plane, client } = await serve();
    const api = client();
    const { rollout } = await api.deploy('web');
    plane.script(rollout.id, [{}, { phase: 'rolled-back', done: true }]);
    plane.failNext('rollout', new UnavailableError('restarting'));
    expect((await api.waitForRollout(rollout.id, { pollMs: 1 })).phase).toBe('rolled-back');
    plane.failNext('rollout', new NotFoundError('no rollout'));
    await expect(api.waitForRollout(rollout.id, { pollMs: 1 })).rejects.toThrow(NotFoundError);
  });

  it('throws a runtime KilnError saying where the rollout stood at the deadline', async () => {
    const { client } = await serve();
    const api = client();
    const { rollout } = await api.deploy('web');
    const err = await rejection(api.waitForRollout(rollout.id, { pollMs: 1, timeoutMs: 20 }));
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe('runtime');
    expect((err as Error).message).toContain(`rollout ${rollout.id} is not done`);
    expect((err as Error).message).toContain('progressing (starting r1)');
    expect((err as Error).message).toContain('kiln status web');
  });
});
