import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { validateStack } from './load.js';
import { parseBytes, parseDuration } from './units.js';

describe('units', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2000],
    ['1.5m', 90_000],
    ['1h', 3_600_000],
    ['2', undefined],
    ['2 s', undefined],
    ['-1s', undefined],
  ])('duration %s → %s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each([
    ['256Mi', 268_435_456],
    ['1Gi', 1_073_741_824],
    ['512M', 512_000_000],
    ['4096', 4096],
    ['1GB', undefined],
  ])('size %s → %s', (text, bytes) => expect(parseBytes(text)).toBe(bytes));
});

describe('services', () => {
  const stack = (service: object) => ({
    images: [{ name: 'web', from: 'scratch' }],
    services: [{ name: 'api', image: 'web', port: 8080, ...service }],
  });

  it('fills defaults: one replica, a tcp check every second, rolling with 25% surge', () => {
    const [svc] = validateStack(stack({}), 'kiln.yaml').services;
    expect(svc).toMatchObject({
      replicas: 1,
      health: { tcp: true, interval: 1000, timeout: 500, threshold: 3 },
      strategy: { type: 'rolling', maxSurge: '25%', maxUnavailable: 0 },
      tier: 1,
    });
  });

  it('turns durations and sizes into numbers', () => {
    const [svc] = validateStack(
      stack({
        health: { http: '/healthz', interval: '250ms' },
        resources: { memory: '128Mi', cpus: 0.5 },
        strategy: { type: 'bluegreen', rollbackWindow: '2m' },
      }),
      'kiln.yaml',
    ).services;
    expect(svc!.health).toMatchObject({ http: '/healthz', interval: 250 });
    expect(svc!.resources).toEqual({ memory: 134_217_728, cpus: 0.5 });
    expect(svc!.strategy).toEqual({ type: 'bluegreen', rollbackWindow: 120_000 });
  });

  it('refuses bare numbers for durations, two health checks, and an unknown image', () => {
    const err = (() => {
      try {
        validateStack(
          {
            images: [],
            services: [
              { name: 'api', image: 'nope', port: 8080, health: { http: '/', interval: 5 } },
              {
                name: 'api',
                image: `sha256:${'a'.repeat(64)}`,
                port: 8080,
                health: { http: '/', tcp: true },
              },
            ],
          },
          'kiln.yaml',
        );
      } catch (e) {
        return e as ValidationError;
      }
      throw new Error('expected a ValidationError');
    })();
    expect(err).toBeInstanceOf(ValidationError);
    const paths = err.issues.map((i) => i.path);
    expect(paths).toEqual(['services[0].health.interval', 'services[1].health']);
  });

  it('refuses unknown images, duplicate names and shared ports', () => {
    const err = (() => {
      try {
        validateStack(
          {
            images: [{ name: 'web', from: 'scratch' }],
            services: [
              { name: 'api', image: 'nope', port: 8080 },
              { name: 'api', image: 'web', port: 8080 },
              { name: 'ok', image: `sha256:${'a'.repeat(64)}`, port: 9090 },
            ],
          },
          'kiln.yaml',
        );
      } catch (e) {
        return e as ValidationError;
      }
      throw new Error('expected a ValidationError');
    })();
    expect(err.issues.map((i) => i.path)).toEqual([
      'services[0].image',
      'services[1].name',
      'services[1].port',
    ]);
  });
});
