import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NotFoundError, UnavailableError, ValidationError } from '../errors/index.js';
import { applyManifests, availability, renderRelease } from './index.js';
import { kubeconfigFor, release as fixture, startFakeApiServer, type FakeApiServer } from './testkit.js';

const [D1, D2] = [`sha256:${'1'.repeat(64)}`, `sha256:${'2'.repeat(64)}`];
const release: typeof fixture = (name, digest, input = {}) =>
  fixture(name, digest, { replicas: 2, ...input });

let server: FakeApiServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function cluster(options: Parameters<typeof startFakeApiServer>[0] = {}) {
  server = await startFakeApiServer(options);
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-k8s-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigFor(server));
  return { server, kubeconfig };
}

const bluegreen = { strategy: { type: 'bluegreen' as const } };
const APPLY = '?fieldManager=kiln&force=true';

describe('applyManifests against a recorded fake API server', () => {
  it('applies the release, waits for its pods, and only then switches the Service', async () => {
    const { server, kubeconfig } = await cluster({ notReadyReads: 2 });
    const rendered = renderRelease(release('r2', D2, bluegreen), { registry: 'registry.example.com' });
    const lines: string[] = [];
    const applied = await applyManifests(rendered, {
      kubeconfig,
      namespace: 'prod',
      pollMs: 5,
      onProgress: (l) => lines.push(l),
    });
    expect(applied).toEqual([
      { kind: 'Deployment', name: 'web-r2', namespace: 'prod' },
      { kind: 'Service', name: 'web', namespace: 'prod' },
    ]);
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /apis/apps/v1',
      `PATCH /apis/apps/v1/namespaces/prod/deployments/web-r2${APPLY}`,
      'GET /apis/apps/v1/namespaces/prod/deployments/web-r2',
      'GET /apis/apps/v1/namespaces/prod/deployments/web-r2',
      'GET /apis/apps/v1/namespaces/prod/deployments/web-r2',
      'GET /api/v1',
      `PATCH /api/v1/namespaces/prod/services/web${APPLY}`,
    ]);
    const patches = server.requests.filter((r) => r.method === 'PATCH');
    expect(patches.every((r) => r.contentType === 'application/apply-patch+yaml')).toBe(true);
    expect(server.requests.every((r) => r.authorization === `Bearer ${server.token}`)).toBe(true);
    // What reached the server is exactly what was rendered, with the namespace filled in.
    const [deployment, service] = [rendered.objects[0]!, rendered.traffic[0]!];
    expect(patches[0]!.body).toEqual({
      ...deployment,
      metadata: { ...deployment.metadata, namespace: 'prod' },
    });
    expect(patches[1]!.body).toEqual({ ...service, metadata: { ...service.metadata, namespace: 'prod' } });
    expect(lines).toEqual([
      'applied Deployment web-r2',
      'waiting for Deployment web-r2 to be available',
      'applied Service web',
    ]);
  });

  it('leaves the Service on the old release when the new pods never become available', async () => {
    const { server, kubeconfig } = await cluster({ notReadyReads: 1_000_000 });
    const rendered = renderRelease(release('r2', D2, bluegreen), { registry: 'registry.example.com' });
    const err = await applyManifests(rendered, {
      kubeconfig,
      namespace: 'prod',
      pollMs: 5,
      readyTimeoutMs: 100,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(String(err)).toMatch(/web-r2 was not available within 100 ms; traffic was left where it was/);
    expect(server.requests.filter((r) => r.method === 'PATCH').map((r) => r.url)).toEqual([
      `/apis/apps/v1/namespaces/prod/deployments/web-r2${APPLY}`,
    ]);
  });

  it('applies a rolling release in one pass, with no wait', async () => {
    const { server, kubeconfig } = await cluster();
    const rendered = renderRelease(release('r1', D1), { registry: 'registry.example.com', namespace: 'web' });
    await applyManifests(rendered, { kubeconfig, namespace: 'ignored' });
    expect(server.requests.filter((r) => r.method === 'PATCH').map((r) => r.url)).toEqual([
      `/apis/apps/v1/namespaces/web/deployments/web${APPLY}`,
      `/api/v1/namespaces/web/services/web${APPLY}`,
    ]);
    expect([...server.objects.keys()]).toEqual(['web/deployments/web', 'web/services/web']);
  });

  it("names the object and the API server's reason when it refuses one", async () => {
    const { kubeconfig } = await cluster({ refuse: 'Deployment/web' });
    const rendered = renderRelease(release('r1', D1), { registry: 'registry.example.com' });
    const err = await applyManifests(rendered, { kubeconfig, namespace: 'prod' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(String(err)).toContain(
      'applying Deployment web in namespace prod: the API server answered 422: web is invalid',
    );
  });

  it('says which kubeconfig is missing, and which contexts there are', async () => {
    const { kubeconfig } = await cluster();
    const rendered = renderRelease(release('r1', D1), { registry: 'registry.example.com' });
    const missing = await applyManifests(rendered, {
      kubeconfig: `${kubeconfig}.nope`,
      source: 'targets.prod.kubeconfig',
      namespace: 'prod',
    }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(String(missing)).toContain('targets.prod.kubeconfig: no kubeconfig at');
    const context = await applyManifests(rendered, { kubeconfig, context: 'other', namespace: 'prod' }).catch(
      (e: unknown) => e,
    );
    expect(context).toBeInstanceOf(ValidationError);
    expect(String(context)).toContain('use one of: fake');
  });

  /** A Deployment wanting 2 replicas at generation 2, with the status given. */
  const at = (status: Record<string, unknown>) => ({
    metadata: { generation: 2 },
    spec: { replicas: 2 },
    status,
  });
  const counts = (observedGeneration: number, availableReplicas: number, replicas: number) =>
    at({ observedGeneration, updatedReplicas: 2, availableReplicas, replicas });
  it.each([
    [counts(1, 2, 2), 'waiting'],
    [counts(2, 1, 2), 'waiting'],
    [counts(2, 2, 3), 'waiting'],
    [counts(2, 2, 2), 'available'],
    [
      at({ conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] }),
      'ProgressDeadlineExceeded',
    ],
  ])('availability of %j is %s', (deployment, verdict) => {
    expect(availability(deployment as never)).toBe(verdict);
  });
});
