/**
 * The swarm driver's pure half: an {@link InstanceSpec} as the Swarm service that runs it, and a
 * service with its tasks and the swarm's nodes as the {@link InstanceStatus} kiln sees. One
 * instance is one service with one replica (docs/swarm.md says why), named by the instance id.
 */
import { ValidationError, type ValidationIssue } from '../../errors/index.js';
import type { Digest } from '../../oci/index.js';
import {
  INSTANCE_ID_PATTERN,
  processOf,
  statusOf,
  validateInstanceSpec,
  type InstanceSpec,
  type InstanceState,
  type InstanceStatus,
} from '../driver.js';
import { DEFAULT_TMP_SIZE_BYTES } from '../spec.js';

/** Labels the driver puts on every service (and its containers). */
export const LABELS = {
  instance: 'kiln.instance',
  service: 'kiln.service',
  release: 'kiln.release',
  digest: 'kiln.digest',
  port: 'kiln.port',
  /** Which kiln control plane owns the service: its drivers list only their own scope. */
  scope: 'kiln.scope',
  /** The instance spec's own labels as JSON, so `list` reports exactly those. */
  specLabels: 'kiln.swarm.labels',
} as const;

/** Swarm names services like DNS labels: letters and digits, `-` or `_` between them, at most 63. */
export const SWARM_NAME_RE = /^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/;
const SWARM_NAME_MAX = 63;

/** A Swarm service as `GET /services` answers (the fields kiln reads). */
export interface SwarmService {
  readonly ID: string;
  readonly Version: { readonly Index: number };
  readonly CreatedAt: string;
  readonly Spec: {
    readonly Name: string;
    readonly Labels?: Readonly<Record<string, string>>;
    readonly TaskTemplate: { readonly ForceUpdate?: number } & Record<string, unknown>;
  } & Record<string, unknown>;
}

/** Swarm's task states, in the order a task moves through them. */
export type TaskState =
  | 'new' | 'allocated' | 'pending' | 'assigned' | 'accepted' | 'preparing' | 'ready' | 'starting'
  | 'running' | 'complete' | 'shutdown' | 'failed' | 'rejected' | 'remove' | 'orphaned'; // prettier-ignore

const BEFORE_RUNNING: ReadonlySet<TaskState> = new Set([
  'new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting',
]); // prettier-ignore

/** A task as `GET /tasks` answers (the fields kiln reads). */
export interface SwarmTask {
  readonly ID: string;
  readonly ServiceID: string;
  readonly NodeID?: string;
  readonly CreatedAt: string;
  readonly DesiredState: TaskState;
  readonly Status: {
    readonly Timestamp?: string;
    readonly State: TaskState;
    readonly Message?: string;
    readonly Err?: string;
    readonly ContainerStatus?: {
      readonly ContainerID?: string;
      readonly PID?: number;
      readonly ExitCode?: number;
    };
  };
}

/** A node as `GET /nodes` answers (the fields kiln reads). */
export interface SwarmNode {
  readonly ID: string;
  readonly Description?: { readonly Hostname?: string };
  readonly Status: { readonly State: string; readonly Addr?: string };
  readonly ManagerStatus?: { readonly Addr?: string };
}

/** The fields of a service spec that kiln sets and its tests read. */
export interface ServiceSpecJson {
  readonly Name: string;
  readonly Labels: Readonly<Record<string, string>>;
  readonly TaskTemplate: {
    readonly ContainerSpec: {
      readonly Image: string;
      readonly ReadOnly: boolean;
      readonly Healthcheck?: { readonly Test: readonly string[] } & Readonly<Record<string, unknown>>;
    } & Readonly<Record<string, unknown>>;
    readonly Resources: { readonly Limits: { readonly NanoCPUs?: number; readonly MemoryBytes?: number } };
    readonly RestartPolicy: { readonly Condition: string };
  };
  readonly Mode: unknown;
  readonly EndpointSpec: unknown;
}

/** What the driver needs besides the instance spec to make its service. */
export interface ServiceSpecOptions {
  /** The image by digest in a registry the nodes pull from, such as `10.0.0.1:5000/kiln/web@sha256:…`. */
  readonly image: string;
  readonly scope: string;
  /** What Swarm waits after SIGTERM when it stops the task itself (service removed). */
  readonly stopGraceMs: number;
}

