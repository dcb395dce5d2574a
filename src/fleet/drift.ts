/**
 * Known state: every running instance is checked against its release. Its root filesystem is
 * compared with the manifest of files taken when the image was unpacked from digest-verified
 * layers (a quick check of change times every round, a full sha256 check every `fullEvery` rounds
 * and on demand), and its process (the bundle's arguments and environment, and the environment its
 * init runs with as the kernel reports it) with what the release says. An instance that differs is
 * tainted; the controller then replaces it, or only reports it when its service says `alert`. A
 * root that drifted is set aside, so replacements get a fresh one. An instance on a remote engine,
 * whose root kiln cannot read, is checked against what that engine attests instead (its image, its
 * process, its own diff of the root, and processes started in it).
 */
import {
  compareTree,
  describeDrift,
  filesManifestSource,
  quarantineRootfs,
  readFilesManifest,
  RUNTIME_MOUNT_POINTS,
  type InstanceAttestation,
  type InstanceDescription,
  type RuntimeDriver,
  type TreeBaseline,
  type TreeDrift,
} from '../runtime/index.js';
import type { InstanceRecord, StateStore } from '../state/index.js';
import { releaseSpec } from './desired.js';
import { instanceEnv } from './stateful.js';

/** How often the background check runs unless configured: every 2 s. */
export const DEFAULT_VERIFY_INTERVAL_MS = 2_000;
/** Every this many rounds the background check hashes every file (else it trusts change times). */
export const DEFAULT_FULL_EVERY = 30;

/**
 * Variables the runtime gives a process that the release does not name: `PATH` (a default when the
 * image has none) and `HOME` (which crun and runc set from the user's account, or `/`).
 */
const RUNTIME_ENV: readonly string[] = ['PATH', 'HOME'];

/** One instance's verdict. */
export interface InstanceVerdict {
  readonly id: string;
  readonly service: string;
  readonly release: string;
  readonly digest: string;
  /** True when the instance is exactly its release. */
  readonly ok: boolean;
  /** The host directory of its root filesystem, when the runtime reports it. */
  readonly rootfs?: string;
  /** Differences of its root filesystem from the image's files. */
  readonly files: readonly TreeDrift[];
  /** Differences of its process from the release: arguments and environment. */
  readonly process: readonly string[];
  /** Whether every file was hashed (else unchanged change times were trusted). */
  readonly full: boolean;
  readonly checkedAt: string;
  /** Why it could not be checked (no manifest of files, no such instance in the runtime). */
  readonly error?: string;
  /**
   * What its root was compared with: the image's attached manifest of files, the root as
   * unpacked, or (`engine`) the image's layers, by the remote engine that runs it.
   */
  readonly manifest?: 'image' | 'unpacked' | 'engine';
}

/** One root's comparison with its manifest of files. */
type RootCheck = { drift: TreeDrift[]; error?: string; manifest?: 'image' | 'unpacked' };

/** What the watch needs. */
export interface DriftWatchOptions {
  readonly store: StateStore;
  readonly driver: RuntimeDriver;
  readonly host: string;
  readonly clock?: () => number;
  readonly log?: (line: string) => void;
  /** Taints an instance (the controller's `taint`); `replace` false only reports it. */
  readonly taint: (id: string, reason: string, message: string, replace: boolean) => void;
  /** Instances not to replace yet (an open `kiln exec` session, or its grace period). */
  readonly held?: (id: string) => boolean;
  /** @default DEFAULT_FULL_EVERY */
  readonly fullEvery?: number;
}

export class DriftWatch {
  readonly #o: DriftWatchOptions;
  readonly #baselines = new Map<string, TreeBaseline>();
  #timer: NodeJS.Timeout | undefined;
  #round = 0;
  #running: Promise<unknown> | undefined;
  #closed = false;

  constructor(options: DriftWatchOptions) {
    this.#o = options;
  }

