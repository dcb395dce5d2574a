/**
 * What a node's Docker Engine vouches for about one of kiln's containers, for the drift check of
 * instances kiln cannot read the root of: the image and process it was made with, Docker's own
 * diff of its writable layer (`GET /containers/{id}/changes`), and the exec sessions running in it.
 * The root is read-only, so the diff holds only what the engine itself adds (docker-init and the
 * mount points of the files it provides), unless someone wrote into the layer from the node.
 */
import type { InstanceAttestation } from '../driver.js';
import type { TreeDrift } from '../tree.js';
import type { Engine } from './engine.js';

/** `GET /containers/{id}/json`, the fields read here. */
interface ContainerJson {
  /** The image's id: its config digest. */
  readonly Image: string;
  readonly Path: string;
  readonly Args: readonly string[] | null;
  readonly ExecIDs: readonly string[] | null;
  readonly Config: {
    /** The reference it was made from, as the task asked (`…@sha256:…`). */
    readonly Image: string;
    readonly Env: readonly string[] | null;
    readonly Healthcheck?: { readonly Test?: readonly string[] };
  };
}

/** `GET /exec/{id}/json`, the fields read here. */
interface ExecJson {
  readonly Running: boolean;
  readonly ProcessConfig: { readonly entrypoint: string; readonly arguments: readonly string[] | null };
}

/**
 * Paths Docker makes in every container's root: the mount point of docker-init (`Init: true`;
 * under /usr/sbin when /sbin links there, as in Debian's merged /usr), and those of the files and
 * filesystems it mounts (hosts, hostname, resolv.conf, /proc, /dev, /sys, and the /tmp tmpfs),
 * with the directories that hold them. Only their addition or a change to the directory is the
 * engine's; their removal, anything below them, and any other path is drift.
 */
const ENGINE_PATHS: ReadonlySet<string> = new Set([
  '/sbin', '/sbin/docker-init', '/usr', '/usr/sbin', '/usr/sbin/docker-init',
  '/etc', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf',
  '/proc', '/dev', '/dev/shm', '/dev/pts', '/dev/mqueue', '/sys', '/tmp',
]); // prettier-ignore

/** Docker's change kinds. */
const KINDS: Readonly<Record<number, TreeDrift['change']>> = { 0: 'modified', 1: 'added', 2: 'removed' };

/**
 * Attests `container` on `engine`. `own` holds the exec sessions the driver itself started (a
 * health check command, a readiness check); every other running one is reported.
 */
export async function attestContainer(
  engine: Engine,
  container: string,
  own: ReadonlySet<string>,
): Promise<InstanceAttestation> {
  const c = await engine.request<ContainerJson>({ path: `/containers/${container}/json` });
  const changes = await engine.request<{ Path: string; Kind: number }[] | null>({
    path: `/containers/${container}/changes`,
  });
  const probe = healthProbe(c.Config.Healthcheck?.Test);
  const foreignProcesses: string[] = [];
  for (const id of c.ExecIDs ?? []) {
    if (own.has(id)) continue;
    const exec = await engine.request<ExecJson>({ path: `/exec/${id}/json` }).catch(() => undefined);
    if (!exec?.Running) continue; // ended (or gone) since the container was read
    const argv = [exec.ProcessConfig.entrypoint, ...(exec.ProcessConfig.arguments ?? [])];
    if (probe !== undefined && JSON.stringify(argv) === JSON.stringify(probe)) continue;
    foreignProcesses.push(`exec ${id.slice(0, 12)}: ${argv.join(' ')}`);
  }
  return {
    image: c.Config.Image,
    args: [c.Path, ...(c.Args ?? [])],
    env: envOf(c.Config.Env),
    changes: (changes ?? [])
      .filter((ch) => !ENGINE_PATHS.has(ch.Path) || ch.Kind === 2)
      .map((ch) => ({
        path: ch.Path.replace(/^\/+/, ''),
        change: KINDS[ch.Kind] ?? 'modified',
        detail: 'seen by the engine in its writable layer',
      }))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    foreignProcesses,
  };
}

function envOf(list: readonly string[] | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of list ?? []) {
    const eq = entry.indexOf('=');
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

/** The argv Docker runs for a health check `Test`, or undefined when there is none. */
function healthProbe(test: readonly string[] | undefined): readonly string[] | undefined {
  if (test?.[0] === 'CMD') return test.slice(1);
  if (test?.[0] === 'CMD-SHELL') return ['/bin/sh', '-c', test.slice(1).join(' ')];
  return undefined;
}
