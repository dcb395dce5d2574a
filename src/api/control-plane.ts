/**
 * The control plane of one project, put together: the state store (`.kiln/state.db`), the router
 * (its own detached process, adopted when it already runs), the local runtime driver (adopting the
 * instances it finds), the fleet controller and the HTTP API. `kiln server` and `kiln up` run it.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { homePaths, kilnVersion } from '../bake/index.js';
import { ConflictError, NotFoundError } from '../errors/index.js';
import {
  defaultClaimsDir,
  DEFAULT_VERIFY_INTERVAL_MS,
  DriftWatch,
  ExecSessions,
  FleetController,
  HostPortClaims,
  RootfsCollector,
  storeCatalog,
} from '../fleet/index.js';
import { OciStore } from '../oci/index.js';
import { findInit, LocalRuntimeDriver, TINI_STATIC, type RuntimeName } from '../runtime/index.js';
import type { ServiceSpec } from '../spec/index.js';
import { openState, type StateStore } from '../state/index.js';
import { SupervisedRouter } from '../traffic/index.js';
import {
  ADMIN_TOKEN_FILE,
  readServerFile,
  removeServerFile,
  SERVER_FILE,
  writeAdminToken,
  writeServerFile,
} from './connect.js';
import { FleetPlane } from './plane.js';
import { KnownStatePlane } from './plane-known.js';
import { startApiServer, type ApiServer } from './server.js';
import { targetDriver, type NamedTarget } from './target-driver.js';
import { readTlsFiles, type TlsFiles } from './tls.js';

/** Where a project's control plane keeps its files, under its `.kiln` home. */
export function controlPlanePaths(home: string) {
  return {
    state: path.join(home, 'state.db'),
    server: path.join(home, SERVER_FILE),
    adminToken: path.join(home, ADMIN_TOKEN_FILE),
    router: path.join(home, 'router'),
    instances: path.join(home, 'instances'),
    logs: path.join(home, 'logs'),
    rootfs: path.join(home, 'rootfs'),
  };
}

/** Options of {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /** The project's `.kiln` directory. */
  readonly home: string;
  /** The project's services as declared now (the config is read again for every deploy). */
  readonly services: () => Promise<readonly ServiceSpec[]>;
  /** API port; 0 = any free port (written to `server.json`). @default 0 */
  readonly port?: number;
  /** @default the first installed of crun, runc */
  readonly runtime?: RuntimeName;
  /** Diagnostics, one line each. @default stderr */
  readonly log?: (line: string) => void;
  /**
   * Serve the API over HTTPS with this certificate and key; server.json then records the
   * `https://` URL and the certificate as `ca`, which local clients trust. @default plain HTTP
   */
  readonly tls?: TlsFiles;
  /** How often every instance is checked against its release (drift); 0 turns it off. @default 2 s */
  readonly verifyIntervalMs?: number;
  /** Run the instances on this declared target (`kiln server --target`). @default this machine */
  readonly target?: NamedTarget;
}

/** A running control plane. */
export interface RunningControlPlane {
  readonly url: string;
  readonly store: StateStore;
  readonly plane: FleetPlane;
  readonly controller: FleetController;
  /** The router process, started again by the control plane whenever it dies. */
  readonly router: SupervisedRouter;
  /** The admin token's secret when it was created by this start (print it once), else undefined. */
  readonly newAdminToken?: string;
  /** Stops the control plane; instances and the router keep running and are adopted next time. */
  close(): Promise<void>;
  /** Stops everything: every instance (drained first), the router process, then the control plane. */
  shutdown(): Promise<void>;
}

