/**
 * Fixtures for the k8s context's tests (not built):
 * - `schemaErrors`: an object checked against the Kubernetes v1.33.0 OpenAPI schemas as the
 *   kubernetes-models package ships them (ajv-compiled validators; Gateway API v1.0.0 CRD
 *   schemas from @kubernetes-models/gateway-api), plus a strict pass, as kubeconform's `-strict`,
 *   refusing any field the Kubernetes v1.34.0 models of @kubernetes/client-node do not know;
 * - `FakeApiServer`: a Kubernetes API server on loopback that answers discovery, server-side
 *   apply and reads as a real one does, and records every request.
 */
import { createServer as createHttps } from 'node:https';
import {
  createServer as createHttp,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { serviceSchema, type ServiceInput } from '../spec/index.js';
import type { K8sRelease } from './types.js';

/**
 * A release of service `web` (image `web`, port 8080, 4 replicas, process `/usr/bin/node
 * /app/server.js` as uid 1000) with `input` over the service's spec, every default filled in.
 */
export function release(name: string, digest: string, input: Partial<ServiceInput> = {}): K8sRelease {
  return {
    name,
    digest,
    configHash: `sha256:${'c'.repeat(64)}`,
    service: serviceSchema.parse({ name: 'web', image: 'web', port: 8080, replicas: 4, ...input }),
    process: { args: ['/usr/bin/node', '/app/server.js'], cwd: '/app', user: { uid: 1000, gid: 1000 } },
  };
}

/** The Kubernetes version whose schemas `schemaErrors` checks against (kubernetes-models 4.5.1). */
export const SCHEMA_KUBERNETES_VERSION = 'v1.33.0';

interface Validatable {
  validate(): void;
}
const MODELS: Record<string, { model: new (data: never) => Validatable; type?: string }> = {
  'v1/ConfigMap': { model: ConfigMap as never, type: 'V1ConfigMap' },
  'v1/Service': { model: Service as never, type: 'V1Service' },
  'apps/v1/Deployment': { model: Deployment as never, type: 'V1Deployment' },
  'apps/v1/StatefulSet': { model: StatefulSet as never, type: 'V1StatefulSet' },
  'gateway.networking.k8s.io/v1/HTTPRoute': { model: HTTPRoute as never },
};

/**
 * Every way `object` breaks the schema of its kind, as `[path] message`; empty when it is valid.
 * An object of a kind with no schema here is an error, so a test cannot pass by rendering
 * something nobody checks.
 */
export function schemaErrors(object: unknown): string[] {
  const o = object as { apiVersion?: string; kind?: string };
  const entry = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!entry) return [`[] no schema here for ${o.apiVersion}/${o.kind}`];
  const errors: string[] = [];
  try {
    new entry.model(structuredClone(object) as never).validate();
  } catch (err) {
    const list = (err as { errors?: { instancePath: string; message?: string }[] }).errors;
    if (!list) throw err;
    errors.push(...list.map((e) => `[${e.instancePath}] ${e.message ?? 'invalid'}`));
  }
  if (entry.type) errors.push(...unknownFields(object, entry.type, ''));
  return errors;
}

type AttributeMap = { name: string; baseName: string; type: string }[];

function attributesOf(type: string): AttributeMap | undefined {
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttributeMap }>)[type];
  return model?.getAttributeTypeMap?.();
}

