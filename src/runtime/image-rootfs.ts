import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  digestHex,
  unpackLayers,
  writeFileAtomic,
  type Digest,
  type ImageConfig,
  type OciStore,
} from '../oci/index.js';
import { IntegrityError } from '../errors/index.js';
import { attachedFiles } from './image-files.js';
import { withUnpack } from './rootfs-gc.js';
import { compareEntries, describeDrift, walkTree, type TreeEntry } from './tree.js';
import type { RunOnceOptions } from './oci-runtime.js';

/** Unpacks in progress in this process, by destination: concurrent callers share one. */
const unpacking = new Map<string, Promise<string>>();

/**
 * Unpacks an image's layers once per digest into `<rootfsDir>/<hex>` and returns that path. Every
 * instance of the image shares it read-only. The unpack goes to a temporary directory renamed into
 * place, so a crash never leaves a half-unpacked root that later runs would trust. Calls made while
 * an unpack of the same digest runs wait for it rather than unpacking again (a fleet of 100
 * starting at once reads the layers once, not 100 times).
 */
export function ensureRootfs(store: OciStore, manifestDigest: Digest, rootfsDir: string): Promise<string> {
  const dest = path.join(rootfsDir, digestHex(manifestDigest));
  const running = unpacking.get(dest);
  if (running) return running;
  // Never alongside a collection of unused roots (rootfs-gc.ts), which could take this one's base.
  const work = withUnpack(() => unpackOnce(store, manifestDigest, dest)).finally(() =>
    unpacking.delete(dest),
  );
  unpacking.set(dest, work);
  return work;
}

async function unpackOnce(store: OciStore, manifestDigest: Digest, dest: string): Promise<string> {
  if (await isDirectory(dest)) {
    if (await exists(filesManifestPath(dest))) return dest;
    // A root with no manifest of its files (a crash between the two, or an older kiln) cannot be
    // verified: it is set aside, and a new one unpacked from the verified layers.
    await rename(dest, `${dest}.unverified-${randomBytes(4).toString('hex')}`).catch(() => {});
  }
  const layers = (await store.getManifest(manifestDigest)).layers.map((l) => l.digest);
  // An app release shares every layer but the app's with the one before. Its root starts as a
  // hard-link copy of the root of those layers, kept for the next release (made whole the first
  // time), and only the top layer is unpacked on top.
  const dir = path.dirname(dest);
  let base = await closestBase(dir, layers);
  if (base === undefined && layers.length > 1) {
    const below = layers.slice(0, -1);
    const key = createHash('sha256').update(below.join('\n')).digest('hex');
    const root = await unpackRoot(store, path.join(dir, key), `layers:${key}`, below, undefined);
    base = { root, layers: below, files: (await readManifestFile(root))!.files };
  }
  return unpackRoot(store, dest, manifestDigest, layers, base);
}

/** Unpacks `layers` (onto `base`'s root, whose layers they extend) into `dest`, with its manifest. */
async function unpackRoot(
  store: OciStore,
  dest: string,
  image: string,
  layers: readonly Digest[],
  base: { root: string; layers: readonly Digest[]; files: TreeEntry[] } | undefined,
): Promise<string> {
  if ((await isDirectory(dest)) && (await exists(filesManifestPath(dest)))) return dest;
  const todo = layers.slice(base?.layers.length ?? 0);
  const blobs = await Promise.all(todo.map((d) => store.getBlob(d)));
  const staging = `${dest}.staging-${randomBytes(4).toString('hex')}`;
  try {
    await unpackLayers(blobs, staging, { digests: todo, ...(base ? { onto: base.root } : {}) });
    // The known state: every file as unpacked from the digest-verified layers, before any
    // instance runs from it, so later drift (a file written from the host) can be told apart.
    // Files still hard-linked to the base's take its recorded sha256: same inode, same bytes (and
    // if the base's were changed, both roots' checks see it).
    const files = await walkTree(staging, {
      ignore: RUNTIME_MOUNT_POINTS,
      ...(base ? { reuse: { root: base.root, files: base.files } } : {}),
    });
    const record: FilesManifestFile = {
      digest: image,
      layers,
      ...(await declaredFiles(store, image, files)),
    };
    await writeFileAtomic(filesManifestPath(dest), JSON.stringify(record));
    await rename(staging, dest);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    // Another process may have unpacked the same root first; its result is as good as ours.
    if ((await isDirectory(dest)) && (await exists(filesManifestPath(dest)))) return dest;
    throw err;
  }
  return dest;
}

/**
 * The files an unpacked root is checked against from now on: the image's own manifest of files
 * (its attached artifact) when it has one, after checking the root is exactly that; else the root
 * as unpacked. Owners are compared only as root: unpacking as another user cannot set them.
 * @throws IntegrityError when the root is not what the image's manifest lists.
 */
