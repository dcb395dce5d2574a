import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { ROUTER_FROM_SOURCE, runTrafficRouterConformance } from './conformance.js';
import { createLocalRouter } from './local-router.js';
import type { RouterClient } from './router-client.js';
import { spawnRouter } from './router-spawn.js';

runTrafficRouterConformance('built-in, in process', async () => createLocalRouter());

const started: { client: RouterClient; dir: string }[] = [];
afterEach(async () => {
  for (const { client, dir } of started.splice(0)) {
    try {
      await client.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

runTrafficRouterConformance('built-in, router process', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-router-'));
  try {
    const client = await spawnRouter({ dir, ...ROUTER_FROM_SOURCE });
    started.push({ client, dir });
    return client;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
});
