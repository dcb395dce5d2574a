/** The options of the local crun/runc driver, `LocalRuntimeDriver`. */
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
  /** How often running instances are checked for an exit. @default DEFAULT_EXIT_POLL_INTERVAL_MS */
  readonly exitPollIntervalMs?: number;
}
