import { describe, expect, it } from 'vitest';
import type { ImageConfig } from '../oci/index.js';
import { serviceSchema, type ServiceInput } from '../spec/index.js';
import { devInstanceId, devInstanceSpec, devPort, serviceOmissions } from './settings.js';

const service = (input: Partial<ServiceInput> & { name: string; port: number }) =>
  serviceSchema.parse({ image: 'hello', ...input });

const hello = service({ name: 'hello', port: 8080, env: { LOG: 'debug', PORT: '1' } });
const db = service({ name: 'db', port: 18080, kind: 'stateful', replicas: 3 });
const api = service({ name: 'api', port: 9000 });

describe('devPort', () => {
  it.each([
    ['the service port + 10000 by default', hello, [hello, api], undefined, 18080],
    ['--port when given', hello, [hello, api], 7000, 7000],
  ])('gives %s', (_what, s, all, requested, port) => {
    expect(devPort(s, all, requested)).toBe(port);
  });

  it.each([
    ['a service’s router port', hello, [hello, api], 9000, /9000 is where service api is served/],
    ['a stateful identity’s port', hello, [hello, db], undefined, /18080 is where service db is served/],
    ['a stateful identity past the first', api, [api, db], 18082, /18082 is where service db is served/],
    ['the instances’ range', service({ name: 'x', port: 15000 }), [], undefined, /in the range kiln gives/],
    ['a port past 65535', service({ name: 'y', port: 60000 }), [], undefined, /70000 is not a port/],
  ])('refuses %s, naming --port', (_what, s, all, requested, message) => {
    expect(() => devPort(s, all, requested)).toThrow(message);
    expect(() => devPort(s, all, requested)).toThrow(/fix: choose another with --port N/);
  });
});

describe('devInstanceSpec', () => {
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: ['PATH=/usr/bin:/bin', 'NODE_ENV=production', 'LOG=info'],
      Cmd: ['node', '/app/server.js'],
      WorkingDir: '/app',
      User: '1000:1000',
    },
    rootfs: { type: 'layers', diff_ids: [] },
  };

  it("runs the app image's process, marked dev, with the service's env over the image's", () => {
    const spec = devInstanceSpec({
      id: 'dev-hello-abc123-1',
      service: service({
        name: 'hello',
        port: 8080,
        env: { LOG: 'debug', PORT: '1' },
        resources: { memory: '128Mi', cpus: 0.5 },
      }),
      digest: `sha256:${'a'.repeat(64)}`,
      config,
      port: 18080,
      mounts: [{ source: '/src/app', destination: '/app', readonly: true }],
    });
    expect(spec).toEqual({
      id: 'dev-hello-abc123-1',
      service: 'hello',
      release: 'dev',
      digest: 'sha256:' + 'a'.repeat(64),
      args: ['node', '/app/server.js'],
      env: {
        PATH: '/usr/bin:/bin',
        NODE_ENV: 'production',
        LOG: 'debug',
        PORT: '18080',
        KILN_DEV: '1',
        KILN_SERVICE: 'hello',
        KILN_INSTANCE: 'dev-hello-abc123-1',
      },
      cwd: '/app',
      user: { uid: 1000, gid: 1000 },
      port: 18080,
      memoryBytes: 128 * 1024 * 1024,
      mounts: [{ source: '/src/app', destination: '/app', readonly: true }],
      labels: { 'kiln.dev': 'true', 'kiln.service': 'hello' },
    });
    expect(spec.env).not.toHaveProperty('KILN_RELEASE');
  });

  it('names instances by service, session and count', () => {
    expect(devInstanceId('hello', 'abc123', 2)).toBe('dev-hello-abc123-2');
  });
});

describe('serviceOmissions', () => {
  it('says what a dev instance leaves out of the service', () => {
    expect(serviceOmissions(hello)).toEqual([]);
    expect(
      serviceOmissions(
        service({
          name: 'db',
          port: 5432,
          kind: 'stateful',
          volumes: [{ name: 'data', path: '/var/lib/db' }],
          resources: { cpus: 0.5 },
        }),
      ),
    ).toEqual([
      "the service's volumes (data) are not mounted",
      'the CPU limit (0.5) is not applied, so restarts are not throttled',
    ]);
  });
});
