import { afterEach, describe, expect, it } from 'vitest';
import { KilnError } from '../errors/index.js';
import { FakeRuntimeDriver, type InstanceSpec } from '../runtime/index.js';
import { describeCycle, DevLoop } from './loop.js';

const DIGEST = `sha256:${'b'.repeat(64)}` as const;

/**
 * A loop over the fake driver. An instance is healthy once `healthyAfter` probes of it have run
 * (1 unless set for its id); `probe` lets a test act between probes (crash it, change a file).
 */
function setUp(
  options: { healthyAfter?: (id: string) => number; probe?: (id: string, n: number) => void } = {},
) {
  const driver = new FakeRuntimeDriver();
  const lines: string[] = [];
  let n = 0;
  let clock = 0;
  const probes = new Map<string, number>();
  const loop = new DevLoop({
    driver,
    log: (l) => lines.push(l),
    graceMs: 1000,
    healthTimeoutMs: 500,
    probeEveryMs: 20,
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
      await Promise.resolve();
    },
    spec: (): InstanceSpec => ({
      id: `dev-web-s1-${++n}`,
      service: 'web',
      release: 'dev',
      digest: DIGEST,
      args: ['httpd'],
      env: { KILN_DEV: '1' },
      port: 18080,
      labels: { 'kiln.dev': 'true' },
    }),
    healthy: async (id) => {
      const count = (probes.get(id) ?? 0) + 1;
      probes.set(id, count);
      options.probe?.(id, count);
      return count >= (options.healthyAfter?.(id) ?? 1);
    },
  });
  return { driver, loop, lines, advance: (ms: number) => (clock += ms) };
}

let open: DevLoop[] = [];
afterEach(async () => {
  for (const l of open) await l.close();
  open = [];
});

describe('DevLoop', () => {
  it('starts the instance, then on each change stops it and starts a new one, in that order', async () => {
    const { driver, loop, lines } = setUp();
    open.push(loop);

    expect(await loop.change({ paths: [], firstAt: 0 })).toBe('healthy');
    expect(await loop.change({ paths: ['index.html'], firstAt: 0 })).toBe('healthy');

    expect(driver.calls).toEqual(['start dev-web-s1-1', 'stop dev-web-s1-1', 'start dev-web-s1-2']);
    expect(lines).toEqual([
      'started dev-web-s1-1, healthy in 0 ms',
      'index.html changed: restarted as dev-web-s1-2, healthy in 0 ms',
    ]);
    await loop.close();
    expect(driver.calls.at(-1)).toBe('stop dev-web-s1-2');
    expect(driver.host.ids()).toEqual([]);
  });

  it('folds the changes that arrive during a restart into one more restart', async () => {
    const { driver, loop } = setUp({ healthyAfter: (id) => (id.endsWith('-1') ? 3 : 1) });
    open.push(loop);
    const first = loop.change({ paths: [], firstAt: 0 });
    const a = loop.change({ paths: ['a.js'], firstAt: 5 });
    const b = loop.change({ paths: ['b.js', 'a.js'], firstAt: 7 });

    // The first start gives up waiting as soon as a newer change is pending.
    expect(await first).toBe('superseded');
    expect(await a).toBe('healthy');
    expect(await b).toBe('healthy');
    expect(driver.calls).toEqual(['start dev-web-s1-1', 'stop dev-web-s1-1', 'start dev-web-s1-2']);
    expect(loop.cycles.map((c) => [c.n, c.paths, c.outcome])).toEqual([
      [1, [], 'superseded'],
      [2, ['a.js', 'b.js'], 'healthy'],
    ]);
    expect(loop.cycles[1]!.ms).toBe(-5);
  });

  it('reports an instance that exits before it is healthy, and restarts it on the next change', async () => {
    const holder: { driver?: FakeRuntimeDriver } = {};
    const { driver, loop, lines } = setUp({
      healthyAfter: () => 2,
      probe: (id, n) => {
        if (id.endsWith('-2') && n === 1) holder.driver!.crash(id, 3);
      },
    });
    holder.driver = driver;
    open.push(loop);
    await loop.change({ paths: [], firstAt: 0 });

    // The first start took two probes (20 ms of the fake clock); the change comes then.
    expect(await loop.change({ paths: ['server.js'], firstAt: 20 })).toBe('exited');
    expect(lines[1]).toBe(
      'server.js changed: restarted as dev-web-s1-2, but it exited with code 3 before it was healthy (after 20 ms); it restarts on the next change',
    );

    expect(await loop.change({ paths: ['server.js'], firstAt: 100 })).toBe('healthy');
    expect(driver.calls.slice(-2)).toEqual(['stop dev-web-s1-2', 'start dev-web-s1-3']);
  });

  it('says so when an instance is not healthy within the timeout, and when it cannot start', async () => {
    const { driver, loop, lines } = setUp({ healthyAfter: () => 1000 });
    open.push(loop);
    expect(await loop.change({ paths: [], firstAt: 0 })).toBe('unhealthy');
    expect(lines[0]).toBe(
      'started dev-web-s1-1, but it was not healthy within 500 ms; it restarts on the next change',
    );

    driver.failNextStart(new KilnError('runtime', 'crun: no such file'));
    expect(await loop.change({ paths: ['x'], firstAt: 0 })).toBe('failed');
    expect(lines[1]).toBe(
      'x changed: dev-web-s1-2 could not start: crun: no such file; it restarts on the next change',
    );
  });

  it('tells of a healthy instance that exits later, and stops nothing more once closed', async () => {
    const { driver, loop, lines } = setUp();
    await loop.change({ paths: [], firstAt: 0 });
    driver.crash('dev-web-s1-1', 137);
    expect(lines.at(-1)).toBe('dev-web-s1-1 exited with code 137; it restarts on the next change');

    await loop.close();
    expect(await loop.change({ paths: ['late.js'], firstAt: 0 })).toBe('closed');
    expect(driver.calls).toEqual(['start dev-web-s1-1', 'stop dev-web-s1-1']);
  });
});

describe('describeCycle', () => {
  it('names at most three changed paths', () => {
    expect(
      describeCycle(
        { n: 4, id: 'dev-web-s1-4', paths: ['a', 'b', 'c', 'd', 'e'], outcome: 'healthy', ms: 312.4 },
        1000,
      ),
    ).toBe('a, b, c and 2 more changed: restarted as dev-web-s1-4, healthy in 312 ms');
  });
});