/** The problems of `spec` that Swarm refuses or the driver cannot honour, beside the common checks. */
export function swarmIssues(spec: InstanceSpec): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (typeof spec.id === 'string' && (!SWARM_NAME_RE.test(spec.id) || spec.id.length > SWARM_NAME_MAX)) {
    issues.push({
      path: 'id',
      message: `'${spec.id}' cannot name a Swarm service`,
      fix: 'use at most 63 letters and digits with single - or _ between them, such as web-r3-7f2c',
    });
  }
  if ((spec.mounts ?? []).length > 0) {
    issues.push({
      path: 'mounts',
      message: 'host paths cannot be bound into a Swarm service: the instance may run on any node',
      fix: 'run stateful services (volumes, config files) on a local target',
    });
  }
  return issues;
}

/** The `POST /services/create` body for `spec`. Throws a ValidationError for a bad image reference. */
export function serviceSpecOf(spec: InstanceSpec, options: ServiceSpecOptions): ServiceSpecJson {
  if (!options.image.endsWith(`@${spec.digest}`)) {
    throw new ValidationError(undefined, [
      {
        path: 'image',
        message: `"${options.image}" is not pinned to ${spec.digest}`,
        fix: 'give REGISTRY/REPO@<the instance digest>',
      },
    ]);
  }
  const proc = processOf(spec);
  const labels: Record<string, string> = {
    ...(spec.labels ?? {}),
    [LABELS.instance]: spec.id,
    [LABELS.service]: spec.service,
    [LABELS.release]: spec.release,
    [LABELS.digest]: spec.digest,
    [LABELS.port]: String(spec.port),
    [LABELS.scope]: options.scope,
    [LABELS.specLabels]: JSON.stringify(spec.labels ?? {}),
  };
  const check = spec.healthCheck;
  return {
    Name: spec.id,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: options.image,
        Command: [...proc.args],
        Env: Object.entries(proc.env).map(([k, v]) => `${k}=${v}`),
        ...(proc.cwd === undefined ? {} : { Dir: proc.cwd }),
        ...(proc.user === undefined ? {} : { User: `${proc.user.uid}:${proc.user.gid}` }),
        Labels: labels,
        ReadOnly: true,
        // docker-init (tini) as PID 1, as the local driver runs tini: SIGTERM reaches the process.
        Init: true,
        Mounts: [{ Type: 'tmpfs', Target: '/tmp', TmpfsOptions: { SizeBytes: DEFAULT_TMP_SIZE_BYTES } }],
        StopSignal: 'SIGTERM',
        StopGracePeriod: options.stopGraceMs * 1_000_000,
        ...(check === undefined
          ? {}
          : {
              Healthcheck: {
                Test: ['CMD', ...check.args],
                Interval: check.intervalMs * 1_000_000,
                Timeout: check.timeoutMs * 1_000_000,
                Retries: check.retries,
              },
            }),
      },
      Resources: {
        Limits: {
          ...(proc.cpus === undefined ? {} : { NanoCPUs: Math.round(proc.cpus * 1e9) }),
          ...(proc.memoryBytes === undefined ? {} : { MemoryBytes: proc.memoryBytes }),
        },
      },
      // An exit is an exit: kiln sees it and replaces the instance (docs/swarm.md, node loss).
      RestartPolicy: { Condition: 'none' },
    },
    Mode: { Replicated: { Replicas: 1 } },
    // No IPVS on every kernel: DNS round robin, and the port published on the node it runs on.
    EndpointSpec: {
      Mode: 'dnsrr',
      Ports: [{ Protocol: 'tcp', TargetPort: spec.port, PublishedPort: spec.port, PublishMode: 'host' }],
    },
  };
}

/** The instance a service runs, rebuilt from its labels; undefined for a service that is not kiln's. */
export function instanceOf(service: SwarmService): InstanceSpec | undefined {
  const labels = service.Spec.Labels ?? {};
  const id = labels[LABELS.instance];
  const port = Number(labels[LABELS.port]);
  if (id !== service.Spec.Name || !Number.isInteger(port)) return undefined;
  let own: Record<string, string> = {};
  try {
    own = JSON.parse(labels[LABELS.specLabels] ?? '{}') as Record<string, string>;
  } catch {
    // a label edited by hand: report none rather than fail the whole list
  }
  return {
    id,
    service: labels[LABELS.service] ?? '',
    release: labels[LABELS.release] ?? '',
    digest: (labels[LABELS.digest] ?? '') as Digest,
    args: [],
    env: {},
    port,
    labels: own,
  };
}

