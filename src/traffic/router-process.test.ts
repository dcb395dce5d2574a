import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpBackends } from '../../test/support/http-backends.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors/index.js';
import { ROUTER_FROM_SOURCE } from './conformance.js';
import { isProcessAlive, readPidFile, stopPid } from './files.js';
import { RouterClient } from './router-client.js';
import { parseRouterArgs } from './router-process.js';
import { connectRouter, routerFiles, spawnRouter } from './router-spawn.js';
import { loadRouterState } from './state-file.js';

describe('router process', () => {
  const http = new HttpBackends();
  const dirs: string[] = [];
  const pids: number[] = [];

  afterEach(async () => {
    // Every router and helper process this test started, by the PID recorded for it.
    for (const dir of dirs) {
      const pid = await readPidFile(routerFiles(dir).pidFile);
      if (pid !== undefined && (await isProcessAlive(pid, 'router-main'))) pids.push(pid);
    }
    try {
      for (const pid of pids.splice(0)) await stopPid(pid);
    } finally {
      for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
      await http.closeAll();
    }
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-router-'));
    dirs.push(dir);
    return dir;
  }

  it('keeps serving after the process that spawned it is killed, and survives SIGHUP', async () => {
    const dir = await tempDir();
    const [a] = await http.start('a');
    // A stand-in controller: spawns the router, sets a route, reports, then waits to be killed.
    const script = join(dir, 'controller.ts');
    await writeFile(
      script,
      `import { spawnRouter } from ${JSON.stringify(new URL('./router-spawn.ts', import.meta.url).pathname)};
const router = await spawnRouter({ dir: ${JSON.stringify(join(dir, 'router'))}, entry: ${JSON.stringify(ROUTER_FROM_SOURCE.entry)}, nodeArgs: ${JSON.stringify(ROUTER_FROM_SOURCE.nodeArgs)} });
const { listenPort } = await router.setRoute({ service: 'web', listenPort: 0, backends: [{ id: 'a', host: '127.0.0.1', port: ${a!.port}, weight: 1 }] });
process.stdout.write(JSON.stringify({ listenPort }) + '\\n');
setInterval(() => undefined, 1000);
`,
    );
    dirs.push(join(dir, 'router'));
    const controller: ChildProcess = spawn(process.execPath, [...ROUTER_FROM_SOURCE.nodeArgs, script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    pids.push(controller.pid!);
    const line = await new Promise<string>((resolve, reject) => {
      controller.stdout!.once('data', (d: Buffer) => resolve(d.toString()));
      controller.once('exit', (code) => reject(new Error(`the controller exited with ${code}`)));
    });
    const { listenPort } = JSON.parse(line) as { listenPort: number };
    const exited = new Promise((resolve) => controller.once('exit', resolve));
    process.kill(controller.pid!, 'SIGKILL');
    await exited;

    const adopted = await connectRouter({ dir: join(dir, 'router') });
    process.kill(adopted.pid!, 'SIGHUP');
    const log = routerFiles(join(dir, 'router')).logFile;
    await expect.poll(async () => readFile(log, 'utf8'), { timeout: 10_000 }).toContain('SIGHUP ignored');
    expect((await http.request(listenPort)).body).toBe('a');
    expect((await adopted.routes()).map((r) => r.service)).toEqual(['web']);
    expect(await isProcessAlive(adopted.pid!, 'router-main')).toBe(true);
  });

  it('serves the same routes on the same ports after being killed and started again', async () => {
    const dir = await tempDir();
    const [a, b] = await http.start('a', 'b');
    const first = await spawnRouter({ dir, ...ROUTER_FROM_SOURCE });
    const route = { service: 'web', listenPort: 0, backends: [a!.backend(1), b!.backend(0)] };
    const { listenPort } = await first.setRoute(route);
    // SIGKILL: no chance to save anything on the way out.
    process.kill(first.pid!, 'SIGKILL');
    await expect.poll(() => isProcessAlive(first.pid!, 'router-main')).toBe(false);
    await expect(http.request(listenPort)).rejects.toThrow();
    expect(await loadRouterState(routerFiles(dir).stateFile)).toEqual([{ ...route, listenPort }]);

    const second = await spawnRouter({ dir, ...ROUTER_FROM_SOURCE });
    expect(second.pid).not.toBe(first.pid);
    expect(await second.routes()).toEqual([{ ...route, listenPort }]);
    expect((await http.request(listenPort)).body).toBe('a');
  });

  it('answers 401 without the right token, and /healthz without one', async () => {
    const dir = await tempDir();
    const router = await spawnRouter({ dir, ...ROUTER_FROM_SOURCE });
    const url = router.options.adminUrl;
    expect((await fetch(`${url}/v1/routes`)).status).toBe(401);
    expect((await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok', pid: router.pid });
    const stranger = new RouterClient({ adminUrl: url, token: 'not-the-token' });
    await expect(stranger.routes()).rejects.toBeInstanceOf(ValidationError);
    const token = (await readFile(routerFiles(dir).tokenFile, 'utf8')).trim();
    expect((await fetch(`${url}/v1/routes`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(
      200,
    );
  });

  it('maps admin errors back to kiln errors', async () => {
    const dir = await tempDir();
    const router = await spawnRouter({ dir, ...ROUTER_FROM_SOURCE });
    await expect(router.drain('nope', 'a')).rejects.toBeInstanceOf(NotFoundError);
    const [a] = await http.start('a');
    const { listenPort } = await router.setRoute({
      service: 'web',
      listenPort: 0,
      backends: [a!.backend(1)],
    });
    const taken = router.setRoute({ service: 'api', listenPort, backends: [] });
    await expect(taken).rejects.toBeInstanceOf(ConflictError);
    await expect(taken).rejects.toThrow(/port 127\.0\.0\.1:\d+ is taken/);
  });

  it('refuses a second router for the same directory, and reports a missing or dead one', async () => {
    const dir = await tempDir();
    await expect(connectRouter({ dir })).rejects.toBeInstanceOf(NotFoundError);
    const router = await spawnRouter({ dir, ...ROUTER_FROM_SOURCE });
    await expect(spawnRouter({ dir, ...ROUTER_FROM_SOURCE })).rejects.toBeInstanceOf(ConflictError);
    await router.stop();
    await expect(connectRouter({ dir })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('names every missing option of router-main', async () => {
    const err = await parseRouterArgs(['--admin-port', 'x'], {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues.map((i) => i.path)).toEqual([
      '--admin-port',
      '--state-file',
      '--token-file',
    ]);
  });
});
