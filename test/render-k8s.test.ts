/**
 * `kiln render k8s` end to end, in process: Given a project whose state holds releases of a
 * canary service, When the verb renders (and applies) them, Then the manifests validate against
 * the Kubernetes schemas and the fake API server saw exactly the requests a cluster would.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { makeSelfSigned } from '../src/api/index.js';
import { kiln } from '../src/cli/testkit.js';
import { kubeconfigFor, schemaErrors, startFakeApiServer, type FakeApiServer } from '../src/k8s/testkit.js';
import { serviceSchema } from '../src/spec/index.js';
import { openState } from '../src/state/index.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const HASH = `sha256:${'c'.repeat(64)}`;

const SERVICE = {
  name: 'web',
  image: 'web',
  port: 8080,
  replicas: 4,
  health: { http: '/healthz' },
  strategy: { type: 'canary', steps: [{ weight: 25 }, { weight: 50 }] },
};

const CONFIG = `images:
  - name: web
    entrypoint: [/app/server]
services:
  - name: web
    image: web
    port: 8080
    replicas: 4
    health: { http: /healthz }
    strategy: { type: canary, steps: [{ weight: 25 }, { weight: 50 }] }
targets:
  prod: { driver: kubernetes, kubeconfig: kubeconfig.yaml, namespace: shop }
  box: { driver: local }
regions:
  eu: { target: prod, registry: registry.example.com/kiln }
`;

let dir: string;
let server: FakeApiServer | undefined;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-render-'));
  writeFileSync(path.join(dir, 'kiln.yaml'), CONFIG);
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** r1 rolled out, then a canary to r2 at its second step (50 %). */
function seed(phase: 'progressing' | 'succeeded' | 'rolled-back' = 'progressing'): void {
  const store = openState(path.join(dir, '.kiln', 'state.db'));
  try {
    const spec = serviceSchema.parse(SERVICE);
    store.services.put('web', spec);
    const process = { args: ['/app/server'], env: {}, cwd: '/', user: { uid: 1000, gid: 1000 } };
    for (const digest of [D1, D2]) {
      store.releases.create({
        service: 'web',
        digest,
        configHash: HASH,
        spec: { service: spec, process },
        createdBy: 'test',
        reason: 'deploy',
      });
    }
    const first = store.rollouts.create({ service: 'web', toRelease: 1, strategy: 'rolling' });
    store.rollouts.update(first.id, first.version, { phase: 'succeeded' });
    const canary = store.rollouts.create({
      service: 'web',
      fromRelease: 1,
      toRelease: 2,
      strategy: 'canary',
      status: { conditions: [], canary: { step: 1, stepStartedAt: new Date().toISOString(), looks: [] } },
    });
    store.rollouts.update(canary.id, canary.version, { phase });
  } finally {
    store.close();
  }
}

type Doc = { kind: string; metadata: { name: string; namespace?: string }; spec: Record<string, unknown> };

function docs(text: string): Doc[] {
  return parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS() as Doc);
}

/** `kiln -c <project>/kiln.yaml render k8s web ARGS`. */
const render = (...args: string[]) =>
  kiln('-c', path.join(dir, 'kiln.yaml'), 'render', 'k8s', 'web', ...args);

