import { describe, expect, it } from 'vitest';

import { ValidationError } from '../../errors/index.js';
import type { InstanceSpec } from '../driver.js';
import { demux, parseEngineUrl, registryAuthHeader } from './engine.js';
import {
  instanceOf,
  isoMillis,
  nodeAddress,
  observe,
  serviceSpecOf,
  swarmIssues,
  type SwarmNode,
  type SwarmService,
  type SwarmTask,
  type TaskState,
} from './service-spec.js';

const DIGEST = `sha256:${'ab'.repeat(32)}` as const;
const SPEC: InstanceSpec = {
  id: 'web-r3-7f2c',
  service: 'web',
  release: 'r3',
  digest: DIGEST,
  args: ['node', 'server.js'],
  env: { GREETING: 'hi' },
  port: 20_001,
  labels: { 'kiln.role': 'canary' },
};
const IMAGE = `10.0.0.1:5000/kiln/web@${DIGEST}`;

function serviceOf(spec: InstanceSpec): SwarmService {
  const body = serviceSpecOf(spec, { image: IMAGE, scope: 'p1', stopGraceMs: 5_000 });
  return {
    ID: 'svc1',
    Version: { Index: 7 },
    CreatedAt: '2030-01-02T03:04:05.123456789Z',
    Spec: body as unknown as SwarmService['Spec'],
  };
}

const NODES = new Map<string, SwarmNode>([
  ['n1', { ID: 'n1', Description: { Hostname: 'a' }, Status: { State: 'ready', Addr: '10.0.0.11' } }],
  ['n2', { ID: 'n2', Status: { State: 'down', Addr: '10.0.0.12' } }],
  [
    'n3',
    { ID: 'n3', Status: { State: 'ready', Addr: '0.0.0.0' }, ManagerStatus: { Addr: '10.0.0.13:2377' } },
  ],
]);

function task(state: TaskState, extra: Partial<SwarmTask> & { exit?: number; err?: string } = {}): SwarmTask {
  return {
    ID: `t-${state}`,
    ServiceID: 'svc1',
    NodeID: 'n1',
    CreatedAt: '2030-01-02T03:04:06Z',
    DesiredState: 'running',
    ...extra,
    Status: {
      State: state,
      ...(extra.err ? { Err: extra.err } : {}),
      ContainerStatus: { ContainerID: 'c1', PID: state === 'running' ? 4242 : 0, ExitCode: extra.exit ?? 0 },
    },
  };
}

describe('serviceSpecOf', () => {
  it('pins the image, keeps the root read-only, limits, labels and publishes the port in host mode', () => {
    const body = serviceSpecOf(
      { ...SPEC, cpus: 0.25, memoryBytes: 1 << 26, user: { uid: 1000, gid: 1000 }, cwd: '/app' },
      { image: IMAGE, scope: 'p1', stopGraceMs: 5_000 },
    );
    expect(body.Name).toBe('web-r3-7f2c');
    expect(body.TaskTemplate.ContainerSpec).toMatchObject({
      Image: IMAGE,
      Command: ['node', 'server.js'],
      Env: ['GREETING=hi', 'PORT=20001'],
      User: '1000:1000',
      Dir: '/app',
      ReadOnly: true,
      StopGracePeriod: 5_000_000_000,
    });
    expect(body.TaskTemplate.Resources.Limits).toEqual({ NanoCPUs: 250_000_000, MemoryBytes: 1 << 26 });
    expect(body.Labels).toMatchObject({
      'kiln.instance': SPEC.id,
      'kiln.service': 'web',
      'kiln.release': 'r3',
      'kiln.scope': 'p1',
    });
    expect(body.EndpointSpec).toEqual({
      Mode: 'dnsrr',
      Ports: [{ Protocol: 'tcp', TargetPort: 20_001, PublishedPort: 20_001, PublishMode: 'host' }],
    });
  });

  it('refuses an image not pinned to the instance digest', () => {
    expect(() =>
      serviceSpecOf(SPEC, { image: '10.0.0.1:5000/kiln/web:latest', scope: 'p1', stopGraceMs: 1 }),
    ).toThrow(ValidationError);
  });

  it('names what Swarm cannot run: dotted or long ids, host mounts', () => {
    expect(swarmIssues(SPEC)).toEqual([]);
    expect(swarmIssues({ ...SPEC, id: 'web.r3' }).map((i) => i.path)).toEqual(['id']);
    expect(swarmIssues({ ...SPEC, id: 'a'.repeat(64) }).map((i) => i.path)).toEqual(['id']);
    expect(
      swarmIssues({ ...SPEC, mounts: [{ source: '/a', destination: '/b' }] }).map((i) => i.path),
    ).toEqual(['mounts']);
  });

  it('rebuilds the instance from the labels, with exactly its own labels', () => {
    expect(instanceOf(serviceOf(SPEC))).toMatchObject({
      id: SPEC.id,
      service: 'web',
      release: 'r3',
      digest: DIGEST,
      port: 20_001,
      labels: { 'kiln.role': 'canary' },
    });
    const foreign = serviceOf(SPEC);
    expect(instanceOf({ ...foreign, Spec: { ...foreign.Spec, Name: 'other' } })).toBeUndefined();
  });
});

