import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import picomatch from 'picomatch';
import { NotFoundError, ValidationError, wrap } from '../errors/index.js';
import { readLayer, sha256Digest, type LayerEntry } from '../oci/index.js';
import type { AppSpec, FileSpec } from '../spec/index.js';

/**
 * Host files turned into layer entries: the `files` of an image and its `app`. Modes are
 * normalised (0644, or 0755 when any execute bit is set) so a bake does not depend on the umask
 * of the machine that checked the sources out.
 */

/** Normalises a host file mode the way reproducible builds do. */
export function normaliseMode(mode: number, isDir: boolean): number {
  if (isDir) return 0o755;
  return mode & 0o111 ? 0o755 : 0o644;
}

/** Reads the image's declared `files` relative to `configDir`. */
export async function fileEntries(
  files: readonly FileSpec[],
  configDir: string,
  configFile: string,
): Promise<LayerEntry[]> {
  const out: LayerEntry[] = [];
  for (const [i, f] of files.entries()) {
    const src = path.resolve(configDir, f.src);
    const info = await stat(src).catch(() => undefined);
    if (!info?.isFile()) {
      throw new ValidationError(configFile, [
        {
          path: `files[${i}].src`,
          message: `${src} is not a readable file`,
          fix: 'point src at a file, relative to the config file',
        },
      ]);
    }
    out.push({
      path: f.dest.slice(1),
      type: 'file',
      mode: f.mode ?? normaliseMode(info.mode, false),
      uid: f.uid,
      gid: f.gid,
      content: await readFile(src),
    });
  }
  return out;
}

/** The app as layer entries under `app.dest`, owned by `app.owner`. */
export async function appEntries(
  app: AppSpec,
  configDir: string,
  configFile: string,
  cacheDir?: string,
): Promise<LayerEntry[]> {
  const src = path.resolve(configDir, app.src);
  const info = await stat(src).catch(() => undefined);
  if (!info) {
    throw new ValidationError(configFile, [
      {
        path: 'app.src',
        message: `${src} does not exist`,
        fix: 'point app.src at a directory, a tarball or an npm project',
      },
    ]);
  }
  const type = app.type ?? (info.isDirectory() ? 'dir' : 'tar');
  const [uid, gid] = app.owner.split(':').map(Number) as [number, number];
  let relative: LayerEntry[];
  if (type === 'dir') {
    if (!info.isDirectory())
      throw new ValidationError(configFile, [
        { path: 'app.src', message: `${src} is not a directory`, fix: 'set app.type to "tar" for a tarball' },
      ]);
    relative = await walkDirectory(src, app.ignore);
  } else if (type === 'tar') {
    relative = stripPackagePrefix(
      await readLayer(await readFile(src)).catch((e: unknown) => {
        throw wrap(`reading app tarball ${src}`, e);
      }),
    );
  } else {
    relative = stripPackagePrefix(await readLayer(await cachedNpmPack(src, cacheDir)));
  }
  const dest = app.dest.slice(1);
  return [
    { path: dest, type: 'directory', mode: 0o755, uid, gid },
    ...relative.map((e) => ({
      ...e,
      path: `${dest}/${e.path}`,
      uid,
      gid,
      ...(e.type === 'link' && e.linkname ? { linkname: `${dest}/${e.linkname}` } : {}),
    })),
  ];
}

async function walkDirectory(root: string, ignore: readonly string[]): Promise<LayerEntry[]> {
  const ignored = picomatch([...ignore], { dot: true });
  const out: LayerEntry[] = [];
  async function visit(rel: string): Promise<void> {
    const names = (await readdir(path.join(root, rel))).sort();
    for (const name of names) {
      const childRel = rel ? `${rel}/${name}` : name;
      if (ignored(childRel) || ignored(`${childRel}/`)) continue;
      const abs = path.join(root, childRel);
      const st = await lstat(abs);
      if (st.isDirectory()) {
        out.push({ path: childRel, type: 'directory', mode: 0o755, uid: 0, gid: 0 });
        await visit(childRel);
      } else if (st.isSymbolicLink()) {
        out.push({
          path: childRel,
          type: 'symlink',
          mode: 0o777,
          uid: 0,
          gid: 0,
          linkname: await readlink(abs),
        });
      } else if (st.isFile()) {
        out.push({
          path: childRel,
          type: 'file',
          mode: normaliseMode(st.mode, false),
          uid: 0,
          gid: 0,
          content: await readFile(abs),
        });
      }
    }
  }
  await visit('');
  return out;
}

/** npm tarballs keep everything under `package/`; the app's root is what is inside it. */
function stripPackagePrefix(entries: LayerEntry[]): LayerEntry[] {
  const under = (p: string) => p === 'package' || p.startsWith('package/');
  if (entries.length === 0 || !entries.every((e) => under(e.path))) return entries;
  return entries
    .filter((e) => e.path !== 'package')
    .map((e) => ({
      ...e,
      path: e.path.slice('package/'.length),
      ...(e.type === 'link' && e.linkname ? { linkname: e.linkname.replace(/^package\//, '') } : {}),
    }));
}

/**
 * `npm pack` costs a process start; the tarball depends only on the project's files, so it is
 * cached by a digest over them (node_modules and .git aside, which npm never packs).
 */
async function cachedNpmPack(projectDir: string, cacheDir: string | undefined): Promise<Buffer> {
  if (!cacheDir) return npmPack(projectDir);
  const key = entriesKey(
    await walkDirectory(projectDir, [
      'node_modules/**',
      '.git/**',
      '.kiln/**',
      'node_modules',
      '.git',
      '.kiln',
    ]),
  );
  const file = path.join(cacheDir, 'npm-pack', `${key.slice('sha256:'.length)}.tgz`);
  const hit = await readFile(file).catch(() => undefined);
  if (hit) return hit;
  const packed = await npmPack(projectDir);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(`${file}.tmp-${process.pid}`, packed);
  await rename(`${file}.tmp-${process.pid}`, file);
  return packed;
}

/** Packs an npm project with `npm pack`, the way it would be published, and returns the tarball. */
async function npmPack(projectDir: string): Promise<Buffer> {
  const out = await mkdtemp(path.join(tmpdir(), 'kiln-npm-pack-'));
  try {
    const { stdout } = await execa('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], {
      cwd: projectDir,
    }).catch((e: unknown) => {
      throw new NotFoundError(
        `npm pack in ${projectDir} failed: ${e instanceof Error ? e.message : String(e)}`,
      );
    });
    const [packed] = JSON.parse(stdout) as { filename: string }[];
    if (!packed) throw new NotFoundError(`npm pack in ${projectDir} produced no tarball`);
    return await readFile(path.join(out, path.basename(packed.filename)));
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** A digest over entries' paths, types, modes, owners, link targets and contents: a layer's input key. */
export function entriesKey(entries: readonly LayerEntry[]): string {
  const lines = [...entries]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((e) =>
      [
        e.path,
        e.type,
        e.mode.toString(8),
        e.uid,
        e.gid,
        e.linkname ?? '',
        e.content ? sha256Digest(e.content) : '',
      ].join('\0'),
    );
  return sha256Digest(lines.join('\n'));
}
