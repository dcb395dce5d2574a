/**
 * The manifest of an image's files, as an OCI artifact attached to the image (a referrer, so the
 * image manifest and its digest stay as they are): every path of the root the layers make, with
 * its type, mode, owner, size and sha256 (regular files) or target (symlinks). Bake computes it
 * from the layers with {@link filesOfLayers}, which applies them in memory exactly as
 * `unpackLayers` applies them on disk (whiteouts, opaque directories, symlinked parents, hard
 * links sharing one inode, implicit directories), so the root kiln unpacks can be checked against
 * it, and the drift check compares running roots with the image's own manifest.
 */
import { createHash } from 'node:crypto';
import { IntegrityError } from '../errors/index.js';
import { readLayer, type Digest, type LayerEntry, type OciStore } from '../oci/index.js';
import type { TreeEntry } from './tree.js';

/** The artifact (and media) type of an image's manifest of files. */
export const FILES_ARTIFACT_TYPE = 'application/vnd.kiln.files.v1+json';

/** The artifact's content: the image it describes and its files, sorted by path. */
export interface FilesArtifact {
  readonly image: Digest;
  readonly files: readonly TreeEntry[];
}

type Meta = { mode: number; uid: number; gid: number };
type Node =
  | ({ kind: 'directory'; children: Map<string, Node> } & Meta)
  | ({ kind: 'file'; size: number; sha256: string } & Meta)
  | ({ kind: 'symlink'; target: string } & Meta)
  | ({ kind: 'fifo' } & Meta);
type Dir = Extract<Node, { kind: 'directory' }>;

/** The directory `unpackLayers` makes for a path's missing parent. */
const IMPLICIT: Meta = { mode: 0o755, uid: 0, gid: 0 };
const MAX_HOPS = 40;

/**
 * The files of the root `layers` (lowest first, gzip or plain tar) make, as `walkTree` would list
 * them after `unpackLayers` (as root, so owners are the tar's), applied `onto` the files of the
 * layers below them when given (a base image's manifest). Throws IntegrityError for what the
 * unpacker refuses.
 */
