import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UnavailableError, ValidationError } from '../errors/index.js';
import type { OciStore } from '../oci/index.js';
import { SwarmRuntimeDriver } from '../runtime/index.js';
import { resolveTargetPaths, targetsSchema, validateStack, type TargetSpec } from '../spec/index.js';
import { targetDriver } from './target-driver.js';

function target(raw: object): TargetSpec {
  return validateStack({ targets: { prod: raw } }, 'kiln.yaml').targets.prod!;
}

const deps = {
  home: '/srv/app/.kiln',
  store: () => Promise.reject<OciStore>(new Error('not used')),
  log: () => {},
};

describe('kiln server --target', () => {
  it('reads a swarm target: its manager, the registry its nodes pull from, and the other nodes', () => {
    expect(
      target({
        driver: 'swarm',
        docker: 'unix:///run/docker.sock',
        registry: '10.0.0.1:5000/kiln',
        insecureRegistry: true,
        nodes: { worker1: 'tcp://10.0.0.12:2375' },
      }),
    ).toEqual({
      driver: 'swarm',
      docker: 'unix:///run/docker.sock',
      registry: '10.0.0.1:5000/kiln',
      insecureRegistry: true,
      nodes: { worker1: 'tcp://10.0.0.12:2375' },
    });
  });

  it('names every field of a swarm target that is wrong', () => {
    const error = (() => {
      try {
        target({ driver: 'swarm', docker: 'http://x', nodes: { w: 'ssh://w' } });
      } catch (err) {
        return err;
      }
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).issues.map((i) => i.path).sort()).toEqual([
      'targets.prod.docker',
      'targets.prod.nodes.w',
      'targets.prod.registry',
    ]);
  });

  it('runs a swarm target with the swarm driver, scoped to the project, and a local one with the local driver', async () => {
    const swarm = await targetDriver(
      {
        name: 'prod',
        spec: target({ driver: 'swarm', docker: 'unix:///run/docker.sock', registry: 'r:5000' }),
      },
      deps,
    );
    expect(swarm).toBeInstanceOf(SwarmRuntimeDriver);
    await swarm!.close();
    expect(await targetDriver({ name: 'dev', spec: target({ driver: 'local' }) }, deps)).toBeUndefined();
  });

  it('refuses a kubernetes target, saying what runs one', async () => {
    const k8s = target({ driver: 'kubernetes', kubeconfig: './kubeconfig' });
    await expect(targetDriver({ name: 'k', spec: k8s }, deps)).rejects.toThrow(UnavailableError);
    await expect(targetDriver({ name: 'k', spec: k8s }, deps)).rejects.toThrow(/kiln render k8s/);
  });

  it("reads a swarm target's TLS files before anything starts, naming each one that is wrong", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kiln-target-tls-'));
    try {
      await writeFile(path.join(dir, 'ca.pem'), 'not a certificate\n');
      const spec = target({
        driver: 'swarm',
        docker: 'tcp://10.0.0.1:2376',
        registry: 'r:5000',
        tls: {
          ca: path.join(dir, 'ca.pem'),
          cert: path.join(dir, 'cert.pem'),
          key: path.join(dir, 'key.pem'),
        },
      });
      const err = await targetDriver({ name: 'prod', spec }, deps).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).issues.map((i) => [i.path, i.message])).toEqual([
        [
          'targets.prod.tls.ca',
          `${path.join(dir, 'ca.pem')} is not the PEM certificate of the CA that signed the engines' certificates`,
        ],
        ['targets.prod.tls.cert', `${path.join(dir, 'cert.pem')}: ENOENT`],
        ['targets.prod.tls.key', `${path.join(dir, 'key.pem')}: ENOENT`],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes TLS only with tcp:// engines, and resolves its files against the config directory', () => {
    const tls = { ca: 'certs/ca.pem', cert: 'certs/cert.pem', key: 'certs/key.pem' };
    const bad = targetsSchema.safeParse({
      prod: { driver: 'swarm', docker: 'unix:///run/docker.sock', registry: 'r:5000', tls },
    });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      [
        'prod.docker',
        '"unix:///run/docker.sock" is a unix socket, which takes no TLS: with tls, every engine must be a tcp:// address',
      ],
    ]);
    const good = target({ driver: 'swarm', docker: 'tcp://10.0.0.1:2376', registry: 'r:5000', tls });
    expect(resolveTargetPaths(good, '/srv/app')).toMatchObject({
      tls: { ca: '/srv/app/certs/ca.pem', cert: '/srv/app/certs/cert.pem', key: '/srv/app/certs/key.pem' },
    });
  });
});