async function declaredFiles(
  store: OciStore,
  image: string,
  unpacked: TreeEntry[],
): Promise<Pick<FilesManifestFile, 'files' | 'source' | 'artifact'>> {
  const declared = image.startsWith('sha256:') ? await attachedFiles(store, image as Digest) : undefined;
  if (!declared || process.getuid?.() !== 0) return { files: unpacked, source: 'unpacked' };
  const files = declared.files.filter((f) => !isMountPoint(f.path));
  const drift = compareEntries(files, unpacked);
  if (drift.length > 0) {
    throw new IntegrityError(
      `${image} unpacks to a root that is not what its manifest of files ${declared.artifact} lists: ` +
        `${describeDrift(drift)}\n  fix: bake the image again (kiln bake), which attaches a fresh manifest of its files`,
    );
  }
  return { files, source: 'image', artifact: declared.artifact };
}

function isMountPoint(rel: string): boolean {
  return RUNTIME_MOUNT_POINTS.some((p) => rel === p || rel.startsWith(`${p}/`));
}

/**
 * Paths of a rootfs that belong to the runtime, not the image: its mount points, which crun or
 * runc create on the shared root when the image lacks them. Drift checks leave them out.
 */
export const RUNTIME_MOUNT_POINTS: readonly string[] = ['proc', 'dev', 'sys', 'tmp'];

/** Where the manifest of a rootfs's files is kept: beside it, never inside it. */
export function filesManifestPath(rootfs: string): string {
  return `${rootfs}.files.json`;
}

/** `<hex>.files.json`: the image, its layers (lowest first) and its files as unpacked. */
interface FilesManifestFile {
  /** The image's manifest digest, or `layers:<hex>` for the root of an image's lower layers. */
  readonly digest: string;
  readonly layers: readonly Digest[];
  readonly files: TreeEntry[];
  /** `image`: the image's attached manifest of files, which the root was checked against; else as unpacked. */
  readonly source?: 'image' | 'unpacked';
  /** The digest of that artifact. */
  readonly artifact?: string;
}

/** The manifest of an unpacked rootfs's files, as taken when it was unpacked. */
export async function readFilesManifest(rootfs: string): Promise<TreeEntry[] | undefined> {
  return (await readManifestFile(rootfs))?.files;
}

/** Where a rootfs's manifest of files came from: the image's attached one, or the unpack. */
export async function filesManifestSource(rootfs: string): Promise<'image' | 'unpacked' | undefined> {
  const m = await readManifestFile(rootfs);
  return m && (m.source ?? 'unpacked');
}

async function readManifestFile(rootfs: string): Promise<FilesManifestFile | undefined> {
  const text = await readFile(filesManifestPath(rootfs), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as FilesManifestFile;
  } catch {
    return undefined;
  }
}

/**
 * The unpacked root in `rootfsDir` whose layers are the longest proper prefix of `layers`, with
 * its manifest; undefined when none shares a layer. Roots set aside (drifted) are never used.
 */
async function closestBase(
  rootfsDir: string,
  layers: readonly Digest[],
): Promise<{ root: string; layers: readonly Digest[]; files: TreeEntry[] } | undefined> {
  let best: { root: string; layers: readonly Digest[]; files: TreeEntry[] } | undefined;
  for (const name of await readdir(rootfsDir).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}\.files\.json$/.test(name)) continue;
    const root = path.join(rootfsDir, name.slice(0, 64));
    const m = await readManifestFile(root);
    if (!m?.layers || m.layers.length >= layers.length || m.layers.length <= (best?.layers.length ?? 0))
      continue;
    if (!m.layers.every((d, i) => d === layers[i]) || !(await isDirectory(root))) continue;
    best = { root, layers: m.layers, files: m.files };
  }
  return best;
}

/**
 * Sets a rootfs that drifted aside (`<hex>.tainted-<time>`), with its manifest, so the next
 * instance of the image gets a fresh one unpacked from the verified layers. Instances running from
 * it keep their mount; the directory is theirs until they stop. Returns where it went.
 */
export async function quarantineRootfs(rootfs: string): Promise<string | undefined> {
  const aside = `${rootfs}.tainted-${Date.now()}`;
  try {
    await rename(rootfs, aside);
  } catch {
    return undefined; // already set aside, or never there
  }
  await rm(filesManifestPath(rootfs), { force: true });
  return aside;
}

async function isDirectory(p: string): Promise<boolean> {
  return stat(p)
    .then((s) => s.isDirectory())
    .catch(() => false);
}

async function exists(p: string): Promise<boolean> {
  return stat(p)
    .then(() => true)
    .catch(() => false);
}

/**
 * How an image's configuration runs: entrypoint + cmd (`args` replace cmd, as `docker run` does),
 * its environment, working directory and numeric user.
 */
export function processFromImage(
  config: ImageConfig,
  args: readonly string[] = [],
  extraEnv: Readonly<Record<string, string>> = {},
): Pick<RunOnceOptions, 'args' | 'env' | 'cwd' | 'user'> {
  const entrypoint = config.config.Entrypoint ?? [];
  const cmd = args.length ? args : (config.config.Cmd ?? []);
  const env: Record<string, string> = {};
  for (const kv of config.config.Env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  Object.assign(env, extraEnv);
  const [uid, gid] = (config.config.User ?? '0:0').split(':');
  const user = /^\d+$/.test(uid ?? '') ? { uid: Number(uid), gid: Number(gid ?? uid) } : { uid: 0, gid: 0 };
  return {
    args: [...entrypoint, ...cmd],
    env,
    cwd: config.config.WorkingDir ?? '/',
    user,
  };
}