/** What one service's tasks say of its instance. */
export interface Observed {
  readonly status: InstanceStatus;
  /** The task that is the instance now (the one Swarm means to run, else the newest). */
  readonly task?: SwarmTask;
  /** Its task runs (or was about to) on a node that is down: it needs placing elsewhere. */
  readonly lost: boolean;
  /** Why its task never ran (rejected, or its process could not be started). */
  readonly failedToStart?: string;
}

/** The current task of a service among `tasks` (which may hold other services' tasks). */
export function currentTask(service: SwarmService, tasks: readonly SwarmTask[]): SwarmTask | undefined {
  const own = tasks.filter((t) => t.ServiceID === service.ID);
  const rank = (t: SwarmTask) => (BEFORE_RUNNING.has(t.DesiredState) || t.DesiredState === 'running' ? 1 : 0);
  return own.sort((a, b) => rank(b) - rank(a) || b.CreatedAt.localeCompare(a.CreatedAt))[0];
}

/** The address kiln reaches a node at: its advertised address, else its manager address's host. */
export function nodeAddress(node: SwarmNode | undefined): string | undefined {
  const addr = node?.Status.Addr;
  if (addr && addr !== '0.0.0.0') return addr;
  const manager = node?.ManagerStatus?.Addr;
  return manager ? manager.replace(/:\d+$/, '').replace(/^\[|\]$/g, '') : undefined;
}

/** The instance `service` runs, as its current task and that task's node say. */
export function observe(
  spec: InstanceSpec,
  service: SwarmService,
  tasks: readonly SwarmTask[],
  nodes: ReadonlyMap<string, SwarmNode>,
): Observed {
  const startedAt = isoMillis(service.CreatedAt);
  const task = currentTask(service, tasks);
  if (task === undefined) return { status: statusOf(spec, 'created', { startedAt }), lost: false };
  const node = task.NodeID ? nodes.get(task.NodeID) : undefined;
  const host = nodeAddress(node);
  const state = task.Status.State;
  const nodeDown = task.NodeID !== undefined && task.NodeID !== '' && node?.Status.State !== 'ready';
  const live = state === 'running' || BEFORE_RUNNING.has(state);
  const with_ = (s: InstanceState, extra: { pid?: number; exitCode?: number } = {}) =>
    statusOf(spec, s, { ...extra, startedAt, host });
  if (live && nodeDown) return { status: with_('unknown'), task, lost: true };
  if (state === 'running') {
    const pid = task.Status.ContainerStatus?.PID;
    return { status: with_('running', pid ? { pid } : {}), task, lost: false };
  }
  if (live) return { status: with_('created'), task, lost: false };
  const container = task.Status.ContainerStatus;
  const failedToStart =
    state === 'rejected' || /starting container failed/i.test(task.Status.Err ?? '')
      ? `${task.Status.Err ?? task.Status.Message ?? state}`
      : undefined;
  const exitCode = container?.ContainerID ? container.ExitCode : undefined;
  return {
    status: with_('exited', exitCode === undefined ? {} : { exitCode }),
    task,
    lost: false,
    ...(failedToStart ? { failedToStart } : {}),
  };
}

/** An RFC 3339 time with nanoseconds (as the engine writes it) in JavaScript's millisecond ISO form. */
export function isoMillis(time: string): string {
  const trimmed = time.replace(/(\.\d{3})\d+/, '$1');
  const date = new Date(trimmed);
  return Number.isNaN(date.getTime()) ? time : date.toISOString();
}

/** The common checks and Swarm's own, every issue at once. */
export function validateSwarmSpec(spec: InstanceSpec): void {
  let issues: readonly { path: string; message: string; fix?: string }[] = [];
  try {
    validateInstanceSpec(spec);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    issues = err.issues;
  }
  // An id the common check refused is not reported twice.
  const own = swarmIssues(spec).filter((i) => !(i.path === 'id' && !INSTANCE_ID_PATTERN.test(spec.id)));
  if (issues.length + own.length > 0) throw new ValidationError(`instance ${spec.id}`, [...issues, ...own]);
}