describe('kiln render k8s', () => {
  it('renders the canary at the step its rollout is on, from the state, with the region registry', async () => {
    seed();
    const { code, stdout, error } = await render('--target', 'prod');
    expect(error).toBe('');
    expect(code).toBe(0);
    const objects = docs(stdout);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}/${String(o.spec.replicas ?? '-')}`)).toEqual([
      'Deployment/web-r2/2',
      'Deployment/web-r1/2',
      'Service/web/-',
    ]);
    expect(objects.every((o) => o.metadata.namespace === 'shop')).toBe(true);
    expect(objects.flatMap((o) => schemaErrors(o))).toEqual([]);
    expect(stdout).toContain(`image: registry.example.com/kiln/web@${D2}`);
    expect(stdout).toContain(`image: registry.example.com/kiln/web@${D1}`);
  });

  it('retires the old release once the canary succeeded, and renders any release by hand', async () => {
    seed('succeeded');
    const done = await render('--registry', 'r.example.com');
    expect(
      docs(done.stdout).map((o) => `${o.kind}/${o.metadata.name}/${String(o.spec.replicas ?? '-')}`),
    ).toEqual(['Deployment/web-r2/4', 'Service/web/-', 'Deployment/web-r1/0']);
    const byHand = await render(
      '--registry',
      'r.example.com',
      '--release',
      'r2',
      '--canary-from',
      'r1',
      '--weight',
      '10',
      '--gateway',
      'infra/edge',
      '--out',
      path.join(dir, 'out'),
    );
    expect(byHand.error).toBe('');
    expect(byHand.stdout).toBe(`wrote ${path.join(dir, 'out', 'web.yaml')} (5 objects)\n`);
    const route = docs(readFileSync(path.join(dir, 'out', 'web.yaml'), 'utf8')).find(
      (o) => o.kind === 'HTTPRoute',
    )!;
    expect(route.spec).toMatchObject({
      parentRefs: [{ name: 'edge', namespace: 'infra' }],
      rules: [
        {
          backendRefs: [
            { name: 'web-r1', weight: 90 },
            { name: 'web-r2', weight: 10 },
          ],
        },
      ],
    });
  });

  it('says what is missing: no state, no registry, a target that is not kubernetes, --apply without one', async () => {
    const none = await render('--registry', 'r.example.com');
    expect(none.code).toBe(2);
    expect(none.error).toMatch(/no releases yet: .*state\.db does not exist; deploy first/);
    seed();
    const noRegistry = await render();
    expect(noRegistry.code).toBe(2);
    expect(noRegistry.error).toContain('give --registry host[:port][/prefix]');
    const local = await render('--target', 'box');
    expect(local.error).toContain('target "box" is driven by local, not kubernetes');
    expect(local.error).toContain('use a kubernetes target: prod');
    const apply = await render('--registry', 'r.example.com', '--apply');
    expect(apply.error).toContain('--target prod');
    const release = await render('--registry', 'r.example.com', '--release', 'r9');
    expect(release.error).toContain("release r9 of 'web' does not exist; its releases are r1 to r2");
  });

  it('applies to the target over TLS, checking the server against the kubeconfig CA', async () => {
    seed();
    const cert = await makeSelfSigned(dir, 'apiserver');
    const tls = { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) };
    server = await startFakeApiServer({ tls, notReadyReads: 1 });
    writeFileSync(path.join(dir, 'kubeconfig.yaml'), kubeconfigFor(server, tls.cert));
    const { code, stdout, error } = await render('--target', 'prod', '--apply');
    expect(error).toBe('');
    expect(code).toBe(0);
    const apply = '?fieldManager=kiln&force=true';
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /apis/apps/v1',
      `PATCH /apis/apps/v1/namespaces/shop/deployments/web-r2${apply}`,
      'GET /apis/apps/v1/namespaces/shop/deployments/web-r2',
      'GET /apis/apps/v1/namespaces/shop/deployments/web-r2',
      `PATCH /apis/apps/v1/namespaces/shop/deployments/web-r1${apply}`,
      'GET /api/v1',
      `PATCH /api/v1/namespaces/shop/services/web${apply}`,
    ]);
    expect(stdout.split('\n').filter(Boolean)).toEqual([
      'applied Deployment web-r2',
      'waiting for Deployment web-r2 to be available',
      'applied Deployment web-r1',
      'applied Service web',
    ]);
    for (const r of server.requests.filter((q) => q.method === 'PATCH'))
      expect(schemaErrors(r.body)).toEqual([]);
  });

  it('refuses a server whose certificate the kubeconfig does not trust, applying nothing', async () => {
    seed();
    const cert = await makeSelfSigned(dir, 'apiserver');
    const other = await makeSelfSigned(dir, 'other');
    server = await startFakeApiServer({
      tls: { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) },
    });
    writeFileSync(path.join(dir, 'kubeconfig.yaml'), kubeconfigFor(server, readFileSync(other.certFile)));
    const { code, error } = await render('--target', 'prod', '--apply');
    expect(code).toBe(3);
    expect(error).toMatch(/could not be reached/);
    expect(server.requests).toEqual([]);
  });
});
