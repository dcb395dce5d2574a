/**
 * The one conformance suite every {@link RuntimeDriver} runs (as hono's routers share
 * `runTest({ newRouter })`): `fake.test.ts` and `local.test.ts` call
 * {@link runRuntimeDriverConformance}. It tests only what every driver can honour; real sockets
 * are checked only when the driver says its instances really listen (`realNetwork`).
 *
 * The instances run the workloads below: POSIX shell scripts for an image with `/bin/sh` and
 * busybox `httpd` serving `/www`. {@link conformanceProgram} is how the fake models them.
 */
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterEach, describe, expect, it } from 'vitest';

import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../errors/index.js';
import type { Digest } from '../oci/index.js';
import type { InstanceSpec, InstanceStatus, RuntimeDriver } from './driver.js';
import type { FakeProgram } from './fake.js';

/** Prints a greeting from its environment, then serves `/www` on `127.0.0.1:$PORT`; exits 0 on SIGTERM. */
export const SERVE_SCRIPT =
  'echo "hello $GREETING on $PORT"; echo second line; trap "exit 0" TERM; httpd -f -p 127.0.0.1:$PORT -h /www & wait';
/** Serves like {@link SERVE_SCRIPT} but ignores SIGTERM, so only SIGKILL ends it. */
export const IGNORE_TERM_SCRIPT = 'trap "" TERM; echo ignoring; httpd -f -p 127.0.0.1:$PORT -h /www & wait';
/** Prints `bye` and exits 7 at once. */
export const EXIT_SCRIPT = 'echo bye; exit 7';
/** What the suite runs through `exec`: output on both streams and exit code 3. */
export const EXEC_SCRIPT = 'echo "out $GREETING"; echo err >&2; exit 3';

/** What the conformance workloads do, as a {@link FakeProgram}: give it to `FakeHost`'s `program`. */
export function conformanceProgram(spec: InstanceSpec): FakeProgram {
  const script = spec.args[2];
  const greeting = spec.env.GREETING ?? '';
  const output =
    script === SERVE_SCRIPT
      ? `hello ${greeting} on ${spec.port}\nsecond line\n`
      : script === IGNORE_TERM_SCRIPT
        ? 'ignoring\n'
        : script === EXIT_SCRIPT
          ? 'bye\n'
          : '';
  return {
    output,
    ignoresSigterm: script === IGNORE_TERM_SCRIPT,
    ...(script === EXIT_SCRIPT ? { exitCode: 7 } : {}),
    exec: (args) =>
      args[2] === EXEC_SCRIPT
        ? { exitCode: 3, stdout: `out ${greeting}\n`, stderr: 'err\n' }
        : { exitCode: 127, stdout: '', stderr: 'not modelled by conformanceProgram\n' },
  };
}

/** What a driver under test can honour, and the image its instances run. */
export interface RuntimeDriverConformanceOptions {
  /** An image with `/bin/sh` and busybox `httpd`, and `/www/index.html` holding `indexBody`. */
  readonly digest: Digest;
  /** Whether instances really listen on their port; then the suite fetches from them. */
  readonly realNetwork: boolean;
  /**
   * Where the HTTP test's instance listens, inside it: an engine that reaches it from outside
   * its network namespace (a swarm node's published port) needs `0.0.0.0`. @default '127.0.0.1'
   */
  readonly listen?: string;
  /** The body of `GET /` when `realNetwork`. @default 'kiln conformance\n' */
  readonly indexBody?: string;
  /** How long to wait for something asynchronous to show (a log line, a socket). @default 15_000 */
  readonly patienceMs?: number;
}

/**
 * Defines the conformance tests for one driver. `makeDriver` must return a NEW driver over the
 * same state every time (for `local`: the same `stateDir`), so that a second call models a
 * control-plane restart. After each test a fresh driver stops whatever is left.
 *
 * @example
 * const host = new FakeHost({ program: conformanceProgram });
 * runRuntimeDriverConformance('fake', () => new FakeRuntimeDriver({ host }), { digest, realNetwork: false });
 */
