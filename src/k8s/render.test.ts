import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { V1Deployment, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import { ValidationError } from '../errors/index.js';
import {
  allObjects,
  cpuQuantity,
  memoryQuantity,
  renderRelease,
  replicaSplit,
  toYaml,
  type HttpRoute,
  type K8sObject,
  type K8sRelease,
  type RenderOptions,
} from './index.js';
import { release, schemaErrors, SCHEMA_KUBERNETES_VERSION } from './testkit.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const REGISTRY = 'registry.example.com:5000/kiln';

const opts: RenderOptions = { registry: REGISTRY, namespace: 'prod' };

function find<T extends K8sObject>(objects: readonly K8sObject[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found)
    throw new Error(
      `no ${kind} ${name} in ${objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')}`,
    );
  return found as T;
}

/** Every object of every case is checked against the schemas; a case adds its own assertions. */
function rendered(r: K8sRelease, o: RenderOptions = opts) {
  const result = renderRelease(r, o);
  for (const object of allObjects(result)) {
    expect({ object: `${object.kind}/${object.metadata?.name}`, errors: schemaErrors(object) }).toEqual({
      object: `${object.kind}/${object.metadata?.name}`,
      errors: [],
    });
  }
  return result;
}

describe(`renderRelease, validated against the Kubernetes ${SCHEMA_KUBERNETES_VERSION} schemas`, () => {
  it('renders a rolling service as one Deployment that Kubernetes rolls, pinned by digest and hardened', () => {
    const r = release('r3', D1, {
      health: { http: '/healthz', interval: '2s', timeout: '500ms', threshold: 4 },
      resources: { cpus: 0.5, memory: '256Mi' },
      env: { MODE: 'yes', A_FIRST: '1' },
      strategy: { type: 'rolling', maxSurge: 1, maxUnavailable: '10%' },
      progressDeadline: '90s',
    });
    const { objects, traffic, waitFor } = rendered(r);
    expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual(['Deployment/web', 'Service/web']);
    expect(traffic).toEqual([]);
    expect(waitFor).toEqual([]);
    const d = find<V1Deployment>(objects, 'Deployment', 'web');
    expect(d.metadata?.namespace).toBe('prod');
    expect(d.spec?.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'web' });
    expect(d.spec?.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 1, maxUnavailable: '10%' },
    });
    expect(d.spec?.progressDeadlineSeconds).toBe(90);
    const pod = d.spec!.template;
    expect(pod.metadata?.labels?.['kiln.dev/release']).toBe('r3');
    expect(pod.spec?.securityContext).toMatchObject({
      runAsUser: 1000,
      runAsGroup: 1000,
      runAsNonRoot: true,
    });
    const c = pod.spec!.containers[0]!;
    expect(c.image).toBe(`${REGISTRY}/web@${D1}`);
    expect(c.command).toEqual(['/usr/bin/node', '/app/server.js']);
    expect(c.securityContext).toEqual({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(c.resources).toEqual({
      limits: { cpu: '500m', memory: '256Mi' },
      requests: { cpu: '500m', memory: '256Mi' },
    });
    expect(c.livenessProbe).toEqual({
      httpGet: { path: '/healthz', port: 'main' },
      periodSeconds: 2,
      timeoutSeconds: 1,
      failureThreshold: 4,
    });
    expect(c.startupProbe).toMatchObject({
      httpGet: { path: '/healthz' },
      periodSeconds: 1,
      failureThreshold: 90,
    });
    expect(c.env?.map((e) => e.name)).toEqual([
      'A_FIRST',
      'KILN_INSTANCE',
      'KILN_RELEASE',
      'KILN_SERVICE',
      'MODE',
      'PORT',
    ]);
    expect(c.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(pod.spec?.volumes).toEqual([{ name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } }]);
    expect(find<V1Service>(objects, 'Service', 'web').spec?.selector).toEqual({
      'app.kubernetes.io/name': 'web',
    });
  });

  it('maps tcp and exec checks to probes and a root image user to runAsNonRoot false', () => {
    const tcp = rendered(release('r1', D1));
    const c1 = find<V1Deployment>(tcp.objects, 'Deployment', 'web').spec!.template.spec!;
    expect(c1.containers[0]!.readinessProbe).toMatchObject({ tcpSocket: { port: 'main' } });
    const root = release('r2', D1, { health: { exec: ['/bin/check', '--quick'] } });
    const rooted = { ...root, process: { ...root.process, user: { uid: 0, gid: 0 } } };
    const pod = find<V1Deployment>(rendered(rooted).objects, 'Deployment', 'web').spec!.template.spec!;
    expect(pod.containers[0]!.livenessProbe).toMatchObject({ exec: { command: ['/bin/check', '--quick'] } });
    expect(pod.securityContext?.runAsNonRoot).toBe(false);
  });

  it('switches a blue/green Service by re-rendering with the other release', () => {
    const spec = { strategy: { type: 'bluegreen' as const } };
    const blue = rendered(release('r1', D1, spec));
    const green = rendered(release('r2', D2, spec));
    expect(green.objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual(['Deployment/web-r2']);
    expect(green.waitFor).toEqual(['web-r2']);
    const select = (x: typeof blue) => find<V1Service>(x.traffic, 'Service', 'web').spec?.selector;
    expect(select(blue)).toEqual({ 'app.kubernetes.io/name': 'web', 'kiln.dev/release': 'r1' });
    expect(select(green)).toEqual({ 'app.kubernetes.io/name': 'web', 'kiln.dev/release': 'r2' });
    const d = find<V1Deployment>(green.objects, 'Deployment', 'web-r2');
    expect(d.spec?.selector.matchLabels).toEqual({
      'app.kubernetes.io/name': 'web',
      'kiln.dev/release': 'r2',
    });
    expect(d.spec?.template.spec?.containers[0]!.image).toBe(`${REGISTRY}/web@${D2}`);
  });

  it('sizes a replica-ratio canary by the step weight, the canary first and the stable set after', () => {
    const canary = { strategy: { type: 'canary' as const, steps: [{ weight: 25 }] } };
    const r2 = release('r2', D2, { ...canary, replicas: 10 });
    const out = rendered(r2, { ...opts, canary: { stable: release('r1', D1, canary), weight: 25 } });
    expect(out.objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual(['Deployment/web-r2']);
    expect(out.traffic.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'Deployment/web-r1',
      'Service/web',
    ]);
    expect(find<V1Deployment>(out.objects, 'Deployment', 'web-r2').spec?.replicas).toBe(3);
    expect(find<V1Deployment>(out.traffic, 'Deployment', 'web-r1').spec?.replicas).toBe(7);
    expect(
      find<V1Deployment>(out.objects, 'Deployment', 'web-r2').metadata?.annotations?.['kiln.dev/weight'],
    ).toBe('30');
    expect(find<V1Service>(out.traffic, 'Service', 'web').spec?.selector).toEqual({
      'app.kubernetes.io/name': 'web',
    });
    // Promoted (weight 100): the stable release's Deployment is scaled to 0, after the Service.
    const done = rendered(r2, { ...opts, canary: { stable: release('r1', D1, canary), weight: 100 } });
    expect(find<V1Deployment>(done.objects, 'Deployment', 'web-r2').spec?.replicas).toBe(10);
    expect(done.traffic.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'Service/web',
      'Deployment/web-r1',
    ]);
    expect(find<V1Deployment>(done.traffic, 'Deployment', 'web-r1').spec?.replicas).toBe(0);
  });

  it.each([
    [10, 10, { stable: 9, canary: 1, weight: 10 }],
    [10, 25, { stable: 7, canary: 3, weight: 30 }],
    [1, 10, { stable: 1, canary: 1, weight: 50 }],
    [3, 50, { stable: 1, canary: 2, weight: 66.7 }],
    [4, 100, { stable: 0, canary: 4, weight: 100 }],
    [0, 20, { stable: 0, canary: 0, weight: 20 }],
  ])('replicaSplit(%i, %i)', (replicas, weight, split) => {
    expect(replicaSplit(replicas, weight)).toEqual(split);
  });

  it('splits a canary by a Gateway API HTTPRoute over a Service per release', () => {
    const canary = { strategy: { type: 'canary' as const, steps: [{ weight: 10 }] } };
    const out = rendered(release('r2', D2, canary), {
      ...opts,
      canary: { stable: release('r1', D1, canary), weight: 10 },
      gateway: { name: 'edge', namespace: 'infra' },
    });
    expect(allObjects(out).map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'Service/web-r1',
      'Service/web-r2',
      'Deployment/web-r1',
      'Deployment/web-r2',
      'HTTPRoute/web',
    ]);
    const route = find<HttpRoute>(out.traffic, 'HTTPRoute', 'web');
    expect(route.spec.parentRefs).toEqual([
      { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge', namespace: 'infra' },
    ]);
    expect(route.spec.rules[0]!.backendRefs.map((b) => [b.name, b.port, b.weight])).toEqual([
      ['web-r1', 8080, 90],
      ['web-r2', 8080, 10],
    ]);
    expect(find<V1Deployment>(out.objects, 'Deployment', 'web-r1').spec?.replicas).toBe(4);
    expect(find<V1Deployment>(out.objects, 'Deployment', 'web-r2').spec?.replicas).toBe(1);
    expect(find<V1Service>(out.objects, 'Service', 'web-r2').spec?.selector).toEqual({
      'app.kubernetes.io/name': 'web',
      'kiln.dev/release': 'r2',
    });
  });

  it('renders a stateful service as an ordered StatefulSet with a claim per volume and a headless Service', () => {
    const db = release('r5', D1, {
      name: 'db',
      image: 'redis',
      port: 6379,
      replicas: 3,
      kind: 'stateful',
      volumes: [{ name: 'data', path: '/var/lib/redis' }],
      config: {
        path: '/etc/redis',
        files: { 'redis.conf': 'appendonly yes\n', 'acl.conf': 'user default on\n' },
      },
      ready: { exec: ['redis-cli', 'ping'] },
    });
    const out = rendered(db, { ...opts, volumeSize: '5Gi' });
    expect(out.objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'ConfigMap/db-r5-config',
      'Service/db',
      'StatefulSet/db',
    ]);
    const set = find<V1StatefulSet>(out.objects, 'StatefulSet', 'db');
    expect(set.spec).toMatchObject({
      serviceName: 'db',
      replicas: 3,
      podManagementPolicy: 'OrderedReady',
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
    });
    expect(
      set.spec?.volumeClaimTemplates?.map((c) => [c.metadata?.name, c.spec?.resources?.requests]),
    ).toEqual([['data', { storage: '5Gi' }]]);
    const pod = set.spec!.template.spec!;
    expect(pod.securityContext?.fsGroup).toBe(1000);
    const c = pod.containers[0]!;
    expect(c.readinessProbe).toMatchObject({ exec: { command: ['redis-cli', 'ping'] } });
    expect(c.volumeMounts).toEqual([
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'config', mountPath: '/etc/redis', readOnly: true },
      { name: 'data', mountPath: '/var/lib/redis' },
    ]);
    const env = Object.fromEntries(
      (c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]),
    );
    expect(env.KILN_PEERS).toBe('db-0=db-0.db:6379,db-1=db-1.db:6379,db-2=db-2.db:6379');
    expect(env.KILN_ORDINAL).toBe("metadata.labels['apps.kubernetes.io/pod-index']");
    const headless = find<V1Service>(out.objects, 'Service', 'db');
    expect(headless.spec).toMatchObject({ clusterIP: 'None', selector: { 'app.kubernetes.io/name': 'db' } });
    const config = out.objects[0] as { immutable?: boolean; data?: Record<string, string> };
    expect(config.immutable).toBe(true);
    expect(Object.keys(config.data ?? {})).toEqual(['acl.conf', 'redis.conf']);
  });

  it('writes the same YAML for the same release, whatever order its env was declared in', () => {
    const a = release('r1', D1, { env: { B: '2', A: '1', ON: 'on' } });
    const b = release('r1', D1, { env: { ON: 'on', A: '1', B: '2' } });
    const text = toYaml(allObjects(renderRelease(a, opts)));
    expect(toYaml(allObjects(renderRelease(b, opts)))).toBe(text);
    expect(text.startsWith('---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n')).toBe(
      true,
    );
    // YAML 1.1 readers (kubectl) would take a bare `on` for true; it stays a quoted string.
    expect(text).toContain('value: "on"');
    const docs = parseAllDocuments(text, { version: '1.1' });
    expect(Array.isArray(docs) && docs.map((d) => (d.toJS() as K8sObject).kind)).toEqual([
      'Deployment',
      'Service',
    ]);
  });

  it('refuses what Kubernetes would refuse, naming each problem and its fix', () => {
    const byDigest = release('r1', D1, { image: D1 });
    const long = release('r1', D1, { name: `a${'b'.repeat(61)}` });
    const cases: [K8sRelease, RenderOptions, string][] = [
      [release('r1', D1), { registry: 'https://x' }, 'registry'],
      [byDigest, opts, 'repository'],
      [long, opts, 'service'],
      [release('r1', D1), { ...opts, gateway: { name: 'edge' } }, 'gateway'],
      [release('r1', D1), { ...opts, volumeSize: 'lots' }, 'volumeSize'],
      [release('r2', D2), { ...opts, canary: { stable: release('r1', D1), weight: 101 } }, 'canary.weight'],
    ];
    for (const [r, o, path] of cases) {
      const err = (() => {
        try {
          renderRelease(r, o);
        } catch (e) {
          return e;
        }
      })();
      expect(err, path).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).issues.map((i) => i.path)).toContain(path);
      expect((err as ValidationError).issues.every((i) => i.fix)).toBe(true);
    }
    expect(renderRelease(byDigest, { ...opts, repository: 'team/web' }).objects).toHaveLength(2);
  });

  it.each([
    [0.5, '500m'],
    [2, '2'],
    [0.0001, '1m'],
    [1.25, '1250m'],
  ])('cpuQuantity(%d) is %s', (cpus, quantity) => expect(cpuQuantity(cpus)).toBe(quantity));

  it.each([
    [256 * 1024 * 1024, '256Mi'],
    [1024 ** 3, '1Gi'],
    [1536, '1536'],
    [512_000_000, '500000Ki'],
    [1000, '1000'],
  ])('memoryQuantity(%d) is %s', (bytes, quantity) => expect(memoryQuantity(bytes)).toBe(quantity));
});

