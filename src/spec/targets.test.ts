import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { validateStack } from './load.js';

function issues(raw: unknown): { path: string; message: string; fix?: string }[] {
  try {
    validateStack(raw, 'kiln.yaml');
  } catch (err) {
    if (err instanceof ValidationError) return err.issues.map((i) => ({ ...i }));
    throw err;
  }
  return [];
}

describe('targets and regions', () => {
  it('accepts targets of each driver and regions on them', () => {
    const stack = validateStack(
      {
        targets: {
          eu: { driver: 'local', api: 'https://kiln-eu.example.com:7070' },
          us: {
            driver: 'swarm',
            docker: 'unix:///var/run/docker.sock',
            registry: '127.0.0.1:5000/kiln',
            api: 'http://127.0.0.1:7071',
          },
          k8s: { driver: 'kubernetes', kubeconfig: './kubeconfig' },
        },
        regions: {
          eu: { target: 'eu', registry: 'registry-eu.example.com/kiln' },
          us: { target: 'us', registry: '127.0.0.1:5000' },
        },
      },
      'kiln.yaml',
    );
    expect(stack.regions.eu).toEqual({ target: 'eu', registry: 'registry-eu.example.com/kiln' });
    expect(stack.targets.k8s).toMatchObject({ driver: 'kubernetes', namespace: 'default' });
  });

  it('defaults to none of either', () => {
    expect(validateStack({}, 'kiln.yaml')).toMatchObject({ targets: {}, regions: {} });
  });

  it('refuses a region on an undeclared target, naming the field and the targets there are', () => {
    expect(
      issues({
        targets: { eu: { driver: 'local' } },
        regions: { us: { target: 'usa', registry: 'r.example.com' } },
      }),
    ).toEqual([
      { path: 'regions.us.target', message: '"usa" is not a declared target', fix: 'use one of: eu' },
    ]);
    expect(issues({ regions: { us: { target: 'us', registry: 'r.example.com' } } })[0]!.fix).toMatch(
      /declare it under targets/,
    );
  });

  it.each([
    [{ regions: { eu: { target: 'eu', registry: 'https://r.example.com' } } }, 'regions.eu.registry'],
    [{ regions: { eu: { target: 'eu', registry: 'r.example.com/Kiln' } } }, 'regions.eu.registry'],
    [{ regions: { EU: { target: 'eu', registry: 'r.example.com' } } }, 'regions.EU'],
    [{ targets: { eu: { driver: 'nomad' } } }, 'targets.eu.driver'],
    [{ targets: { eu: { driver: 'swarm' } } }, 'targets.eu.docker'],
    [{ targets: { eu: { driver: 'swarm', docker: '/var/run/docker.sock' } } }, 'targets.eu.docker'],
    [{ targets: { eu: { driver: 'local', api: 'kiln-eu:7070' } } }, 'targets.eu.api'],
    [{ targets: { eu: { driver: 'local', docker: 'unix:///x' } } }, 'targets.eu'],
  ])('refuses %j at %s', (raw, path) => {
    expect(issues(raw).map((i) => i.path)).toContain(path);
  });
});
