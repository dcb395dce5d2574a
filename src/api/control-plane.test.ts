import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError } from '../errors/index.js';
import { writeServerFile } from './connect.js';
import { startControlPlane } from './control-plane.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('startControlPlane', () => {
  it('refuses to start beside a control plane that runs for the same project', async () => {
    const home = await mkdtemp(path.join(tmpdir(), 'kiln-cp-'));
    dirs.push(home);
    // The test runner's parent stands in for a running control plane: a live PID not our own.
    await writeServerFile(home, { url: 'http://127.0.0.1:1', pid: process.ppid });
    const started = startControlPlane({ home, services: async () => [] });
    await expect(started).rejects.toBeInstanceOf(ConflictError);
    await expect(started).rejects.toThrow(
      `a kiln control plane already runs for this project (pid ${process.ppid}, see ${path.join(home, 'server.json')})`,
    );
  });
});