/** Fields of `value` that its client-node model `type` does not declare, recursively. */
function unknownFields(value: unknown, type: string, at: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${at}/${i}`)) : [];
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    return Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1]!, `${at}/${k}`));
  }
  const attributes = attributesOf(type);
  if (!attributes || typeof value !== 'object') return [];
  const known = new Map(attributes.map((a) => [a.baseName, a.type]));
  return Object.entries(value as object).flatMap(([k, v]) => {
    const t = known.get(k);
    return t === undefined ? [`[${at}/${k}] is not a field of ${type}`] : unknownFields(v, t, `${at}/${k}`);
  });
}

/** One request the fake API server received. */
export interface RecordedRequest {
  readonly method: string;
  /** Path and query, as sent. */
  readonly url: string;
  readonly contentType?: string;
  readonly authorization?: string;
  /** The parsed JSON body, when there was one. */
  readonly body?: Record<string, unknown>;
}

const DISCOVERY: Record<string, { groupVersion: string; resources: [string, string][] }> = {
  '/api/v1': {
    groupVersion: 'v1',
    resources: [
      ['configmaps', 'ConfigMap'],
      ['services', 'Service'],
    ],
  },
  '/apis/apps/v1': {
    groupVersion: 'apps/v1',
    resources: [
      ['deployments', 'Deployment'],
      ['statefulsets', 'StatefulSet'],
    ],
  },
  '/apis/gateway.networking.k8s.io/v1': {
    groupVersion: 'gateway.networking.k8s.io/v1',
    resources: [['httproutes', 'HTTPRoute']],
  },
};

/** Options for `startFakeApiServer`. */
export interface FakeApiOptions {
  /** Serve HTTPS with this certificate and key (PEM); plain HTTP without. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** The bearer token every request must carry. @default "fake-token" */
  readonly token?: string;
  /** How many reads of a Deployment answer "not available yet" before one answers available. @default 0 */
  readonly notReadyReads?: number;
  /** Answer a server-side apply of this `Kind/name` with 422 Unprocessable Entity. */
  readonly refuse?: string;
}

/** A fake API server: its URL, what it received, and what it now stores. */
export interface FakeApiServer {
  readonly url: string;
  readonly token: string;
  readonly requests: RecordedRequest[];
  /** Applied objects by `namespace/plural/name`. */
  readonly objects: Map<string, Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * Starts a fake Kubernetes API server on 127.0.0.1 (port 0). It answers discovery for the groups
 * kiln renders, a server-side apply (`PATCH` with `application/apply-patch+yaml`, `fieldManager`
 * and `force`) by storing the object with a generation, and a `GET` of a stored Deployment with
 * a status that becomes available after `notReadyReads` reads. Anything else is 404, 401 without
 * the token, 415 for another patch type.
 */
export async function startFakeApiServer(options: FakeApiOptions = {}): Promise<FakeApiServer> {
  const token = options.token ?? 'fake-token';
  const requests: RecordedRequest[] = [];
  const objects = new Map<string, Record<string, unknown>>();
  const reads = new Map<string, number>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        ...(body ? { body } : {}),
      });
      const send = (status: number, value: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      };
      const status = (code: number, message: string): void =>
        send(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code });
      if (req.headers.authorization !== `Bearer ${token}`) return status(401, 'Unauthorized');
      const url = new URL(req.url ?? '/', 'http://fake');
      const discovery = DISCOVERY[url.pathname];
      if (req.method === 'GET' && discovery) {
        return send(200, {
          kind: 'APIResourceList',
          apiVersion: 'v1',
          groupVersion: discovery.groupVersion,
          resources: discovery.resources.map(([name, kind]) => ({
            name,
            singularName: kind.toLowerCase(),
            namespaced: true,
            kind,
            verbs: ['create', 'delete', 'get', 'list', 'patch', 'update'],
          })),
        });
      }
      const m = /^\/apis?\/(?:[^/]+\/)?v1\/namespaces\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
      if (!m) return status(404, `no route ${url.pathname}`);
      const key = `${m[1]}/${m[2]}/${m[3]}`;
      if (req.method === 'PATCH') {
        if (req.headers['content-type'] !== 'application/apply-patch+yaml')
          return status(415, 'not an apply');
        if (!url.searchParams.get('fieldManager')) return status(422, 'fieldManager is required for apply');
        if (options.refuse === `${String(body?.kind)}/${m[3]}`) return status(422, `${m[3]} is invalid`);
        const generation = ((objects.get(key)?.metadata as { generation?: number })?.generation ?? 0) + 1;
        const stored = { ...body, metadata: { ...(body?.metadata as object), generation } };
        objects.set(key, stored);
        return send(200, stored);
      }
      if (req.method === 'GET' && objects.has(key)) {
        const stored = objects.get(key)!;
        const n = (reads.get(key) ?? 0) + 1;
        reads.set(key, n);
        const wanted = (stored.spec as { replicas?: number }).replicas ?? 1;
        const ready = n > (options.notReadyReads ?? 0);
        const generation = (stored.metadata as { generation: number }).generation;
        return send(200, {
          ...stored,
          status: {
            observedGeneration: generation,
            replicas: wanted,
            updatedReplicas: ready ? wanted : 0,
            availableReplicas: ready ? wanted : 0,
          },
        });
      }
      return status(404, `${key} not found`);
    });
  };
  const server: Server = options.tls ? createHttps(options.tls, handler) : createHttp(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    token,
    requests,
    objects,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A kubeconfig for `server`: context `fake` with namespace `ns`, and the server's CA when HTTPS. */
export function kubeconfigFor(server: FakeApiServer, ca?: string | Buffer): string {
  const cluster = ca
    ? `certificate-authority-data: ${Buffer.from(ca).toString('base64')}`
    : 'insecure-skip-tls-verify: true';
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: fake`,
    `  cluster: {server: "${server.url}", ${cluster}}`,
    'users:',
    `- name: kiln`,
    `  user: {token: ${server.token}}`,
    'contexts:',
    '- name: fake',
    '  context: {cluster: fake, user: kiln, namespace: ns}',
    'current-context: fake',
    '',
  ].join('\n');
}