describe('observe', () => {
  const cases: [string, SwarmTask[], object][] = [
    ['no task yet: created', [], { state: 'created' }],
    ['pending: created', [task('pending')], { state: 'created', host: '10.0.0.11' }],
    ['running: pid and host', [task('running')], { state: 'running', pid: 4242, host: '10.0.0.11' }],
    ['failed: exit code', [task('failed', { exit: 7 })], { state: 'exited', exitCode: 7 }],
    ['on a down node: unknown', [task('running', { NodeID: 'n2' })], { state: 'unknown', host: '10.0.0.12' }],
    [
      'manager address when Addr is 0.0.0.0',
      [task('running', { NodeID: 'n3' })],
      { state: 'running', host: '10.0.0.13' },
    ],
    [
      'the task Swarm means to run wins over an older one that ended',
      [
        task('failed', { ID: 'old', CreatedAt: '2030-01-02T03:04:07Z', DesiredState: 'shutdown' }),
        task('running', { ID: 'new' }),
      ],
      { state: 'running' },
    ],
  ];
  it.each(cases)('%s', (_name, tasks, expected) => {
    const { status } = observe(SPEC, serviceOf(SPEC), tasks, NODES);
    expect(status).toMatchObject({ id: SPEC.id, startedAt: '2030-01-02T03:04:05.123Z', ...expected });
  });

  it('marks a task on a lost node as lost, and one that never ran as failed to start', () => {
    expect(observe(SPEC, serviceOf(SPEC), [task('running', { NodeID: 'n2' })], NODES).lost).toBe(true);
    expect(observe(SPEC, serviceOf(SPEC), [task('running')], NODES).lost).toBe(false);
    const rejected = observe(SPEC, serviceOf(SPEC), [task('rejected', { err: 'No such image: x' })], NODES);
    expect(rejected.failedToStart).toBe('No such image: x');
  });
});

describe('engine helpers', () => {
  it('parses the engine addresses a target may give, refusing others', () => {
    expect(parseEngineUrl('unix:///run/docker.sock')).toEqual({ socketPath: '/run/docker.sock' });
    expect(parseEngineUrl('tcp://10.0.0.1:2375')).toEqual({ host: '10.0.0.1', port: 2375 });
    expect(() => parseEngineUrl('http://10.0.0.1:2375')).toThrow(ValidationError);
    expect(() => parseEngineUrl('tcp://host:99999')).toThrow(ValidationError);
  });

  it('splits the multiplexed stream by frame, keeping their order', () => {
    const frame = (stream: number, text: string) => {
      const payload = Buffer.from(text);
      const header = Buffer.alloc(8);
      header[0] = stream;
      header.writeUInt32BE(payload.length, 4);
      return Buffer.concat([header, payload]);
    };
    const out = demux(Buffer.concat([frame(1, 'a\n'), frame(2, 'err\n'), frame(1, 'b\n')]));
    expect(out).toEqual({ stdout: 'a\nb\n', stderr: 'err\n', both: 'a\nerr\nb\n' });
    expect(demux(Buffer.from('plain tty text\n')).stdout).toBe('plain tty text\n');
  });

  it('encodes registry credentials as the engine decodes them: padded base64url JSON naming the registry', () => {
    // This password's JSON makes a `/` in standard base64, and two `=` of padding.
    const header = registryAuthHeader('kiln', 'p?>~x', '10.0.0.1:5000/kiln/web@sha256:abc');
    expect(header).toMatch(/^[A-Za-z0-9_-]+==$/);
    expect(header.length % 4).toBe(0);
    expect(JSON.parse(Buffer.from(header, 'base64url').toString('utf8'))).toEqual({
      username: 'kiln',
      password: 'p?>~x',
      serveraddress: '10.0.0.1:5000',
    });
  });

  it('writes nanosecond times as millisecond ISO, and finds node addresses', () => {
    expect(isoMillis('2030-01-02T03:04:05.987654321Z')).toBe('2030-01-02T03:04:05.987Z');
    expect(nodeAddress(NODES.get('n3'))).toBe('10.0.0.13');
    expect(nodeAddress(undefined)).toBeUndefined();
  });
});
