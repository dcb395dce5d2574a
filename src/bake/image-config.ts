import type { Digest, ImageConfig } from '../oci/index.js';
import type { ImageSpec } from '../spec/index.js';

/** The PATH an image gets unless its base or its `env` sets one, as Debian's login.defs has it. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Debian architecture names and their OCI platform counterparts. */
const OCI_ARCH: Readonly<Record<string, { architecture: string; variant?: string }>> = {
  amd64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v5' },
  i386: { architecture: '386' },
  ppc64el: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
};

/** The OCI platform of a Debian architecture. */
export function ociPlatform(debArch: string): { architecture: string; os: 'linux'; variant?: string } {
  return { ...(OCI_ARCH[debArch] ?? { architecture: debArch }), os: 'linux' };
}

/** The host's Debian architecture (`amd64` on x86-64). */
export function hostDebianArch(): string {
  const map: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    arm: 'armhf',
    ia32: 'i386',
    ppc64: 'ppc64el',
    s390x: 's390x',
    riscv64: 'riscv64',
  };
  return map[process.arch] ?? process.arch;
}

/** One layer's line in the image history. */
export interface HistoryItem {
  readonly createdBy: string;
  readonly diffId: Digest;
}

/**
 * The image configuration: the base's settings with the image's own on top (env merged by name,
 * entrypoint resetting the base's cmd as Docker does), the layers' diff ids, and one history line
 * per layer.
 */
export function imageConfig(options: {
  readonly image: ImageSpec;
  readonly base?: ImageConfig;
  readonly arch: string;
  readonly created: string;
  readonly layers: readonly HistoryItem[];
  /** Numeric `uid:gid` for `image.user` when it names an account. */
  readonly resolvedUser?: string;
}): ImageConfig {
  const { image, base, created } = options;
  const env = new Map<string, string>();
  for (const kv of base?.config.Env ?? [`PATH=${DEFAULT_PATH}`]) {
    const i = kv.indexOf('=');
    env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  for (const [k, v] of Object.entries(image.env)) env.set(k, v);
  const entrypoint = image.entrypoint ?? base?.config.Entrypoint;
  const cmd = image.cmd ?? (image.entrypoint ? undefined : base?.config.Cmd);
  const ports: Record<string, Record<string, never>> = { ...(base?.config.ExposedPorts ?? {}) };
  for (const p of image.ports) ports[typeof p === 'number' || !p.includes('/') ? `${p}/tcp` : p] = {};
  const volumes: Record<string, Record<string, never>> = { ...(base?.config.Volumes ?? {}) };
  for (const v of image.volumes) volumes[v] = {};
  const labels = { ...(base?.config.Labels ?? {}), ...image.labels };
  const user = options.resolvedUser ?? image.user ?? base?.config.User;
  const workdir = image.workdir ?? base?.config.WorkingDir;
  const platform = ociPlatform(options.arch);
  return {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      Env: [...env].map(([k, v]) => `${k}=${v}`),
      ...(entrypoint ? { Entrypoint: [...entrypoint] } : {}),
      ...(cmd ? { Cmd: [...cmd] } : {}),
      ...(workdir ? { WorkingDir: workdir } : {}),
      ...(user ? { User: user } : {}),
      ...(Object.keys(ports).length ? { ExposedPorts: sortRecord(ports) } : {}),
      ...(Object.keys(volumes).length ? { Volumes: sortRecord(volumes) } : {}),
      ...(Object.keys(labels).length ? { Labels: sortRecord(labels) } : {}),
    },
    rootfs: {
      type: 'layers',
      diff_ids: [...(base?.rootfs.diff_ids ?? []), ...options.layers.map((l) => l.diffId)],
    },
    history: [...(base?.history ?? []), ...options.layers.map((l) => ({ created, created_by: l.createdBy }))],
  };
}

function sortRecord<T>(r: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * `user: app` as the numeric `uid:gid` a bake stores, so every OCI runtime runs it the same way:
 * found among the users of the image and of the images it is built on. A numeric user, or a name
 * no image declares, is left as it is.
 */
export function resolveUser(images: readonly ImageSpec[], image: ImageSpec): { resolvedUser?: string } {
  if (!image.user || /^\d+(:\d+)?$/.test(image.user)) return {};
  const seen = new Set<string>();
  for (
    let img: ImageSpec | undefined = image;
    img && !seen.has(img.name);
    img = images.find((i) => i.name === img!.from)
  ) {
    seen.add(img.name);
    const u = img.users.find((x) => x.name === image.user);
    if (u) return { resolvedUser: `${u.uid}:${u.gid ?? u.uid}` };
  }
  return {};
}
