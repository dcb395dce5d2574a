/**
 * What a stateful identity is given besides its image: its volumes under
 * `<data>/volumes/<service>/<identity>/<volume>`, kept across replacements (so a replacement, a
 * self-healed instance or one the chaos monkey killed reattaches the same data), the release's
 * config files under `<data>/config/<service>/<release>/`, and the environment that names it and
 * its peers.
 */
import { randomBytes } from 'node:crypto';
import { chown, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConflictError } from '../errors/index.js';
import type { BindMount, EngineHealthCheck } from '../runtime/index.js';
import type { HealthSpec, ServiceSpec } from '../spec/index.js';
import type { InstanceRecord } from '../state/index.js';
import type { ReleaseSpec } from './desired.js';

/** The host directory of one identity's volume. */
export function volumePath(dataDir: string, service: string, ordinal: number, volume: string): string {
  return path.join(dataDir, 'volumes', service, `${service}-${ordinal}`, volume);
}

/** The host directory holding a release's config files. */
export function configPath(dataDir: string, service: string, release: string): string {
  return path.join(dataDir, 'config', service, release);
}

/**
 * Creates a volume directory on first use, owned by the instance's user so a process that is not
 * root can write its data; an existing one is left exactly as it is.
 */
export async function ensureVolume(
  dir: string,
  user: { readonly uid: number; readonly gid: number },
): Promise<void> {
  if ((await stat(dir).catch(() => undefined))?.isDirectory()) return;
  await mkdir(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.${randomBytes(4).toString('hex')}.tmp`;
  await mkdir(tmp, { mode: 0o700 });
  try {
    if (process.getuid?.() === 0) await chown(tmp, user.uid, user.gid);
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw err;
  }
}

/**
 * Writes a release's config files once (a release never changes, so an existing directory is
 * already right): into a temporary directory renamed into place, so no instance ever mounts half
 * of them. Returns the directory.
 */
export async function writeConfig(dir: string, files: Readonly<Record<string, string>>): Promise<string> {
  if ((await stat(dir).catch(() => undefined))?.isDirectory()) return dir;
  await mkdir(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.${randomBytes(4).toString('hex')}.tmp`;
  await mkdir(tmp);
  try {
    for (const [name, content] of Object.entries(files)) {
      await writeFile(path.join(tmp, name), content, { mode: 0o644 });
    }
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) throw err;
  }
  return dir;
}

/**
 * The environment of identity `ordinal`: `KILN_IDENTITY` (`db-1`), `KILN_ORDINAL` (`1`) and
 * `KILN_PEERS`, every identity's address (`db-0=127.0.0.1:7000,db-1=127.0.0.1:7001,…`), so an
 * instance can find its primary or its cluster without a discovery service.
 */
export function identityEnv(spec: ServiceSpec, ordinal: number, host: string): Record<string, string> {
  const peers = [...Array(spec.replicas).keys()].map((k) => `${spec.name}-${k}=${host}:${spec.port + k}`);
  return {
    KILN_IDENTITY: `${spec.name}-${ordinal}`,
    KILN_ORDINAL: String(ordinal),
    KILN_PEERS: peers.join(','),
  };
}

/**
 * The environment an instance of `record` runs with: the image's, the service's, then kiln's own
 * (`PORT`, `KILN_SERVICE`, `KILN_RELEASE`, `KILN_INSTANCE`, `KILN_ROLE` on a canary's instances,
 * and a stateful identity's). The executor starts instances with it and the drift check expects it.
 */
export function instanceEnv(
  spec: ReleaseSpec,
  record: Pick<InstanceRecord, 'id' | 'service' | 'release' | 'port' | 'role' | 'ordinal'>,
  host: string,
): Record<string, string> {
  return {
    ...spec.process.env,
    ...spec.service.env,
    PORT: String(record.port),
    KILN_SERVICE: record.service,
    KILN_RELEASE: `r${record.release}`,
    KILN_INSTANCE: record.id,
    ...(record.role ? { KILN_ROLE: record.role } : {}),
    ...(record.ordinal === undefined ? {} : identityEnv(spec.service, record.ordinal, host)),
  };
}

/**
 * The check an engine with its own health checks (Swarm) runs inside the instance: a service's
 * `exec` health. HTTP and TCP health are probed by kiln from the control plane's side, where the
 * router is, and are not handed to the engine (an image need not have a client to check itself).
 */
export function engineHealthCheck(health: HealthSpec): { healthCheck?: EngineHealthCheck } {
  if (health.exec === undefined) return {};
  return {
    healthCheck: {
      args: health.exec,
      intervalMs: health.interval,
      timeoutMs: health.timeout,
      retries: health.threshold,
    },
  };
}

/** A stateful service's `ready` check; stateless services have none. */
export function readyOf(spec: ServiceSpec): HealthSpec | undefined {
  return spec.kind === 'stateful' ? spec.ready : undefined;
}

/**
 * A release's bind mounts for one instance: a stateful identity's volumes (created on first use,
 * owned by the process's user, kept across replacements) and the release's config files (written
 * once per release, read-only).
 */
export async function instanceMounts(
  dataDir: string | undefined,
  spec: ReleaseSpec,
  release: string,
  ordinal?: number,
): Promise<BindMount[]> {
  const { service, process } = spec;
  const volumes = ordinal !== undefined ? (service.volumes ?? []) : [];
  if (volumes.length === 0 && service.config === undefined) return [];
  if (dataDir === undefined) {
    throw new ConflictError(
      `${service.name} needs volumes or config files, but this controller has no data directory; ` +
        'start it with dataDir (the control plane uses its .kiln home)',
    );
  }
  const mounts: BindMount[] = [];
  for (const v of volumes) {
    const source = volumePath(dataDir, service.name, ordinal!, v.name);
    await ensureVolume(source, process.user);
    mounts.push({ source, destination: v.path });
  }
  if (service.config) {
    const source = await writeConfig(configPath(dataDir, service.name, release), service.config.files);
    mounts.push({ source, destination: service.config.path, readonly: true });
  }
  return mounts;
}
