/**
 * A real datastore as a stateful service: Debian's redis-server, baked from the Debian archive this
 * machine's apt sources name (as the quick start bakes), run as 3 identities (db-0 the primary,
 * db-1 and db-2 its replicas) with a volume each. Writes go to the primary throughout three
 * successive upgrades (each a change of the data tier's configuration, so a new release); every
 * write the server acknowledged before an upgrade must be readable after it, also when an
 * instance is killed in the middle of one. Loopback only; every process is ended by its PID.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient, readConnection, readServerFile } from '../../src/api/index.js';
import type { EventJson } from '../../src/api/index.js';
import { cli } from '../support/bakery.js';
import {
  endProcess,
  freePort,
  instanceBundles,
  spawnKiln,
  stopFleet,
  waitFor,
  type KilnProcess,
} from '../support/fleet.js';
import { Resp, startWriter, type Reply } from '../support/resp.js';

/** The machine's own apt sources, not the fixture archive: this is Debian's real redis-server. */
const REAL_ARCHIVE = { KILN_APT_ROOT: '' };

const IMAGE = `images:
  - name: redis
    from: debian:bookworm
    packages: [redis-server, busybox-static]
    users: [{ name: redis, uid: 999 }]
    user: redis
    volumes: [/data, /etc/kiln]
    entrypoint:
      - /bin/busybox
      - sh
      - -c
      - |
        primary="\${KILN_PEERS%%,*}"
        set -- /etc/kiln/redis.conf --port "$PORT"
        [ "$KILN_ORDINAL" = 0 ] || set -- "$@" --replicaof 127.0.0.1 "\${primary##*:}"
        exec redis-server "$@"
`;

/** The service, with the data tier's configuration of upgrade `gen` (maxmemory grows each time). */
function config(port: number, gen: number): string {
  return `${IMAGE}services:
  - name: db
    image: redis
    kind: stateful
    replicas: 3
    port: ${port}
    health: { tcp: true, interval: 200ms }
    ready:
      exec: [/bin/busybox, sh, -c, 'redis-cli -p "$PORT" info replication | grep -q -e role:master -e master_link_status:up']
      interval: 100ms
    volumes: [{ name: data, path: /data }]
    progressDeadline: 3m
    config:
      path: /etc/kiln
      files:
        redis.conf: |
          # generation ${gen}
          bind 127.0.0.1
          protected-mode no
          dir /data
          appendonly yes
          appendfsync always
          save ""
          repl-diskless-sync-delay 0
          maxmemory ${32 + gen}mb
`;
}

