import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { probeSwarm } from './probe.js';

const servers: http.Server[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A Docker Engine on a unix socket that answers /version and /info with `swarm`. */
async function engine(swarm: object | undefined): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-engine-'));
  dirs.push(dir);
  const socket = join(dir, 'docker.sock');
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/version') res.end(JSON.stringify({ ApiVersion: '1.41' }));
    else if (req.url === '/v1.41/info') res.end(JSON.stringify({ ServerVersion: '20.10.24', Swarm: swarm }));
    else res.writeHead(404).end('{"message":"page not found"}');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return `unix://${socket}`;
}

describe('probeSwarm', () => {
  it('passes a manager of an active swarm', async () => {
    const url = await engine({ LocalNodeState: 'active', ControlAvailable: true, Nodes: 3 });
    expect(await probeSwarm(url)).toEqual({
      ok: true,
      detail: 'Docker 20.10.24, swarm manager of 3 node(s)',
    });
  });

  it('fails an engine in no swarm, and a worker, saying what to do', async () => {
    const alone = await probeSwarm(await engine({ LocalNodeState: 'inactive' }));
    expect(alone).toMatchObject({ ok: false, detail: expect.stringMatching(/not in a swarm \(inactive\)/) });
    expect(alone.fix).toMatch(/swarm init/);
    const worker = await probeSwarm(await engine({ LocalNodeState: 'active', ControlAvailable: false }));
    expect(worker).toMatchObject({ ok: false, detail: expect.stringMatching(/worker/) });
    expect(worker.fix).toMatch(/manager/);
  });

  it('fails an engine that does not answer, naming its address', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-engine-'));
    dirs.push(dir);
    const probe = await probeSwarm(`unix://${join(dir, 'absent.sock')}`);
    expect(probe.ok).toBe(false);
    expect(probe.detail).toContain(join(dir, 'absent.sock'));
    expect(probe.fix).toMatch(/docker\.io/);
  });
});
