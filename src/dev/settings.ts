/**
 * The pure parts of the dev loop: which port a dev instance listens on, and the instance spec it
 * is started from. A dev instance is marked (`KILN_DEV=1`, label `kiln.dev=true`, release `dev`)
 * and has no release of the control plane: nothing routes it and nothing can promote it.
 */
import { ValidationError } from '../errors/index.js';
import type { Digest, ImageConfig } from '../oci/index.js';
import { processFromImage, type BindMount, type InstanceSpec } from '../runtime/index.js';
import type { ServiceSpec } from '../spec/index.js';

/** A dev instance listens on the service's port plus this, unless `--port` says otherwise. */
export const DEV_PORT_OFFSET = 10_000;

/** The fleet's instance ports (its `DEFAULT_PORT_RANGE`), which a dev port must stay out of. */
export const INSTANCE_PORTS = { from: 20_000, to: 29_999 } as const;

/** The `release` a dev instance reports: it belongs to no release. */
export const DEV_RELEASE = 'dev';

/** The label every dev instance carries. */
export const DEV_LABEL = 'kiln.dev';

/**
 * The port a dev instance of `service` listens on: `requested` (`--port`), else the service's port
 * + {@link DEV_PORT_OFFSET}. Refused when it is a port the router serves a service of the stack on
 * (a stateful service's identities included), in the fleet's instance range, or past 65535.
 */
export function devPort(service: ServiceSpec, services: readonly ServiceSpec[], requested?: number): number {
  const port = requested ?? service.port + DEV_PORT_OFFSET;
  const flag = requested === undefined ? `the default (port ${service.port} + ${DEV_PORT_OFFSET})` : '--port';
  const fix = 'choose another with --port N (1-65535, outside 20000-29999 and the services’ ports)';
  const refuse = (message: string): never => {
    throw new ValidationError(undefined, [{ path: '--port', message: `${flag}: ${message}`, fix }]);
  };
  if (!Number.isInteger(port) || port < 1 || port > 65535) refuse(`${port} is not a port`);
  if (port >= INSTANCE_PORTS.from && port <= INSTANCE_PORTS.to)
    refuse(`${port} is in the range kiln gives instances (${INSTANCE_PORTS.from}-${INSTANCE_PORTS.to})`);
  for (const s of services) {
    const last = s.port + (s.kind === 'stateful' ? Math.max(0, s.replicas - 1) : 0);
    if (port >= s.port && port <= last) refuse(`${port} is where service ${s.name} is served`);
  }
  return port;
}

/** What {@link devInstanceSpec} builds a spec from. */
export interface DevInstanceInput {
  readonly id: string;
  readonly service: ServiceSpec;
  /** The base image's digest (the rootfs the instance runs). */
  readonly digest: Digest;
  /** The app image's configuration (entrypoint, cmd, env, user, working directory). */
  readonly config: ImageConfig;
  readonly port: number;
  /** The app folder's mount, and any the root needs. */
  readonly mounts: readonly BindMount[];
}

/**
 * The instance spec of a dev instance: the app image's process, its env under the service's, then
 * `PORT`, `KILN_DEV=1`, `KILN_SERVICE` and `KILN_INSTANCE` (no `KILN_RELEASE`: it has none); the service's
 * memory limit, but no CPU limit, so a restart is not slowed by throttling.
 */
export function devInstanceSpec(input: DevInstanceInput): InstanceSpec {
  const proc = processFromImage(input.config);
  const { service } = input;
  return {
    id: input.id,
    service: service.name,
    release: DEV_RELEASE,
    digest: input.digest,
    args: proc.args,
    env: {
      ...proc.env,
      ...service.env,
      PORT: String(input.port),
      KILN_DEV: '1',
      KILN_SERVICE: service.name,
      KILN_INSTANCE: input.id,
    },
    ...(proc.cwd === undefined ? {} : { cwd: proc.cwd }),
    ...(proc.user === undefined ? {} : { user: proc.user }),
    port: input.port,
    ...(service.resources.memory === undefined ? {} : { memoryBytes: service.resources.memory }),
    mounts: input.mounts,
    labels: { [DEV_LABEL]: 'true', 'kiln.service': service.name },
  };
}

/** The id of the `n`th instance of a dev session: `dev-<service>-<session>-<n>`. */
export function devInstanceId(service: string, session: string, n: number): string {
  return `dev-${service}-${session}-${n}`;
}

/** What a dev service declares that a dev instance does not have, for a warning. */
export function serviceOmissions(service: ServiceSpec): string[] {
  const out: string[] = [];
  if (service.volumes.length > 0)
    out.push(`the service's volumes (${service.volumes.map((v) => v.name).join(', ')}) are not mounted`);
  if (service.config !== undefined)
    out.push(`the service's config files (${service.config.path}) are not mounted`);
  if (service.resources.cpus !== undefined)
    out.push(`the CPU limit (${service.resources.cpus}) is not applied, so restarts are not throttled`);
  return out;
}
