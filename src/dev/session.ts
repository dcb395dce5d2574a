/**
 * The developer loop (`kiln dev SERVICE`): one mutable instance of the service's **base** image
 * with the app's folder bound read-only where the app layer would put it, run with the process
 * the app image will have, restarted (stopped, then started anew) whenever the folder changes.
 * It is marked dev and lives apart from the fleet (see `sessions.ts`): no release, no record in
 * the control plane, no route. Closing the session stops the instance and removes everything it
 * made.
 */
import net from 'node:net';
import path from 'node:path';
import { bakeDevBase, homePaths, kilnHome } from '../bake/index.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors/index.js';
import { probe, STARTING_PROBE_MS } from '../fleet/index.js';
import { OciStore } from '../oci/index.js';
import { ensureRootfs, findInit, LocalRuntimeDriver, type RuntimeName } from '../runtime/index.js';
import type { LoadedConfig, ServiceSpec } from '../spec/index.js';
import { LogFollower } from './follow.js';
import { prepareDevRoot } from './root.js';
import {
  createSession,
  DEFAULT_DEV_RUNTIME_ROOT,
  removeSession,
  sweepStaleSessions,
  type SessionPaths,
} from './sessions.js';
import { devInstanceId, devInstanceSpec, devPort, serviceOmissions } from './settings.js';
import { watchFolder, type ChangeBatch } from './watch.js';
import { DevLoop, type DevCycle, type DevOutcome } from './loop.js';

/** How long a stopped dev instance gets after SIGTERM before SIGKILL: a dev restart must be quick. */
export const DEFAULT_DEV_STOP_GRACE_MS = 1_000;

/** How long a started dev instance may take to pass its health check before kiln says so. */
export const DEFAULT_DEV_HEALTH_TIMEOUT_MS = 60_000;

/** Options of {@link startDev}. */
export interface DevOptions {
  readonly config: LoadedConfig;
  readonly service: string;
  /** @default the service's port + DEV_PORT_OFFSET */
  readonly port?: number;
  /** Restart on changes to the app's folder. @default true */
  readonly watch?: boolean;
  /** @default the first installed of crun and runc */
  readonly runtime?: RuntimeName;
  /** @default KILN_HOME or `.kiln` beside the config */
  readonly home?: string;
  /** Root to read apt sources from when the base is baked. @default "/" */
  readonly aptRoot?: string;
  /** Bake the base only from cached indexes and packages. @default false */
  readonly offline?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  /** kiln's own lines: what it does, each restart and how long until healthy. */
  readonly log: (line: string) => void;
  /** The instance's stdout and stderr. @default dropped */
  readonly output?: (text: string) => void;
  /** @default DEFAULT_DEBOUNCE_MS */
  readonly debounceMs?: number;
  /** @default DEFAULT_DEV_STOP_GRACE_MS */
  readonly stopGraceMs?: number;
  /** @default DEFAULT_DEV_HEALTH_TIMEOUT_MS */
  readonly healthTimeoutMs?: number;
  /** @default DEFAULT_DEV_RUNTIME_ROOT */
  readonly runtimeRoot?: string;
}

