/** The options of the local crun/runc driver, `LocalRuntimeDriver`. */
import { existsSync } from 'node:fs';
import type { Digest } from '../oci/index.js';
import type { RuntimeName } from './detect.js';

/** Parent of the runtimes' state roots for instances, apart from one-off runs (`/run/kiln/runtime`). */
export const DEFAULT_INSTANCE_RUNTIME_ROOT = '/run/kiln/instances';

/** Options of {@link LocalRuntimeDriver}. */
export interface LocalRuntimeDriverOptions {
  /** Where instance bundles live, one directory per instance id (such as `.kiln/instances`). */
  readonly stateDir: string;
  /** The shared, read-only, already unpacked root of an image, such as `ensureRootfs`. */
  readonly rootfs: (digest: Digest) => Promise<string>;
  /** @default the first installed of RUNTIME_NAMES */
  readonly runtime?: RuntimeName;
  /**
   * Where each instance's output goes, as `<logDir>/<id>.log`, kept after the instance is stopped.
   * @default the instance's own directory (`<stateDir>/<id>/output.log`), removed with it
   */
  readonly logDir?: string;
  /** Parent of the runtimes' `--root` directories. @default DEFAULT_INSTANCE_RUNTIME_ROOT */
  readonly runtimeRoot?: string;
  /**
   * A static init on the host (such as Debian's `/usr/bin/tini-static`) run as each instance's
   * PID 1, bound in read-only at `/dev/init`, as `docker run --init` does.
   * @default none: the image's process is PID 1
   */
  readonly init?: string;
  /** How often running instances are checked for an exit. @default DEFAULT_EXIT_POLL_INTERVAL_MS */
  readonly exitPollIntervalMs?: number;
}

/** Where Debian's tini package puts its static build, which runs in any image. */
export const TINI_STATIC = '/usr/bin/tini-static';

/** The host's static init for instances, or undefined when none is installed (apt-get install tini). */
export function findInit(): string | undefined {
  return existsSync(TINI_STATIC) ? TINI_STATIC : undefined;
}
