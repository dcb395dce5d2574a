/**
 * The control plane's side of rootfs garbage collection ({@link collectRootfs}): what to keep.
 * Every service's newest {@link KEEP_RELEASES} releases (a rollback returns to one of them without
 * unpacking again), the release of every live instance, and every root a live instance runs from
 * as the runtime says (a drifted root set aside under `drift.action: alert` included). Run at
 * start and every {@link DEFAULT_ROOTFS_GC_MS}.
 */
import { collectRootfs, type RootfsGcResult, type RuntimeDriver } from '../runtime/index.js';
import type { Digest } from '../oci/index.js';
import type { StateStore } from '../state/index.js';

/** How often unused roots are collected: 10 min. */
export const DEFAULT_ROOTFS_GC_MS = 10 * 60 * 1000;
/** The newest releases per service whose roots stay: 3. */
export const KEEP_RELEASES = 3;

/** Options of {@link RootfsCollector}. */
export interface RootfsCollectorOptions {
  readonly store: StateStore;
  readonly driver: RuntimeDriver;
  /** The folder of unpacked roots (`.kiln/rootfs`). */
  readonly rootfsDir: string;
  readonly log: (line: string) => void;
  /** @default KEEP_RELEASES */
  readonly keepReleases?: number;
}

/** Collects unused roots now and then; `close()` stops it (a collection in flight finishes). */
export class RootfsCollector {
  readonly #o: RootfsCollectorOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #closed = false;

  constructor(options: RootfsCollectorOptions) {
    this.#o = options;
  }

  /** Collects now, then every `everyMs` (0: only now). */
  start(everyMs: number = DEFAULT_ROOTFS_GC_MS): void {
    const tick = (): void => {
      if (this.#closed) return;
      this.#running = this.collect()
        .catch((err: unknown) =>
          this.#o.log(`rootfs gc: ${err instanceof Error ? err.message : String(err)}`),
        )
        .finally(() => {
          if (!this.#closed && everyMs > 0) this.#timer = setTimeout(tick, everyMs).unref();
        });
    };
    tick();
  }

  /** One collection; says in the log what went. */
  async collect(options: { dryRun?: boolean } = {}): Promise<RootfsGcResult> {
    const { store, driver } = this.#o;
    const keep = new Set<Digest>();
    for (const service of store.services.list()) {
      for (const r of store.releases.list(service.name).slice(-(this.#o.keepReleases ?? KEEP_RELEASES))) {
        keep.add(r.digest as Digest);
      }
    }
    const running = new Set<string>();
    for (const instance of store.instances.list()) {
      keep.add(store.releases.get(instance.service, instance.release).digest as Digest);
      running.add(instance.id);
    }
    // Instances the runtime has and no record names (being adopted, or orphans) count too.
    for (const status of await driver.list()) running.add(status.id);
    const inUse = new Set<string>();
    for (const id of running) {
      const rootfs = (await driver.describe?.(id).catch(() => undefined))?.rootfs;
      if (rootfs) inUse.add(rootfs);
    }
    const result = await collectRootfs(this.#o.rootfsDir, { keepImages: keep, inUse, ...options });
    if (result.removed.length > 0) {
      this.#o.log(`rootfs gc: removed ${result.removed.length} unused root(s): ${result.removed.join(', ')}`);
    }
    return result;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