export function runRuntimeDriverConformance(
  name: string,
  makeDriver: () => RuntimeDriver | Promise<RuntimeDriver>,
  options: RuntimeDriverConformanceOptions,
): void {
  const patienceMs = options.patienceMs ?? 15_000;
  const opened: RuntimeDriver[] = [];
  let serial = 0;

  const driver = async (): Promise<RuntimeDriver> => {
    const made = await makeDriver();
    opened.push(made);
    return made;
  };
  const specFor = async (script: string, extra: Partial<InstanceSpec> = {}): Promise<InstanceSpec> => ({
    id: `conf-${++serial}`,
    service: 'web',
    release: 'r1',
    digest: options.digest,
    args: ['/bin/sh', '-c', script],
    env: { GREETING: 'conformance' },
    port: options.realNetwork ? await freePort() : 20_000 + serial,
    labels: { 'kiln.dev/test': name },
    ...extra,
  });
  const eventually = async <T>(what: string, probe: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + patienceMs;
    for (;;) {
      const value = await probe().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`${what} did not happen within ${patienceMs} ms`);
      await sleep(20);
    }
  };

  describe(`RuntimeDriver conformance: ${name}`, () => {
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((d) => d.close()));
      const sweeper = await makeDriver();
      try {
        for (const left of await sweeper.list()) await sweeper.stop(left.id, { graceMs: 0 });
      } finally {
        await sweeper.close();
      }
    });

    it('starts an instance that list and inspect report as running', async () => {
      const d = await driver();
      const spec = await specFor(SERVE_SCRIPT);
      const started = await d.start(spec);
      const expected = {
        id: spec.id,
        service: 'web',
        release: 'r1',
        digest: options.digest,
        port: spec.port,
        state: 'running',
        labels: { 'kiln.dev/test': name },
      };
      expect(started).toMatchObject(expected);
      expect(started.pid).toBeGreaterThan(0);
      expect(new Date(started.startedAt ?? '').toISOString()).toBe(started.startedAt);
      expect(await d.inspect(spec.id)).toEqual(started);
      expect(await d.list()).toEqual([started]);
    });

    it('rejects a bad spec with every issue at once, starting nothing', async () => {
      const d = await driver();
      const bad = { ...(await specFor(SERVE_SCRIPT)), id: '../escape', port: 0, args: [] };
      const error: unknown = await d.start(bad).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).issues.map((i) => i.path).sort()).toEqual(['args', 'id', 'port']);
      expect(await d.list()).toEqual([]);
    });

    it('refuses to start an id that exists, even an exited one, with a ConflictError', async () => {
      const d = await driver();
      const spec = await specFor(SERVE_SCRIPT);
      await d.start(spec);
      await expect(d.start(spec)).rejects.toBeInstanceOf(ConflictError);
      await d.kill(spec.id);
      await expect(d.start(spec)).rejects.toBeInstanceOf(ConflictError);
      expect((await d.list()).map((s) => s.id)).toEqual([spec.id]);
    });

    it('stops an instance, removing it; stop is idempotent and tells no exit listener', async () => {
      const d = await driver();
      const heard: InstanceStatus[] = [];
      d.onExit((status) => heard.push(status));
      const spec = await specFor(SERVE_SCRIPT);
      await d.start(spec);
      await d.stop(spec.id);
      expect(await d.inspect(spec.id)).toBeUndefined();
      expect(await d.list()).toEqual([]);
      await d.stop(spec.id);
      await d.stop('never-started');
      await expect(d.stop('../escape')).rejects.toBeInstanceOf(ValidationError);
      expect(heard).toEqual([]);
    });

    it('finishes a start before a stop issued during it removes the instance; a second start conflicts', async () => {
      const d = await driver();
      const spec = await specFor(SERVE_SCRIPT);
      const starting = d.start(spec);
      const again = d.start(spec);
      const stopping = d.stop(spec.id, { graceMs: 0 });
      await expect(again).rejects.toBeInstanceOf(ConflictError);
      await expect(starting).resolves.toMatchObject({ id: spec.id, state: 'running' });
      await stopping;
      expect(await d.list()).toEqual([]);
    });

    it('stops a process that ignores SIGTERM once the grace period ends', async () => {
      const d = await driver();
      const spec = await specFor(IGNORE_TERM_SCRIPT);
      await d.start(spec);
      await eventually('the trap', async () =>
        (await d.logs(spec.id)).includes('ignoring') ? true : undefined,
      );
      await d.kill(spec.id, 'SIGTERM');
      expect((await d.inspect(spec.id))?.state).toBe('running');
      await d.stop(spec.id, { graceMs: 100 });
      expect(await d.inspect(spec.id)).toBeUndefined();
    });

    it('reports a kill once to each exit listener and then shows the instance exited', async () => {
      const d = await driver();
      const heard: InstanceStatus[] = [];
      const unheard: InstanceStatus[] = [];
      d.onExit((status) => heard.push(status));
      d.onExit((status) => unheard.push(status))();
      const spec = await specFor(SERVE_SCRIPT);
      await d.start(spec);
      await d.kill(spec.id, 'SIGKILL');
      const after = await d.inspect(spec.id);
      expect(after).toMatchObject({ id: spec.id, state: 'exited' });
      expect(after?.pid).toBeUndefined();
      await d.kill(spec.id);
      await sleep(200);
      expect(heard).toHaveLength(1);
      expect(heard[0]).toMatchObject({ id: spec.id, service: 'web', release: 'r1', state: 'exited' });
      // 137 when the driver saw the exit status; a host init may reap the process first.
      expect([137, undefined]).toContain(heard[0]!.exitCode);
      expect(unheard).toEqual([]);
      expect((await d.list()).map((s) => [s.id, s.state])).toEqual([[spec.id, 'exited']]);
    });

    it('reports a process that exits by itself, with its exit code and output', async () => {
      const d = await driver();
      const exits = new Promise<InstanceStatus>((resolve) => d.onExit(resolve));
      const spec = await specFor(EXIT_SCRIPT);
      await d.start(spec);
      const exited = await exits;
      expect(exited).toMatchObject({ id: spec.id, state: 'exited' });
      expect([7, undefined]).toContain(exited.exitCode);
      expect((await d.inspect(spec.id))?.state).toBe('exited');
      expect(await d.logs(spec.id)).toBe('bye\n');
      await expect(d.exec(spec.id, ['/bin/sh', '-c', EXEC_SCRIPT])).rejects.toBeInstanceOf(ConflictError);
    });

    it('gives the process its env and PORT, and keeps what it prints in its logs', async () => {
      const d = await driver();
      const spec = await specFor(SERVE_SCRIPT);
      await d.start(spec);
      const expected = `hello conformance on ${spec.port}\nsecond line\n`;
      await eventually('the greeting', async () => ((await d.logs(spec.id)) === expected ? true : undefined));
      expect(await d.logs(spec.id, { tailLines: 1 })).toBe('second line\n');
      expect(await d.logs(spec.id, { tailLines: 0 })).toBe('');
    });

    it('runs a command inside a running instance, returning its exit code and output', async () => {
      const d = await driver();
      const spec = await specFor(SERVE_SCRIPT);
      await d.start(spec);
      expect(await d.exec(spec.id, ['/bin/sh', '-c', EXEC_SCRIPT])).toEqual({
        exitCode: 3,
        stdout: 'out conformance\n',
        stderr: 'err\n',
      });
    });

    it('answers NotFoundError or undefined for ids it does not know', async () => {
      const d = await driver();
      expect(await d.inspect('no-such-instance')).toBeUndefined();
      await expect(d.kill('no-such-instance')).rejects.toBeInstanceOf(NotFoundError);
      await expect(d.logs('no-such-instance')).rejects.toBeInstanceOf(NotFoundError);
      await expect(d.exec('no-such-instance', ['true'])).rejects.toBeInstanceOf(NotFoundError);
    });

    it('leaves instances running on close; a new driver adopts, kills and stops them', async () => {
      const first = await driver();
      const spec = await specFor(SERVE_SCRIPT);
      const started = await first.start(spec);
      await first.close();
      await expect(first.start(await specFor(SERVE_SCRIPT))).rejects.toBeInstanceOf(UnavailableError);

      const second = await driver();
      expect(await second.list()).toEqual([started]);
      const exits = new Promise<InstanceStatus>((resolve) => second.onExit(resolve));
      await second.kill(spec.id);
      expect(await exits).toMatchObject({ id: spec.id, state: 'exited' });
      await second.stop(spec.id);
      expect(await second.list()).toEqual([]);
    });

    if (!options.realNetwork) return;

    it('serves HTTP at its port, on the address it reports (127.0.0.1 unless its node says)', async () => {
      const d = await driver();
      const spec = await specFor(SERVE_SCRIPT.replace('127.0.0.1', options.listen ?? '127.0.0.1'));
      await d.start(spec);
      const body = await eventually('an HTTP answer', async () => {
        // An engine may place the instance, and report where, only once it runs.
        const host = (await d.inspect(spec.id))?.host ?? '127.0.0.1';
        const response = await fetch(`http://${host}:${spec.port}/`).catch(() => undefined);
        if (!response) return undefined;
        return response.ok ? response.text() : undefined;
      });
      expect(body).toBe(options.indexBody ?? 'kiln conformance\n');
    });
  });
}

/** A TCP port free on 127.0.0.1 right now (the kernel's pick for port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no TCP port was assigned');
  return address.port;
}
