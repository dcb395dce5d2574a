import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpBackends } from '../../test/support/http-backends.js';
import { ROUTER_FROM_SOURCE } from './conformance.js';
import { isProcessAlive, readPidFile, stopPid } from './files.js';
import { routerFiles } from './router-spawn.js';
import { SupervisedRouter } from './supervised.js';

describe('SupervisedRouter', () => {
  const http = new HttpBackends();
  const dirs: string[] = [];
  const routers: SupervisedRouter[] = [];

  afterEach(async () => {
    for (const r of routers.splice(0)) await r.close();
    try {
      for (const dir of dirs) {
        const pid = await readPidFile(routerFiles(dir).pidFile);
        if (pid !== undefined && (await isProcessAlive(pid, 'router-main'))) await stopPid(pid);
      }
    } finally {
      for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
      await http.closeAll();
    }
  });

  async function until(check: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('starts the router again with its last routes when its process is killed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-supervised-'));
    dirs.push(dir);
    const lines: string[] = [];
    const router = await SupervisedRouter.start({
      dir,
      ...ROUTER_FROM_SOURCE,
      checkEveryMs: 50,
      log: (l) => lines.push(l),
    });
    routers.push(router);
    const backend = await http.startOne('a');
    const { listenPort } = await router.setRoute({
      service: 'web',
      listenPort: 0,
      backends: [backend.backend(1)],
    });
    expect((await http.request(listenPort)).status).toBe(200);
    const first = router.pid!;

    process.kill(first, 'SIGKILL');
    await until(
      async () => router.pid !== first && (await http.request(listenPort)).status === 200,
      'a new router',
    );

    expect(router.restarts).toBe(1);
    expect(await isProcessAlive(first)).toBe(false);
    expect(
      (await router.routes()).map((r) => [r.service, r.listenPort, r.backends.map((b) => b.id)]),
    ).toEqual([['web', listenPort, ['a']]]);
    expect(lines.join('\n')).toMatch(new RegExp(`router \\(pid ${first}\\) was gone; started it again`));
  });

  it('adopts a router that already runs instead of starting another', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-supervised-'));
    dirs.push(dir);
    const one = await SupervisedRouter.start({ dir, ...ROUTER_FROM_SOURCE });
    routers.push(one);
    const two = await SupervisedRouter.start({ dir, ...ROUTER_FROM_SOURCE });
    routers.push(two);
    expect(two.pid).toBe(one.pid);
    await two.check();
    expect(two.restarts).toBe(0);
  });
});