/**
 * Starts the control plane of the project whose home is `options.home`. Refuses (ConflictError)
 * when another control plane runs for it.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<RunningControlPlane> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const files = controlPlanePaths(options.home);
  await mkdir(options.home, { recursive: true });
  await assertNotRunning(options.home);
  // Checked before anything starts, so a bad file costs nothing to fix.
  const tls = options.tls === undefined ? undefined : await readTlsFiles(options.tls);
  const store = openState(files.state);
  const closers: (() => Promise<void>)[] = [async () => store.close()];
  const undo = async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
  };
  try {
    let newAdminToken: string | undefined;
    if (store.tokens.list().length === 0) {
      newAdminToken = store.tokens.create('admin', ['admin']).secret;
      await writeAdminToken(options.home, newAdminToken);
    }
    const router = await SupervisedRouter.start({ dir: files.router, log });
    closers.push(() => router.close());
    const home = homePaths(options.home);
    // Deploys admit only images signed by a key the service trusts (by default this project's own).
    const imageStore = await OciStore.open(home.store);
    const images = storeCatalog(imageStore, files.rootfs, { keysDir: home.keys });
    const onTarget =
      options.target &&
      (await targetDriver(options.target, {
        home: options.home,
        store: () => OciStore.open(home.store),
        log,
      }));
    const init = onTarget ? undefined : findInit();
    if (!init && !onTarget) log(`no ${TINI_STATIC}: instances run without an init (apt-get install tini)`);
    const driver =
      onTarget ??
      new LocalRuntimeDriver({
        stateDir: files.instances,
        logDir: files.logs,
        rootfs: (digest) => images.rootfs(digest),
        // tini as PID 1: SIGTERM reaches processes that ignore it as PID 1, and orphans are reaped.
        ...(init ? { init } : {}),
        ...(options.runtime ? { runtime: options.runtime } : {}),
      });
    closers.push(() => driver.close());
    // Every control plane on this host takes instance ports from one range: claims keep two apart.
    const portClaims = new HostPortClaims(defaultClaimsDir(), options.home);
    const controller = new FleetController({
      store,
      driver,
      router,
      images,
      log,
      dataDir: options.home,
      portClaims,
    });
    await controller.start();
    closers.push(() => controller.close());
    // Known state: every instance is checked against its release in the background; one that
    // drifted is tainted, and replaced unless its service says only `alert`. An instance someone
    // execs into is tainted at once, its replacement held while the session is open and its grace.
    const taint = (id: string, reason: string, message: string, replace: boolean) =>
      controller.taint(id, reason, message, replace);
    const sessions = new ExecSessions({ store, taint, log });
    sessions.start();
    closers.push(async () => sessions.close());
    const drift = new DriftWatch({
      store,
      driver,
      host: '127.0.0.1',
      taint,
      log,
      held: (id) => sessions.held(id),
    });
    drift.start(options.verifyIntervalMs ?? DEFAULT_VERIFY_INTERVAL_MS);
    closers.push(() => drift.close());
    // Roots of releases long gone are removed, so the disk does not fill one release at a time.
    const roots = new RootfsCollector({ store, driver, rootfsDir: files.rootfs, log });
    roots.start();
    closers.push(() => roots.close());
    const security = new KnownStatePlane({
      store,
      driver,
      drift,
      sessions,
      imageStore: home.store,
      keysDir: home.keys,
    });
    const declared = async (name: string): Promise<ServiceSpec> => {
      const all = await options.services();
      const found = all.find((s) => s.name === name);
      if (found) return found;
      throw new NotFoundError(
        `no service "${name}" in the project's config` +
          (all.length ? ` (declared: ${all.map((s) => s.name).join(', ')})` : ' (it declares no services)') +
          '; add it under services:',
      );
    };
    const imageSource = { store: home.store, keys: home.keys };
    const plane = new FleetPlane({ store, controller, driver, images, declared, log, imageSource, security });
    plane.start();
    closers.push(() => plane.close());
    const api: ApiServer = await startApiServer({
      plane,
      tokens: store.tokens,
      version: kilnVersion(),
      ...(options.port !== undefined ? { port: options.port } : {}),
      log,
      audit: store.audit,
      // The image store is served as an OCI registry under /v2/, with the same tokens.
      registry: imageStore,
      ...(tls ? { tls } : {}),
    });
    closers.push(() => api.close());
    await writeServerFile(options.home, {
      url: api.url,
      pid: process.pid,
      ...(options.tls ? { ca: options.tls.certFile } : {}),
    });
    closers.push(() => removeServerFile(options.home, process.pid));
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await undo();
    };
    return {
      url: api.url,
      store,
      plane,
      controller,
      router,
      ...(newAdminToken ? { newAdminToken } : {}),
      close,
      async shutdown() {
        await api.close().catch(() => {});
        await controller.stopAll();
        await router.stop().catch(() => {});
        await close();
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

/** Throws when `server.json` names a process that still runs; a missing or unreadable file is fine. */
async function assertNotRunning(home: string): Promise<void> {
  const pid = (await readServerFile(home).catch(() => undefined))?.pid;
  if (pid === undefined || pid === process.pid) return;
  try {
    process.kill(pid, 0);
  } catch {
    return; // a stale file from a control plane that was killed
  }
  throw new ConflictError(
    `a kiln control plane already runs for this project (pid ${pid}, see ${controlPlanePaths(home).server}); ` +
      'use it (kiln status, kiln deploy) or stop it first',
  );
}
