import { stat } from 'node:fs/promises';
import path from 'node:path';
import { digestHex, unpackLayers, type Digest, type ImageConfig, type OciStore } from '../oci/index.js';
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
  const work = unpackOnce(store, manifestDigest, dest).finally(() => unpacking.delete(dest));
  unpacking.set(dest, work);
  return work;
}

async function unpackOnce(store: OciStore, manifestDigest: Digest, dest: string): Promise<string> {
  if (
    await stat(dest)
      .then((s) => s.isDirectory())
      .catch(() => false)
  )
    return dest;
  const manifest = await store.getManifest(manifestDigest);
  const blobs = await Promise.all(manifest.layers.map((l) => store.getBlob(l.digest)));
  try {
    await unpackLayers(blobs, dest);
  } catch (err) {
    // Another process may have unpacked the same digest first; its result is as good as ours.
    if (
      await stat(dest)
        .then((s) => s.isDirectory())
        .catch(() => false)
    )
      return dest;
    throw err;
  }
  return dest;
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
