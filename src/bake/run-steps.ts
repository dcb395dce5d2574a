import { lstat, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KilnError } from '../errors/index.js';
import { unpackLayers, type LayerEntry } from '../oci/index.js';
import { runOnce } from '../runtime/index.js';
import type { RunStep } from '../spec/index.js';

/** How long one run step may take before it is killed. */
export const DEFAULT_RUN_STEP_TIMEOUT_MS = 15 * 60_000;

/** Paths a run step's changes are never taken from: kernel filesystems and scratch space. */
const IGNORED_ROOTS = ['proc', 'sys', 'dev', 'run', 'tmp'];

interface Snapshot {
  readonly type: LayerEntry['type'];
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly linkname?: string;
}

/** Describes a run step in messages and layer history. */
export function describeStep(step: RunStep): string {
  const cmd = typeof step === 'string' ? step : step.command;
  return typeof cmd === 'string' ? cmd : cmd.join(' ');
}

/**
 * Runs one step inside the image built so far, sandboxed by the OCI runtime (own namespaces, no
 * network unless the step asks for it), and returns the file changes as layer entries, with
 * whiteouts for what it deleted. The image's layers are unpacked into a scratch root that is
 * removed afterwards, whatever happens.
 */
export async function runStep(options: {
  readonly layers: readonly Buffer[];
  readonly step: RunStep;
  readonly index: number;
  readonly env: Readonly<Record<string, string>>;
  readonly workdir?: string;
  readonly runtime?: 'crun' | 'runc';
  readonly timeoutMs?: number;
}): Promise<LayerEntry[]> {
  const { step } = options;
  const scratch = await mkdtemp(path.join(tmpdir(), 'kiln-run-'));
  const rootfs = path.join(scratch, 'rootfs');
  try {
    await unpackLayers([...options.layers], rootfs);
    const before = await snapshot(rootfs);
    const command = typeof step === 'string' ? step : step.command;
    const args = typeof command === 'string' ? ['/bin/sh', '-c', command] : [...command];
    const network = typeof step === 'string' ? false : step.network;
    const env = { ...options.env, ...(typeof step === 'string' ? {} : step.env) };
    const result = await runOnce({
      rootfs,
      readonlyRootfs: false,
      args,
      env,
      cwd: options.workdir ?? '/',
      hostNetwork: network,
      timeoutMs: options.timeoutMs ?? DEFAULT_RUN_STEP_TIMEOUT_MS,
      ...(options.runtime ? { runtime: options.runtime } : {}),
      ...(network
        ? { mounts: [{ source: '/etc/resolv.conf', destination: '/etc/resolv.conf', readonly: true }] }
        : {}),
    });
    if (result.timedOut) {
      throw new KilnError(
        'runtime',
        `run[${options.index}] "${describeStep(step)}" did not finish within ${Math.round((options.timeoutMs ?? DEFAULT_RUN_STEP_TIMEOUT_MS) / 1000)}s and was killed`,
      );
    }
    if (result.exitCode !== 0) {
      const tail = (result.stderr || result.stdout).trim().split('\n').slice(-15).join('\n');
      throw new KilnError(
        'runtime',
        `run[${options.index}] "${describeStep(step)}" exited with code ${result.exitCode}${tail ? `:\n${tail}` : ''}`,
      );
    }
    const after = await snapshot(rootfs);
    return await diffEntries(rootfs, before, after);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function snapshot(root: string): Promise<Map<string, Snapshot>> {
  const out = new Map<string, Snapshot>();
  async function visit(rel: string): Promise<void> {
    for (const name of (await readdir(path.join(root, rel))).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      if (!rel && IGNORED_ROOTS.includes(name)) continue;
      const st = await lstat(path.join(root, childRel));
      const type: LayerEntry['type'] = st.isDirectory()
        ? 'directory'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isFile()
            ? 'file'
            : st.isFIFO()
              ? 'fifo'
              : st.isCharacterDevice()
                ? 'character-device'
                : 'block-device';
      out.set(childRel, {
        type,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        mtimeMs: st.mtimeMs,
        ...(type === 'symlink' ? { linkname: await readlink(path.join(root, childRel)) } : {}),
      });
      if (type === 'directory') await visit(childRel);
    }
  }
  await visit('');
  return out;
}

async function diffEntries(
  root: string,
  before: Map<string, Snapshot>,
  after: Map<string, Snapshot>,
): Promise<LayerEntry[]> {
  const entries: LayerEntry[] = [];
  for (const [p, s] of after) {
    const old = before.get(p);
    const same =
      old &&
      old.type === s.type &&
      old.mode === s.mode &&
      old.uid === s.uid &&
      old.gid === s.gid &&
      old.linkname === s.linkname &&
      (s.type === 'directory' || (old.size === s.size && old.mtimeMs === s.mtimeMs));
    if (same) continue;
    const base = { path: p, type: s.type, mode: s.mode, uid: s.uid, gid: s.gid };
    if (s.type === 'file') entries.push({ ...base, content: await readFile(path.join(root, p)) });
    else if (s.type === 'symlink') entries.push({ ...base, linkname: s.linkname! });
    else if (s.type === 'directory' || s.type === 'fifo') entries.push(base);
  }
  const removed = new Set([...before.keys()].filter((p) => !after.has(p)));
  for (const p of removed) {
    // A removed directory's contents go with it; one whiteout for the top is enough.
    const parent = path.posix.dirname(p);
    if (parent !== '.' && removed.has(parent)) continue;
    const wh = parent === '.' ? `.wh.${path.posix.basename(p)}` : `${parent}/.wh.${path.posix.basename(p)}`;
    entries.push({ path: wh, type: 'file', mode: 0o644, uid: 0, gid: 0, content: Buffer.alloc(0) });
  }
  return entries;
}