/** A running dev session. */
export interface DevSession {
  readonly service: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>/`. */
  readonly url: string;
  /** The session's directory under `<home>/dev/`. */
  readonly dir: string;
  /** Every start and restart so far, oldest first. */
  readonly cycles: readonly DevCycle[];
  /** Resolves with the first start's outcome. */
  readonly started: Promise<DevOutcome>;
  /** Stops the instance and the watcher and removes the session's files. Idempotent. */
  close(): Promise<void>;
}

/**
 * Bakes (or reuses) the service's base image, starts its dev instance and, unless `watch` is
 * false, restarts it on every change to the app's folder.
 *
 * @throws NotFoundError for an unknown service; ValidationError when its image cannot run in dev
 *   (no app folder, no base image of the stack) or the port is refused; ConflictError when the
 *   port is taken.
 * @example
 * const dev = await startDev({ config, service: 'hello', log: console.error });
 * await dev.started; // healthy on dev.url
 * await dev.close();
 */
export async function startDev(options: DevOptions): Promise<DevSession> {
  const { config } = options;
  const service = findService(config, options.service);
  const port = devPort(service, config.stack.services, options.port);
  const home = options.home ?? kilnHome(config, options.env ?? process.env);
  const where = {
    ...(options.runtime ? { runtime: options.runtime } : {}),
    runtimeRoot: options.runtimeRoot ?? DEFAULT_DEV_RUNTIME_ROOT,
  };
  for (const s of await sweepStaleSessions(home, where))
    options.log(`removed the dev session of ${s.service} left by pid ${s.pid} (no longer running)`);

  const dev = await bakeDevBase({
    config,
    image: service.image,
    home,
    ...(options.aptRoot ? { aptRoot: options.aptRoot } : {}),
    ...(options.offline ? { offline: true } : {}),
    ...(options.runtime ? { runtime: options.runtime } : {}),
    ...(options.env ? { env: options.env } : {}),
    log: options.log,
  });
  options.log(
    `${service.name}: ${dev.image.name}'s base ${dev.base.name} ${dev.base.digest.slice(0, 19)} ${dev.base.upToDate ? '(up to date)' : '(baked)'}`,
  );
  for (const line of [...dev.omitted, ...serviceOmissions(service)])
    options.log(`${service.name}: not in dev: ${line}`);
  await assertPortFree(port);

  const session = await createSession(home, service.name, port);
  try {
    const store = await OciStore.open(homePaths(home).store);
    const baseRootfs = await ensureRootfs(store, dev.base.digest, path.join(home, 'rootfs'));
    const root = await prepareDevRoot({
      baseRootfs,
      appDir: dev.appDir,
      dest: dev.app.dest,
      skeletonDir: session.root,
      file: config.file,
    });
    const init = findInit();
    const driver = new LocalRuntimeDriver({
      stateDir: session.instances,
      logDir: session.logs,
      rootfs: () => Promise.resolve(root.rootfs),
      ...where,
      ...(init ? { init } : {}),
    });
    const follower = new LogFollower(options.output ?? (() => {}));
    let n = 0;
    const loop = new DevLoop({
      driver,
      log: options.log,
      graceMs: options.stopGraceMs ?? DEFAULT_DEV_STOP_GRACE_MS,
      healthTimeoutMs: options.healthTimeoutMs ?? DEFAULT_DEV_HEALTH_TIMEOUT_MS,
      probeEveryMs: STARTING_PROBE_MS,
      spec: () =>
        devInstanceSpec({
          id: devInstanceId(service.name, session.id, ++n),
          service,
          digest: dev.base.digest,
          config: dev.config,
          port,
          mounts: root.mounts,
        }),
      healthy: (id) =>
        probe(service.health, '127.0.0.1', port, (args, timeoutMs) => driver.exec(id, args, { timeoutMs })),
      started: (id) => follower.follow(path.join(session.logs, `${id}.log`)),
    });
    const started = loop.change({ paths: [], firstAt: performance.now() });
    const unwatch =
      options.watch === false
        ? () => {}
        : watchFolder(dev.appDir, {
            ignore: dev.app.ignore,
            ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
            onChange: (batch: ChangeBatch) => void loop.change(batch),
            onError: (err) => options.log(`watching ${dev.appDir} failed: ${err.message}; restart kiln dev`),
          });
    let closing: Promise<void> | undefined;
    return {
      service: service.name,
      port,
      url: `http://127.0.0.1:${port}/`,
      dir: session.dir,
      get cycles() {
        return loop.cycles;
      },
      started,
      close: () =>
        (closing ??= (async () => {
          unwatch();
          await loop.close();
          await follower.close();
          await driver.close();
          await cleanUp(session, where);
        })()),
    };
  } catch (err) {
    await cleanUp(session, where).catch(() => undefined);
    throw err;
  }
}

function findService(config: LoadedConfig, name: string): ServiceSpec {
  const service = config.stack.services.find((s) => s.name === name);
  if (!service) {
    throw new NotFoundError(
      `no service "${name}" in ${config.file}; declared: ${config.stack.services.map((s) => s.name).join(', ') || 'none'}`,
    );
  }
  if (service.image.startsWith('sha256:')) {
    throw new ValidationError(config.file, [
      {
        path: `services.${name}.image`,
        message: 'is a digest: kiln dev needs the image declared in the config, with its app and base',
        fix: 'name an image of this stack that has an app',
      },
    ]);
  }
  return service;
}

async function assertPortFree(port: number): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new ConflictError(
              `port ${port} on 127.0.0.1 is in use (another kiln dev of this service?): stop it, or pass --port N`,
            )
          : err,
      ),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

async function cleanUp(
  session: SessionPaths,
  where: { readonly runtime?: RuntimeName; readonly runtimeRoot: string },
): Promise<void> {
  await removeSession(session, { ...where, graceMs: 0 });
}