  /** Checks every `intervalMs` in the background until `close`. 0 turns the watch off. */
  start(intervalMs = DEFAULT_VERIFY_INTERVAL_MS): void {
    if (intervalMs <= 0 || (!this.#o.driver.describe && !this.#o.driver.attest)) return;
    const tick = () => {
      if (this.#closed) return;
      this.#timer = setTimeout(() => {
        const full = this.#round++ % (this.#o.fullEvery ?? DEFAULT_FULL_EVERY) === 0;
        this.#running = this.check({ full, act: true })
          .catch((err: unknown) => this.#o.log?.(`drift check failed: ${String(err)}`))
          .finally(tick);
      }, intervalMs);
    };
    tick();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /**
   * Checks the live instances (or those named) and returns a verdict for each. With `act`, an
   * instance that differs is tainted, as its service's `drift.action` says.
   */
  async check(
    options: { readonly ids?: readonly string[]; readonly full?: boolean; readonly act?: boolean } = {},
  ): Promise<InstanceVerdict[]> {
    const { store, driver } = this.#o;
    const records = store.instances
      .list()
      .filter(
        (r) =>
          r.state === 'starting' || r.state === 'healthy' || r.state === 'unhealthy' || r.state === 'tainted',
      )
      .filter((r) => options.ids === undefined || options.ids.includes(r.id));
    const roots = new Map<string, Promise<RootCheck>>();
    const verdicts: InstanceVerdict[] = [];
    for (const record of records) {
      const desc = await driver.describe?.(record.id).catch(() => undefined);
      const base = {
        id: record.id,
        service: record.service,
        release: `r${record.release}`,
        digest: record.digest,
        full: options.full === true,
        checkedAt: new Date(this.#o.clock?.() ?? Date.now()).toISOString(),
      };
      const attested = desc ? undefined : await driver.attest?.(record.id).catch(() => undefined);
      if (attested) {
        verdicts.push(this.#fromAttestation(base, record, attested));
        continue;
      }
      if (!desc) {
        verdicts.push({
          ...base,
          ok: true,
          files: [],
          process: [],
          error: 'the runtime does not report this instance',
        });
        continue;
      }
      // Instances of one image share its root: it is compared once per round.
      if (!roots.has(desc.rootfs))
        roots.set(desc.rootfs, this.#checkRoot(desc.rootfs, options.full === true));
      const root = await roots.get(desc.rootfs)!;
      const process = this.#checkProcess(record, desc);
      const ok = root.drift.length === 0 && process.length === 0 && root.error === undefined;
      verdicts.push({
        ...base,
        ok,
        rootfs: desc.rootfs,
        files: root.drift,
        process,
        ...(root.error ? { error: root.error } : {}),
        ...(root.manifest ? { manifest: root.manifest } : {}),
      });
    }
    if (options.act) await this.#act(verdicts, records);
    return verdicts;
  }

  async #checkRoot(rootfs: string, full: boolean): Promise<RootCheck> {
    const files = await readFilesManifest(rootfs);
    if (!files) {
      return { drift: [], error: `${rootfs} has no manifest of its files, so it cannot be verified` };
    }
    const baseline = full ? undefined : this.#baselines.get(rootfs);
    const result = await compareTree(rootfs, files, {
      ignore: RUNTIME_MOUNT_POINTS,
      ...(baseline ? { baseline } : {}),
    });
    if (result.drift.length === 0) this.#baselines.set(rootfs, result.baseline);
    const manifest = await filesManifestSource(rootfs);
    return { drift: result.drift, ...(manifest ? { manifest } : {}) };
  }

  /** A verdict from what the instance's engine attests: its diff of the root, image and process. */
  #fromAttestation(
    base: Omit<InstanceVerdict, 'ok' | 'files' | 'process'>,
    record: InstanceRecord,
    attested: InstanceAttestation,
  ): InstanceVerdict {
    const process = this.#checkProcess(record, { args: attested.args, env: attested.env });
    const runs = attested.image.slice(attested.image.lastIndexOf('@') + 1);
    if (runs !== record.digest) process.unshift(`image ${record.digest} → ${attested.image}`);
    for (const p of attested.foreignProcesses) process.push(`started in it, not by kiln: ${p}`);
    return {
      ...base,
      ok: attested.changes.length === 0 && process.length === 0,
      files: attested.changes,
      process,
      manifest: 'engine',
    };
  }

  #checkProcess(
    record: InstanceRecord,
    desc: Pick<InstanceDescription, 'args' | 'env' | 'liveEnv'>,
  ): string[] {
    const spec = releaseSpec(this.#o.store.releases.get(record.service, `r${record.release}`));
    const want = instanceEnv(spec, record, this.#o.host);
    const out: string[] = [];
    if (JSON.stringify(desc.args) !== JSON.stringify(spec.process.args)) {
      out.push(`args ${JSON.stringify(spec.process.args)} → ${JSON.stringify(desc.args)}`);
    }
    const envs = [
      ['bundle env', desc.env] as const,
      ...(desc.liveEnv ? [['live env', desc.liveEnv] as const] : []),
    ];
    for (const [where, env] of envs) {
      for (const [k, v] of Object.entries(want)) {
        if (env[k] !== v)
          out.push(
            `${where} ${k}: ${JSON.stringify(v)} → ${env[k] === undefined ? 'unset' : JSON.stringify(env[k])}`,
          );
      }
      for (const k of Object.keys(env)) {
        if (!(k in want) && !RUNTIME_ENV.includes(k)) out.push(`${where} ${k} added`);
      }
    }
    return out;
  }

  async #act(verdicts: readonly InstanceVerdict[], records: readonly InstanceRecord[]): Promise<void> {
    const { store, taint } = this.#o;
    const quarantine = new Set<string>();
    for (const v of verdicts) {
      const record = records.find((r) => r.id === v.id)!;
      const action = driftAction(store, v.service);
      const replace = action === 'replace' && !(this.#o.held?.(v.id) ?? false);
      if (!v.ok && v.error === undefined) {
        const what = [
          ...(v.files.length ? [`files: ${describeDrift(v.files)}`] : []),
          ...(v.process.length ? [`process: ${v.process.slice(0, 5).join('; ')}`] : []),
        ].join('; ');
        if (record.taint === undefined || (replace && record.state !== 'tainted')) {
          this.#o.log?.(`drift: ${v.id} is no longer ${v.release}: ${what}`);
          taint(
            v.id,
            'DriftDetected',
            `${v.id} is no longer ${v.release} (${v.digest.slice(0, 19)}): ${what}`,
            replace,
          );
        }
        if (v.files.length && replace && v.rootfs) quarantine.add(v.rootfs);
      } else if (record.taint !== undefined && record.state !== 'tainted' && replace) {
        // Tainted earlier while held (an exec session) or only reported: replaced now.
        taint(v.id, record.taint.reason, record.taint.message, true);
      }
    }
    for (const rootfs of quarantine) {
      const aside = await quarantineRootfs(rootfs);
      this.#baselines.delete(rootfs);
      if (aside) this.#o.log?.(`rootfs ${rootfs} drifted; set aside as ${aside}`);
    }
  }
}

/** The declared service's `drift.action` (as last deployed); `replace` when it says none. */
export function driftAction(store: StateStore, service: string): 'replace' | 'alert' {
  try {
    const spec = store.services.get(service).spec as { drift?: { action?: string } };
    return spec.drift?.action === 'alert' ? 'alert' : 'replace';
  } catch {
    return 'replace';
  }
}
