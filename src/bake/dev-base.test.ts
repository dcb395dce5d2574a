import { describe, expect, it } from 'vitest';
import type { ImageConfig } from '../oci/index.js';
import { imageSchema, type ImageInput, type LoadedConfig } from '../spec/index.js';
import { appImageConfig, devIssues, devOmissions } from './dev-base.js';

const image = (input: Partial<ImageInput> & { name: string }) => imageSchema.parse(input);

const nodeBase = image({
  name: 'node-base',
  from: 'debian:bookworm',
  packages: ['nodejs'],
  users: [{ name: 'app', uid: 1000 }],
  env: { NODE_ENV: 'production' },
});
const hello = image({
  name: 'hello',
  from: 'node-base',
  app: { src: './app', type: 'npm' },
  user: 'app',
  workdir: '/app',
  env: { PORT: '8080' },
  cmd: ['node', '/app/server.js'],
});

const BASE: ImageConfig = {
  created: '2026-11-26T00:00:00.000Z',
  architecture: 'amd64',
  os: 'linux',
  config: { Env: ['PATH=/usr/bin:/bin', 'NODE_ENV=production'] },
  rootfs: { type: 'layers', diff_ids: [`sha256:${'1'.repeat(64)}`] },
  history: [{ created: '2026-11-26T00:00:00.000Z', created_by: 'kiln: packages nodejs' }],
};

describe('appImageConfig', () => {
  it("gives the app image's settings over its base's, the user as uid:gid, and only the base's layers", () => {
    const config: LoadedConfig = {
      file: '/p/kiln.config.ts',
      dir: '/p',
      stack: { images: [nodeBase, hello], services: [] } as unknown as LoadedConfig['stack'],
    };
    const c = appImageConfig(config, hello, BASE);
    expect(c.config).toEqual({
      Env: ['PATH=/usr/bin:/bin', 'NODE_ENV=production', 'PORT=8080'],
      Cmd: ['node', '/app/server.js'],
      WorkingDir: '/app',
      User: '1000:1000',
    });
    expect(c.rootfs.diff_ids).toEqual(BASE.rootfs.diff_ids);
  });
});

describe('devIssues', () => {
  it('accepts an app folder on a base image of the stack', () => {
    expect(devIssues(hello, '/p/app', true)).toEqual([]);
  });

  it('refuses an image without an app, saying what to declare', () => {
    expect(devIssues(nodeBase, '', false)).toEqual([
      expect.objectContaining({ path: 'images.node-base.app', fix: expect.stringContaining('app: { src') }),
    ]);
  });

  it('reports every problem at once: a Debian suite as base, and a tarball as app', () => {
    const bad = image({ name: 'api', from: 'debian:bookworm', app: { src: './api.tgz', type: 'tar' } });
    expect(devIssues(bad, '/p/api.tgz', false).map((i) => [i.path, i.fix])).toEqual([
      [
        'images.api.from',
        'move the packages, users and files to a base image (say "api-base") and set from: api-base',
      ],
      ['images.api.app.src', 'point app.src at the folder the app is made from'],
    ]);
  });
});

describe('devOmissions', () => {
  it('lists what the app image declares beyond its app', () => {
    expect(devOmissions(hello)).toEqual([]);
    const busy = image({
      name: 'api',
      from: 'node-base',
      packages: ['curl'],
      files: [{ src: 'a.conf', dest: '/etc/a.conf' }],
      run: ['npm ci'],
      volumes: ['/data'],
      app: { src: './api' },
    });
    expect(devOmissions(busy)).toEqual([
      'packages (curl) are not installed: declare them on node-base',
      'files (/etc/a.conf) are not there: declare them on node-base',
      'run steps (1) do not run: the app folder is used as it is (run them in it yourself, such as npm ci)',
      'volumes (/data) have no mount point: declare them on node-base',
    ]);
  });
});
