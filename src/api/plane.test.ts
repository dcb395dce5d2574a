import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../errors/index.js';
import { FleetController, type ImageCatalog } from '../fleet/index.js';
import { FakeRuntimeDriver } from '../runtime/index.js';
import { serviceSchema } from '../spec/index.js';
import { IN_MEMORY, openState, type StateStore } from '../state/index.js';
import type { ServiceRoute, TrafficRouter } from '../traffic/index.js';
import { FleetPlane } from './plane.js';

const DIGEST = `sha256:${'c'.repeat(64)}` as const;

const images: ImageCatalog = {
  async resolve(ref) {
    if (ref !== 'web' && ref !== DIGEST) throw new NotFoundError(`no image "${ref}"`);
    return { digest: DIGEST, process: { args: ['/app'], env: {}, cwd: '/', user: { uid: 0, gid: 0 } } };
  },
  async admit() {
    return { keyid: `sha256:${'f'.repeat(64)}`, keySource: 'fake', blobs: 1, hashed: 0 };
  },
  async rootfs() {
    return '/nonexistent';
  },
};

const routes = new Map<string, ServiceRoute>();
const router: TrafficRouter = {
  setRoute: async (r) => (routes.set(r.service, r), { listenPort: r.listenPort }),
  removeRoute: async (s) => void routes.delete(s),
  drain: async () => {},
  routes: async () => [...routes.values()],
  metrics: async () => [],
  totals: async () => [],
  close: async () => {},
};

let store: StateStore;
let controller: FleetController;
let driver: FakeRuntimeDriver;
afterEach(async () => {
  await controller.close();
  await driver.close();
  store.close();
  routes.clear();
});

function plane(): FleetPlane {
  store = openState(IN_MEMORY);
  driver = new FakeRuntimeDriver();
  controller = new FleetController({ store, driver, router, images, prober: async () => true });
  const spec = serviceSchema.parse({ name: 'web', image: 'web', port: 8080, replicas: 2 });
  return new FleetPlane({
    store,
    controller,
    driver,
    images,
    declared: async (name) => {
      if (name !== 'web') throw new NotFoundError(`no service "${name}" in the project's config`);
      return spec;
    },
  });
}

describe('FleetPlane', () => {
  it('records every deploy and rollback in the audit log, with who asked and how it went', async () => {
    const p = plane();
    await controller.start();
    const first = await p.deploy('web', { reason: 'first' }, 'alice');
    expect(first.release).toMatchObject({ name: 'r1', digest: DIGEST, createdBy: 'alice', current: true });
    await expect(p.deploy('nope', {}, 'bob')).rejects.toThrow(/no service "nope"/);
    await expect(p.rollback('web', {}, 'carol')).rejects.toThrow(/first release is rolling out|only r1/);
    const audit = store.audit.since(0).map((a) => [a.actor, a.action, a.target, a.result]);
    expect(audit).toEqual([
      ['alice', 'deploy', 'web', 'ok'],
      ['bob', 'deploy', 'nope', 'failed'],
      ['carol', 'rollback', 'web', 'failed'],
    ]);
    expect(store.audit.since(0)[0]?.detail).toContain(`r1 (${DIGEST}), rollout ${first.rollout.id}`);
  });

  it('answers status, releases and instances in the documented shapes', async () => {
    const p = plane();
    await controller.start();
    const { rollout } = await p.deploy('web', {}, 'alice');
    await controller.settle();
    await controller.settle();
    const [status] = await p.status();
    expect(status).toMatchObject({
      name: 'web',
      url: 'http://127.0.0.1:8080/',
      replicas: 2,
      strategy: 'rolling',
      release: 'r1',
      digest: DIGEST,
      instances: 2,
    });
    expect((await p.rollout(rollout.id)).to).toBe('r1');
    expect((await p.releases('web')).map((r) => [r.name, r.current])).toEqual([['r1', true]]);
    const instances = await p.instances('web');
    expect(instances).toHaveLength(2);
    expect(instances.every((i) => i.release === 'r1' && i.pid !== undefined)).toBe(true);
    await expect(p.releases('nope')).rejects.toThrow(/no service "nope" has been deployed \(deployed: web\)/);
  });

  it('manages the API tokens of the store, audited, keeping the last admin token', async () => {
    const p = plane();
    store.tokens.create('admin', ['admin']);
    const { token, secret } = await p.createToken({ name: 'ci', scopes: ['deploy'] }, 'admin');
    expect(store.tokens.verify(secret)?.name).toBe('ci');
    expect((await p.tokens()).map((t) => t.name)).toEqual(['admin', 'ci']);
    expect((await p.revokeToken('ci', 'admin')).id).toBe(token.id);
    await expect(p.revokeToken('admin', 'admin')).rejects.toThrow(/last live admin token/);
    expect(store.audit.since(0).map((a) => [a.actor, a.action, a.target, a.result])).toEqual([
      ['admin', 'token.create', 'ci', 'ok'],
      ['admin', 'token.revoke', 'ci', 'ok'],
      ['admin', 'token.revoke', 'admin', 'failed'],
    ]);
  });
});
