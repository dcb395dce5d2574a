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

describe('stateful services', () => {
  const issuesOf = (input: object): { path: string; message: string; fix?: string }[] => {
    try {
      validateStack(input, 'kiln.yaml');
    } catch (e) {
      if (e instanceof ValidationError) return e.issues.map((i) => ({ ...i }));
      throw e;
    }
    return [];
  };
  const image = { name: 'redis', from: 'scratch', volumes: ['/data', '/etc/kiln'] };
  const db = (over: object = {}) => ({
    name: 'db',
    image: 'redis',
    port: 7000,
    replicas: 3,
    kind: 'stateful',
    volumes: [{ name: 'data', path: '/data' }],
    ...over,
  });

  it('accepts identities with volumes, a ready check and config files on mount points of the image', () => {
    const [svc] = validateStack(
      {
        images: [image],
        services: [
          db({
            ready: { exec: ['redis-cli', 'ping'], interval: '100ms' },
            config: { path: '/etc/kiln', files: { 'redis.conf': 'appendonly yes\n' } },
          }),
        ],
      },
      'kiln.yaml',
    ).services;
    expect(svc).toMatchObject({
      kind: 'stateful',
      volumes: [{ name: 'data', path: '/data' }],
      ready: { exec: ['redis-cli', 'ping'], interval: 100 },
      config: { path: '/etc/kiln', files: { 'redis.conf': 'appendonly yes\n' } },
    });
  });

  it('defaults to stateless, and refuses volumes and ready checks there', () => {
    expect(
      validateStack({ images: [image], services: [db({ kind: undefined, volumes: [] })] }, 'k').services[0]!
        .kind,
    ).toBe('stateless');
    const issues = issuesOf({
      images: [image],
      services: [db({ kind: 'stateless', ready: { tcp: true } })],
    });
    expect(issues.map((i) => i.path)).toEqual(['services[0].volumes', 'services[0].ready']);
    expect(issues[0]!.message).toContain('add kind: "stateful"');
  });

  it('refuses another strategy, twice-used volumes and ports past 65535', () => {
    const issues = issuesOf({
      images: [image],
      services: [
        db({
          strategy: { type: 'canary', steps: [{ weight: 10 }] },
          volumes: [
            { name: 'data', path: '/data' },
            { name: 'data', path: '/data' },
          ],
        }),
        db({ name: 'big', port: 65534, replicas: 3, volumes: [] }),
      ],
    });
    expect(issues.map((i) => i.path)).toEqual([
      'services[0].strategy.type',
      'services[0].volumes[1].name',
      'services[0].volumes[1].path',
      'services[1].port',
    ]);
  });

  it('refuses a volume or config path the image does not have as a mount point', () => {
    const issues = issuesOf({
      images: [image],
      services: [
        db({
          volumes: [{ name: 'logs', path: '/var/log/redis' }],
          config: { path: '/etc/redis', files: { 'redis.conf': '' } },
        }),
      ],
    });
    expect(issues).toEqual([
      {
        path: 'services[0].volumes[0].path',
        message: expect.stringContaining('/var/log/redis is not a mount point of image "redis"'),
        fix: 'add "/var/log/redis" to the volumes of image "redis"',
      },
      expect.objectContaining({ path: 'services[0].config.path' }),
    ]);
  });

  it("gives identity k port + k, and refuses a range that takes another service's port", () => {
    const issues = issuesOf({
      images: [image],
      services: [db(), { name: 'web', image: 'redis', port: 7002 }],
    });
    expect(issues).toEqual([
      expect.objectContaining({
        path: 'services[1].port',
        message: 'port 7002 is already the port of service "db"',
      }),
    ]);
  });

  it('finds mount points on the images an image is built on', () => {
    const issues = issuesOf({
      images: [image, { name: 'app', from: 'redis' }],
      services: [db({ image: 'app' })],
    });
    expect(issues).toEqual([]);
  });
});
