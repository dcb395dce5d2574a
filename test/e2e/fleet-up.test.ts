import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { get, isAlive, isRouter, pageOf, SERVICE, useFleet, waitFor } from '../support/fleet.js';

const { fleet } = useFleet();

describe.sequential('kiln up', () => {
  it('bakes, serves every service at the URL it prints, and on Ctrl-C stops everything it started', async () => {
    // Given a project with one service of two replicas
    const f = await fleet({ replicas: 2 }, { bake: false });

    // When `kiln up` runs
    const up = f.spawnKiln(['up', f.project.dir]);
    const line = await waitFor(
      'the table line with the URL',
      async () => {
        if (up.child.exitCode !== null) throw new Error(`kiln up exited early:\n${up.output()}`);
        return up
          .output()
          .split('\n')
          .find((l) => l.startsWith(`${SERVICE} `) && l.includes('http://'));
      },
      { timeoutMs: 60_000 },
    );

    // Then it baked the image, and prints the service, its release, its healthy count and its URL
    expect(up.output()).toMatch(/^image web: sha256:[0-9a-f]{12} \(baked\)$/m);
    expect(line.split(/\s+/)).toEqual([SERVICE, 'r1', '2/2', f.url]);
    // And the URL answers with the page of r1
    expect(await get(f.url)).toEqual({ status: 200, body: pageOf('r1', 1) });
    // And what it started runs: the router, the instances, the control plane's API
    const routerPid = await f.routerPid();
    expect(routerPid).toBeDefined();
    expect(await isRouter(routerPid!)).toBe(true);
    const containers = (await f.containers()).filter((c) => c.state === 'running');
    expect(containers).toHaveLength(2);
    const api = await f.api();
    expect((await api.instances(SERVICE)).map((i) => i.id).sort()).toEqual(
      containers.map((c) => c.id).sort(),
    );

    // When it is interrupted (Ctrl-C)
    const interrupted = Date.now();
    process.kill(up.pid, 'SIGINT');

    // Then it exits 0, saying so
    expect(await up.exited, up.output()).toBe(0);
    console.log(`kiln up: Ctrl-C to exit took ${Date.now() - interrupted} ms`);
    expect(up.output()).toContain('kiln up: stopped; nothing is left running');
    // And nothing it started is left: not the router, not an instance, not the API
    expect(await isRouter(routerPid!)).toBe(false);
    for (const c of containers) expect(await isAlive(c.pid!), `instance ${c.id} (pid ${c.pid})`).toBe(false);
    expect(await f.containers()).toEqual([]);
    expect(await get(f.url)).toMatchObject({ error: 'ECONNREFUSED' });
    await expect(api.health()).rejects.toThrow(/cannot reach the kiln server/);
    expect(existsSync(path.join(f.project.home, 'server.json'))).toBe(false);
  }, 120_000);
});