export async function filesOfLayers(
  layers: readonly Buffer[],
  options: { readonly onto?: readonly TreeEntry[] } = {},
): Promise<TreeEntry[]> {
  const root: Dir = { kind: 'directory', children: new Map(), ...IMPLICIT };
  // Nodes never change once made (a write replaces them) but for a directory's attributes, so a
  // flat list rebuilds the tree exactly, hard links included: sharing a node changes nothing then.
  for (const e of options.onto ?? []) seed(root, e);
  for (const [i, blob] of layers.entries()) {
    const touched = new Set<string>();
    const seen = new Map<string, LayerEntry['type']>();
    for (const entry of await readLayer(blob)) {
      try {
        const before = seen.get(entry.path);
        if (before !== undefined && (before !== 'directory' || entry.type !== 'directory')) {
          throw new Error('the path appears more than once in the layer');
        }
        seen.set(entry.path, entry.type);
        apply(root, entry, touched);
      } catch (err) {
        throw new IntegrityError(`layer ${i}, entry "${entry.path}": ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
  }
  const out: TreeEntry[] = [];
  flatten(root, '', out);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The files manifest attached to image `digest` in `store`, with the artifact's digest; undefined when none is. */
export async function attachedFiles(
  store: OciStore,
  digest: Digest,
): Promise<{ readonly artifact: Digest; readonly files: readonly TreeEntry[] } | undefined> {
  const [ref] = await store.referrers(digest, FILES_ARTIFACT_TYPE);
  if (!ref) return undefined;
  const layer = (await store.getManifest(ref.digest)).layers[0];
  if (!layer) return undefined;
  const body = JSON.parse((await store.getBlob(layer.digest)).toString('utf8')) as Partial<FilesArtifact>;
  if (body.image !== digest || !Array.isArray(body.files)) {
    throw new IntegrityError(`the files manifest ${ref.digest} attached to ${digest} does not describe it`);
  }
  return { artifact: ref.digest, files: body.files };
}

function seed(root: Dir, e: TreeEntry): void {
  const parts = e.path.split('/');
  const name = parts.pop()!;
  let parent: Node | undefined = root;
  for (const part of parts) parent = parent?.kind === 'directory' ? parent.children.get(part) : undefined;
  if (parent?.kind !== 'directory')
    throw new IntegrityError(`${e.path}: its directory is not listed before it`);
  const meta = { mode: e.mode, uid: e.uid, gid: e.gid };
  if (e.type === 'directory') parent.children.set(name, { kind: 'directory', children: new Map(), ...meta });
  else if (e.type === 'file')
    parent.children.set(name, { kind: 'file', size: e.size!, sha256: e.sha256!, ...meta });
  else if (e.type === 'symlink') parent.children.set(name, { kind: 'symlink', target: e.target!, ...meta });
  else if (e.type === 'fifo') parent.children.set(name, { kind: 'fifo', ...meta });
  else throw new IntegrityError(`${e.path}: a ${e.type} is never unpacked`);
}

function apply(root: Dir, entry: LayerEntry, touched: Set<string>): void {
  const parts = entry.path.split('/');
  const name = parts.pop()!;
  if (name === '.wh..wh..opq') {
    const dir = resolve(root, parts, false, 0);
    if (dir) hideLower(dir.node, dir.path, touched);
    return;
  }
  if (name.startsWith('.wh.')) {
    const victim = name.slice(4);
    if (victim === '' || victim === '.' || victim === '..' || victim.startsWith('.wh.')) {
      throw new Error(`unsupported whiteout "${name}"`);
    }
    const dir = resolve(root, parts, false, 0);
    if (dir && !touched.has(join(dir.path, victim))) dir.node.children.delete(victim);
    return;
  }
  const parent = resolve(root, parts, true, 0, touched)!;
  const path = join(parent.path, name);
  touch(path, touched);
  const meta = { mode: entry.mode, uid: entry.uid, gid: entry.gid };
  const existing = parent.node.children.get(name);
  switch (entry.type) {
    case 'directory':
      if (existing?.kind === 'directory') Object.assign(existing, meta);
      else parent.node.children.set(name, { kind: 'directory', children: new Map(), ...meta });
      return;
    case 'file': {
      const content = entry.content ?? Buffer.alloc(0);
      const sha256 = `sha256:${createHash('sha256').update(content).digest('hex')}`;
      parent.node.children.set(name, { kind: 'file', size: content.length, sha256, ...meta });
      return;
    }
    case 'symlink':
      // A symlink's mode is always 0777 on Linux; its owner is the tar's (lchown).
      parent.node.children.set(name, { kind: 'symlink', target: entry.linkname!, ...meta, mode: 0o777 });
      return;
    case 'link': {
      const source = literal(root, entry.linkname!);
      if (source !== existing) parent.node.children.set(name, source);
      return;
    }
    case 'fifo':
      parent.node.children.set(name, { kind: 'fifo', ...meta });
      return;
    default:
      throw new Error(`${entry.type} refused (device nodes are not unpacked)`);
  }
}

/**
 * Directory `parts` from `start`, following symlinks as `unpackLayers` does (absolute targets from
 * the root, refusing the root itself); missing directories are made when `create`.
 */
function resolve(
  root: Dir,
  parts: readonly string[],
  create: boolean,
  hops: number,
  touched?: Set<string>,
  start: { node: Dir; path: string } = { node: root, path: '' },
): { node: Dir; path: string } | undefined {
  let cur = start;
  for (const part of parts) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (cur.path === '') throw new Error('a symlink climbs above the image root');
      const up = cur.path.includes('/') ? cur.path.slice(0, cur.path.lastIndexOf('/')) : '';
      cur = { node: lookup(root, up), path: up };
      continue;
    }
    const next = cur.node.children.get(part);
    const path = join(cur.path, part);
    if (next === undefined) {
      if (!create) return undefined;
      const made: Dir = { kind: 'directory', children: new Map(), ...IMPLICIT };
      cur.node.children.set(part, made);
      if (touched) touch(path, touched);
      cur = { node: made, path };
    } else if (next.kind === 'symlink') {
      if (hops >= MAX_HOPS) throw new Error(`more than ${MAX_HOPS} symlinks on the path`);
      const from = next.target.startsWith('/') ? { node: root, path: '' } : cur;
      const to = resolve(root, next.target.split('/'), false, hops + 1, undefined, from);
      if (to?.path === '') throw new Error(`symlink "${path}" points at the image root`);
      if (to === undefined) {
        if (!create) return undefined;
        throw new Error(`symlink "${path}" -> "${next.target}" on the path points at nothing`);
      }
      cur = to;
    } else if (next.kind === 'directory') {
      cur = { node: next, path };
    } else {
      throw new Error(`"${path}" is not a directory`);
    }
  }
  return cur;
}

/** The directory at real path `path` (already resolved). */
function lookup(root: Dir, path: string): Dir {
  let node: Dir = root;
  for (const part of path === '' ? [] : path.split('/')) node = node.children.get(part) as Dir;
  return node;
}

/** A hard link's target, walked without following symlinks, as `unpackLayers` does. */
function literal(root: Dir, target: string): Node {
  const parts = target.split('/');
  let node: Node = root;
  for (const [i, part] of parts.entries()) {
    const next: Node | undefined = node.kind === 'directory' ? node.children.get(part) : undefined;
    if (next === undefined) throw new Error(`hard link target "${target}" does not exist`);
    const last = i === parts.length - 1;
    if (!last && next.kind === 'symlink')
      throw new Error(`hard link target "${target}" passes through a symlink`);
    if (!last && next.kind !== 'directory') throw new Error(`hard link target "${target}": not a directory`);
    if (last && next.kind === 'directory') throw new Error(`hard link target "${target}" is a directory`);
    node = next;
  }
  return node;
}

function hideLower(dir: Dir, path: string, touched: ReadonlySet<string>): void {
  for (const [name, child] of dir.children) {
    const p = join(path, name);
    if (!touched.has(p)) dir.children.delete(name);
    else if (child.kind === 'directory') hideLower(child, p, touched);
  }
}

function touch(path: string, touched: Set<string>): void {
  for (let p = path; p !== ''; p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') touched.add(p);
}

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function flatten(dir: Dir, path: string, out: TreeEntry[]): void {
  for (const [name, node] of dir.children) {
    const p = join(path, name);
    const base = { path: p, mode: node.mode, uid: node.uid, gid: node.gid };
    switch (node.kind) {
      case 'directory':
        out.push({ ...base, type: 'directory' });
        flatten(node, p, out);
        break;
      case 'file':
        out.push({ ...base, type: 'file', size: node.size, sha256: node.sha256 });
        break;
      case 'symlink':
        out.push({ ...base, type: 'symlink', target: node.target });
        break;
      case 'fifo':
        out.push({ ...base, type: 'fifo' });
        break;
    }
  }
}