describe('a stateful service: redis-server from Debian, 3 identities', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    const errors: unknown[] = [];
    for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw new AggregateError(errors, 'cleaning up after the stateful test');
  });

  it('goes through three upgrades one identity at a time, highest first, and loses no acknowledged write, even with a kill mid-upgrade', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-stateful-'));
    const home = path.join(dir, '.kiln');
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const project = { dir, home } as Parameters<typeof spawnKiln>[0];
    const port = await freePort();
    const write = (gen: number) => writeFile(path.join(dir, 'kiln.yaml'), config(port, gen));
    const kiln = (args: string[]) => cli(dir, args, { KILN_HOME: home, ...REAL_ARCHIVE });
    await mkdir(home, { recursive: true });
    await write(1);

    const baked = await kiln(['bake']);
    expect(baked.code, baked.stderr).toBe(0);
    const processes: KilnProcess[] = [];
    cleanups.push(() => stopFleet(home));
    cleanups.push(async () => {
      for (const p of processes) await endProcess(p);
    });
    const server = spawnKiln(project, ['server'], REAL_ARCHIVE);
    processes.push(server);
    await waitFor('the control plane', async () => {
      const file = await readServerFile(home).catch(() => undefined);
      return file?.pid === server.pid ? file : undefined;
    });
    const api = new ApiClient(await readConnection(home, {}));
    const deployed = await kiln(['deploy', 'db', '--wait', '--timeout', '3m']);
    expect(deployed.code, deployed.stdout + deployed.stderr + server.output()).toBe(0);

    // Each identity listens on its own port, with its own volume, db-1 and db-2 replicating db-0.
    for (const k of [0, 1, 2]) {
      const role = await info(port + k, 'role');
      expect(role).toBe(k === 0 ? 'master' : 'slave');
    }
    const writer = startWriter(port, 'w');
    cleanups.push(() => writer.stop());
    const since = (await api.events(0, 'db')).at(-1)?.seq ?? 0;

    for (const gen of [2, 3, 4]) {
      await waitFor('some writes', async () => (writer.acked().length > 50 ? true : undefined));
      const before = writer.acked().length;
      await write(gen);
      const upgrade = kiln(['deploy', 'db', '--wait', '--timeout', '3m']);
      if (gen === 3) {
        // In the middle of the upgrade (db-2 replaced, db-1 or db-0 still to go), the primary
        // is killed with SIGKILL: the controller restarts db-0 on the same volume, and the upgrade
        // goes on.
        await waitFor(
          'db-2 to be replaced',
          async () =>
            (await api.events(since, 'db')).some(
              (e) => e.kind === 'instance.ready' && e.subject?.startsWith('db-2-r3-'),
            ) || undefined,
          { timeoutMs: 120_000 },
        );
        const primary = (await instanceBundles(home)).find((s) => s.labels['kiln.identity'] === 'db-0');
        expect(primary?.pid).toBeGreaterThan(0);
        process.kill(primary!.pid!, 'SIGKILL');
      }
      const done = await upgrade;
      expect(done.code, done.stdout + done.stderr + server.output().slice(-4000)).toBe(0);
      // Everything acknowledged before the upgrade (and during it) is on the primary afterwards.
      const acked = writer.acked().slice();
      expect(acked.length).toBeGreaterThan(before);
      expect(await missing(port, acked)).toEqual([]);
      for (const k of [0, 1, 2])
        expect(await configGet(port + k, 'maxmemory')).toBe(String((32 + gen) * 1024 * 1024));
    }
    // The chaos monkey's kills are healed the same way: the identity comes back on its volume.
    const chaos = await kiln(['chaos', 'run', 'db', '--kills', '2', '--interval', '1s', '--wait', '--json']);
    expect(chaos.code, chaos.stdout + chaos.stderr).toBe(0);
    await waitFor('every identity back', async () => {
      const live = (await api.instances()).filter((i) => i.service === 'db' && i.state === 'healthy');
      return live.length === 3 ? true : undefined;
    });
    await writer.stop();
    const acked = writer.acked().slice();
    expect(await missing(port, acked)).toEqual([]);
    // The replicas caught up with all of it too.
    for (const k of [1, 2]) {
      await waitFor(`db-${k} to catch up`, async () =>
        (await missing(port + k, acked)).length === 0 ? true : undefined,
      );
    }

    // The order, from the event log: per upgrade db-2, then db-1, then db-0 were replaced, and
    // each one only once its predecessor's replacement had passed its ready check.
    const events = await api.events(since, 'db', 10_000);
    for (const release of ['r2', 'r3', 'r4']) {
      const replaced = supersededOrder(events, release);
      // r3's db-0 may have been killed at its own turn: then its restart was its replacement.
      const expected =
        release === 'r3' && replaced.length === 2 ? ['db-2', 'db-1'] : ['db-2', 'db-1', 'db-0'];
      expect(replaced, `${release}: ${JSON.stringify(replaced)}`).toEqual(expected);
    }
    const running = (await api.instances()).filter((i) => i.service === 'db');
    expect(running.map((i) => `${i.id.slice(0, 7)} ${i.release} ${i.state}`).sort()).toEqual([
      'db-0-r4 r4 healthy',
      'db-1-r4 r4 healthy',
      'db-2-r4 r4 healthy',
    ]);
    expect(neverTwoDown(events), 'never two identities down on purpose').toBe(true);
    expect(events.filter((e) => e.kind === 'chaos.terminated').length, 'chaos kills').toBe(2);
    const killed = events.find((e) => e.kind === 'instance.exited' && e.subject?.startsWith('db-0-'));
    expect(killed, 'the killed primary was noticed').toBeDefined();
    const volumes = await readFile(
      path.join(home, 'volumes', 'db', 'db-0', 'data', 'appendonlydir', 'appendonly.aof.manifest'),
      'utf8',
    );
    expect(volumes).toContain('appendonly.aof');
    console.info(
      `stateful: ${acked.length} writes acknowledged through 3 upgrades and a kill, ${writer.failed()} refused while the primary was replaced, 0 lost`,
    );
  }, 600_000);
});

/** One field of `INFO replication`. */
async function info(port: number, field: string): Promise<string | undefined> {
  const text = await once(port, 'INFO', 'replication');
  return String(text)
    .split('\r\n')
    .find((l) => l.startsWith(`${field}:`))
    ?.slice(field.length + 1);
}

async function configGet(port: number, key: string): Promise<string | undefined> {
  const reply = await once(port, 'CONFIG', 'GET', key);
  return Array.isArray(reply) ? String(reply[1]) : undefined;
}

/** The keys of `keys` the server on `port` does not hold (MGET in chunks). */
async function missing(port: number, keys: readonly string[]): Promise<string[]> {
  const conn = await Resp.connect(port);
  try {
    const out: string[] = [];
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const values = await conn.command('MGET', ...chunk);
      if (!Array.isArray(values)) throw new Error(`MGET answered ${String(values)}`);
      chunk.forEach((k, j) => {
        if (values[j] !== `v-${k}`) out.push(k);
      });
    }
    return out;
  } finally {
    conn.close();
  }
}

async function once(port: number, ...args: string[]): Promise<Reply> {
  const conn = await Resp.connect(port);
  try {
    return await conn.command(...args);
  } finally {
    conn.close();
  }
}

/** Which identities a rollout to `release` replaced, in order (`db-2-r1-…` stopped as superseded). */
function supersededOrder(events: readonly EventJson[], release: string): string[] {
  const started = events.find((e) => e.kind === 'rollout.started' && e.message.includes(`to ${release}`));
  const done = events.find((e) => e.kind === 'rollout.succeeded' && e.seq > (started?.seq ?? 0));
  return events
    .filter((e) => e.seq > (started?.seq ?? 0) && e.seq < (done?.seq ?? Infinity))
    .filter((e) => e.kind === 'instance.stopped' && e.reason === 'superseded')
    .map((e) => /^(db-\d+)-/.exec(e.subject ?? '')![1]!);
}

/** No superseded stop happens while another identity's replacement has not passed its ready check. */
function neverTwoDown(events: readonly EventJson[]): boolean {
  const waiting = new Set<string>();
  for (const e of events) {
    const identity = /^(db-\d+)-/.exec(e.subject ?? '')?.[1];
    if (!identity) continue;
    if (e.kind === 'instance.stopped' && e.reason === 'superseded') {
      if (waiting.size > 0) return false;
      waiting.add(identity);
    }
    if (e.kind === 'instance.ready') waiting.delete(identity);
  }
  return true;
}
