/** The swarm driver's options and defaults. */
import type { Digest } from '../../oci/index.js';
import type { InstanceSpec } from '../driver.js';
import type { EngineTls } from './engine.js';

/** How often the driver looks at the swarm for exits while someone listens: 250 ms. */
export const DEFAULT_SWARM_POLL_MS = 250;
/** How long `start` waits for Swarm to run the instance (image pull included): 2 minutes. */
export const DEFAULT_SWARM_START_TIMEOUT_MS = 120_000;
/** The scope label of a driver not told one. */
export const DEFAULT_SWARM_SCOPE = 'kiln';

/** Options of {@link SwarmRuntimeDriver}. */
export interface SwarmRuntimeDriverOptions {
  /** A swarm manager's Docker Engine API: `unix:///var/run/docker.sock` or `tcp://host:2375`. */
  readonly docker: string;
  /**
   * The image of a digest as the nodes pull it, pinned: `REGISTRY/REPO@sha256:…` (kiln's control
   * plane pushes it to the target's registry first).
   */
  readonly image: (digest: Digest, instance: InstanceSpec) => Promise<string>;
  /**
   * Engines of other nodes, by node hostname, ID or address, for `kill`, `exec` and exact stop
   * grace periods there. Without one, those calls on that node fail with a message saying so.
   * @default {}
   */
  readonly nodes?: Readonly<Record<string, string>>;
  /** Which control plane's instances these are: `list` sees only services labelled so. @default 'kiln' */
  readonly scope?: string;
  /** The grace Swarm gives when it stops a task itself (a node it cannot signal). @default DEFAULT_STOP_GRACE_MS */
  readonly stopGraceMs?: number;
  /** @default DEFAULT_SWARM_POLL_MS */
  readonly pollIntervalMs?: number;
  /** @default DEFAULT_SWARM_START_TIMEOUT_MS */
  readonly startTimeoutMs?: number;
  /**
   * Credentials for the registry the images are pulled from. They go with each service's creation
   * (`X-Registry-Auth`), and Swarm hands them to whichever node runs its task, as
   * `docker service create --with-registry-auth` does; without them the nodes pull anonymously.
   */
  readonly registryAuth?: { readonly username: string; readonly password: string };
  /** TLS to the engines at `tcp://` addresses, the manager's and the nodes'. */
  readonly tls?: EngineTls;
}