describe('the schema check itself', () => {
  const base = (): V1Deployment =>
    structuredClone(find<V1Deployment>(renderRelease(release('r1', D1), opts).objects, 'Deployment', 'web'));

  it('passes the rendered Deployment', () => {
    expect(schemaErrors(base())).toEqual([]);
  });

  it('rejects a wrong type, a missing required field and a misspelt field', () => {
    const wrongType = base() as unknown as { spec: { replicas: unknown } };
    wrongType.spec.replicas = 'three';
    expect(schemaErrors(wrongType)).toEqual(['[/spec/replicas] must be integer']);
    const missing = base();
    delete (missing.spec!.template.spec!.containers[0] as { name?: string }).name;
    expect(schemaErrors(missing)).toEqual([
      '[/spec/template/spec/containers/0] must have required property name',
    ]);
    const misspelt = base();
    (
      misspelt.spec!.template.spec!.containers[0]!.securityContext as Record<string, unknown>
    ).readOnlyRootFileSystem = true;
    expect(schemaErrors(misspelt)).toEqual([
      '[/spec/template/spec/containers/0/securityContext/readOnlyRootFileSystem] is not a field of V1SecurityContext',
    ]);
  });

  it('rejects an HTTPRoute with a negative weight, and a kind it has no schema for', () => {
    const route = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web' },
      spec: { rules: [{ backendRefs: [{ name: 'web-r1', port: 8080, weight: -1 }] }] },
    };
    expect(schemaErrors(route)).toEqual(['[/spec/rules/0/backendRefs/0/weight] must be >= 0']);
    expect(schemaErrors({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x' } })).toEqual([
      '[] no schema here for v1/Secret',
    ]);
  });
});
