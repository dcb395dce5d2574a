import { describe, expect, it } from 'vitest';

import { KilnError, NotFoundError, UnavailableError, ValidationError } from '../errors/index.js';
import { conformanceProgram, runRuntimeDriverConformance } from './conformance.js';
import type { InstanceSpec, InstanceStatus } from './driver.js';
import { FAKE_FIRST_PID, FakeHost, FakeRuntimeDriver } from './fake.js';

const DIGEST = `sha256:${'ab'.repeat(32)}` as const;

const sharedHost = new FakeHost({ program: conformanceProgram });
runRuntimeDriverConformance('fake', () => new FakeRuntimeDriver({ host: sharedHost }), {
  digest: DIGEST,
  realNetwork: false,
});

const spec = (id: string, extra: Partial<InstanceSpec> = {}): InstanceSpec => ({
  id,
  service: 'web',
  release: 'r1',
  digest: DIGEST,
  args: ['server'],
  env: {},
  port: 8080,
  ...extra,
});

describe('FakeRuntimeDriver', () => {
  it('is deterministic: pids count up and startedAt comes from the clock hook', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const driver = new FakeRuntimeDriver({ host: new FakeHost({ now: () => new Date(now) }) });
    const a = await driver.start(spec('a'));
    now += 1_500;
    const b = await driver.start(spec('b', { labels: { tier: 'front' } }));
    expect([a.pid, b.pid]).toEqual([FAKE_FIRST_PID, FAKE_FIRST_PID + 1]);
    expect([a.startedAt, b.startedAt]).toEqual(['2030-01-01T00:00:00.000Z', '2030-01-01T00:00:01.500Z']);
    expect(b.labels).toEqual({ tier: 'front' });
  });

  it('fails the next starts with the injected errors, in order, then starts again', async () => {
    const driver = new FakeRuntimeDriver();
    driver.failNextStart(new UnavailableError('disk full'));
    driver.failNextStart();
    await expect(driver.start(spec('a'))).rejects.toThrow('disk full');
    const second: unknown = await driver.start(spec('a')).catch((err: unknown) => err);
    expect(second).toBeInstanceOf(KilnError);
    expect((second as KilnError).code).toBe('runtime');
    expect((await driver.start(spec('a'))).state).toBe('running');
  });

  it('validates before it consumes an injected failure', async () => {
    const driver = new FakeRuntimeDriver();
    driver.failNextStart(new UnavailableError('disk full'));
    await expect(driver.start(spec('a', { port: 70_000 }))).rejects.toBeInstanceOf(ValidationError);
    await expect(driver.start(spec('a'))).rejects.toThrow('disk full');
  });

  it('crashes an instance on demand, telling every open driver on the host once', async () => {
    const host = new FakeHost();
    const one = new FakeRuntimeDriver({ host });
    const two = new FakeRuntimeDriver({ host });
    const closed = new FakeRuntimeDriver({ host });
    const heard: string[] = [];
    one.onExit((s) => heard.push(`one ${s.id} ${s.exitCode}`));
    two.onExit((s) => heard.push(`two ${s.id} ${s.exitCode}`));
    closed.onExit((s) => heard.push(`closed ${s.id}`));
    await closed.close();
    await one.start(spec('a'));
    one.crash('a', 3);
    one.crash('a', 4);
    expect(heard).toEqual(['one a 3', 'two a 3']);
    expect(await two.inspect('a')).toMatchObject({ state: 'exited', exitCode: 3 });
    expect(() => one.crash('missing')).toThrow(NotFoundError);
  });

  it('keeps telling the other listeners when one throws', async () => {
    const driver = new FakeRuntimeDriver();
    const heard: InstanceStatus[] = [];
    driver.onExit(() => {
      throw new Error('listener bug');
    });
    driver.onExit((s) => heard.push(s));
    await driver.start(spec('a'));
    driver.crash('a');
    expect(heard.map((s) => s.id)).toEqual(['a']);
  });

  it('records every call in order', async () => {
    const driver = new FakeRuntimeDriver();
    await driver.start(spec('a'));
    await driver.list();
    await driver.kill('a');
    await driver.stop('a');
    expect(driver.calls).toEqual(['start a', 'list', 'kill a', 'stop a']);
  });

  it('lets a test write to an instance log as its process would', async () => {
    const host = new FakeHost();
    const driver = new FakeRuntimeDriver({ host });
    await driver.start(spec('a'));
    host.write('a', 'one\ntwo\n');
    expect(await driver.logs('a')).toBe('one\ntwo\n');
    expect(await driver.logs('a', { tailLines: 1 })).toBe('two\n');
    await expect(driver.logs('a', { tailLines: -1 })).rejects.toBeInstanceOf(ValidationError);
  });

  it('does not report a self-exit for an instance stopped before it happened', async () => {
    const driver = new FakeRuntimeDriver({ host: new FakeHost({ program: () => ({ exitCode: 1 }) }) });
    const heard: string[] = [];
    driver.onExit((s) => heard.push(s.id));
    // Both calls run before any microtask, so the stop lands before the scheduled exit.
    const starting = driver.start(spec('quick'));
    const stopping = driver.stop('quick');
    await Promise.all([starting, stopping]);
    await driver.start(spec('slow'));
    await Promise.resolve();
    expect(heard).toEqual(['slow']);
  });

  it('checks PORT in env against port', async () => {
    const driver = new FakeRuntimeDriver();
    await expect(driver.start(spec('a', { env: { PORT: '1' } }))).rejects.toThrow(
      /env\.PORT.*leave PORT out/s,
    );
    await expect(driver.start(spec('a', { env: { PORT: '8080' } }))).resolves.toMatchObject({
      state: 'running',
    });
  });
});
