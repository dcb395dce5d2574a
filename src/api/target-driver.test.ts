import { describe, expect, it } from 'vitest';
import { UnavailableError, ValidationError } from '../errors/index.js';
import type { OciStore } from '../oci/index.js';
import { SwarmRuntimeDriver } from '../runtime/index.js';
import { validateStack, type TargetSpec } from '../spec/index.js';
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
    const swarm = targetDriver(
      {
        name: 'prod',
        spec: target({ driver: 'swarm', docker: 'unix:///run/docker.sock', registry: 'r:5000' }),
      },
      deps,
    );
    expect(swarm).toBeInstanceOf(SwarmRuntimeDriver);
    await swarm!.close();
    expect(targetDriver({ name: 'dev', spec: target({ driver: 'local' }) }, deps)).toBeUndefined();
  });

  it('refuses a kubernetes target, saying what runs one', () => {
    const k8s = target({ driver: 'kubernetes', kubeconfig: './kubeconfig' });
    expect(() => targetDriver({ name: 'k', spec: k8s }, deps)).toThrow(UnavailableError);
    expect(() => targetDriver({ name: 'k', spec: k8s }, deps)).toThrow(/kiln render k8s/);
  });
});
