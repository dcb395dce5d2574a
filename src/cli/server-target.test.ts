import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { validateStack, type LoadedConfig } from '../spec/index.js';
import { declaredTarget } from './server.js';

function config(targets: object): LoadedConfig {
  return { file: '/p/kiln.yaml', dir: '/p', stack: validateStack({ targets }, '/p/kiln.yaml') };
}

describe('kiln server --target NAME', () => {
  it('picks the declared target by name', () => {
    const swarm = { driver: 'swarm', docker: 'unix:///run/docker.sock', registry: 'r:5000' };
    expect(declaredTarget(config({ prod: swarm }), 'prod')).toMatchObject({
      name: 'prod',
      spec: { driver: 'swarm', docker: 'unix:///run/docker.sock' },
    });
  });

  it('names the file, the declared targets, or how to declare one, for a target that is not there', () => {
    const err = (targets: object) => {
      try {
        declaredTarget(config(targets), 'prod');
      } catch (e) {
        return e as ValidationError;
      }
      throw new Error('no error');
    };
    const some = err({ staging: { driver: 'local' } });
    expect(some).toBeInstanceOf(ValidationError);
    expect(some.message).toContain('/p/kiln.yaml');
    expect(some.issues[0]).toMatchObject({ path: 'targets', fix: 'use one of: staging' });
    expect(err({}).issues[0]!.fix).toMatch(/targets: \{ prod: \{ driver: 'swarm'/);
  });
});
