import { appendFile, chmod, mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compareTree, describeDrift, walkTree } from './tree.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tree(): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'kiln-tree-'));
  dirs.push(root);
  await mkdir(path.join(root, 'etc'));
  await mkdir(path.join(root, 'proc'));
  await writeFile(path.join(root, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n', { mode: 0o644 });
  await writeFile(path.join(root, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
  await symlink('etc/passwd', path.join(root, 'link'));
  return root;
}

describe('walkTree and compareTree', () => {
  it('record every entry with type, mode, owner, size, sha256 and symlink target', async () => {
    const root = await tree();
    const files = await walkTree(root, { ignore: ['proc'] });
    expect(files.map((f) => f.path)).toEqual(['etc', 'etc/passwd', 'link', 'run.sh']);
    expect(files[1]).toMatchObject({ type: 'file', mode: 0o644, size: 26 });
    expect(files[1]!.sha256).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(files[2]).toMatchObject({ type: 'symlink', target: 'etc/passwd' });
    expect((await compareTree(root, files, { ignore: ['proc'] })).drift).toEqual([]);
  });

  it('find a file added, one changed, one removed, a mode changed and a symlink retargeted', async () => {
    const root = await tree();
    const files = await walkTree(root, { ignore: ['proc'] });
    await writeFile(path.join(root, 'etc', 'evil'), 'x');
    await writeFile(path.join(root, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/bash\n');
    await unlink(path.join(root, 'run.sh'));
    await chmod(path.join(root, 'etc'), 0o777);
    await unlink(path.join(root, 'link'));
    await symlink('/etc/shadow', path.join(root, 'link'));
    await writeFile(path.join(root, 'proc', 'ignored'), 'mount point contents are not the image');
    const { drift } = await compareTree(root, files, { ignore: ['proc'] });
    expect(drift.map((d) => `${d.path} ${d.change}`)).toEqual([
      'etc modified',
      'etc/evil added',
      'etc/passwd modified',
      'link modified',
      'run.sh removed',
    ]);
    expect(drift.find((d) => d.path === 'etc')!.detail).toBe('mode 0755 → 0777');
    expect(drift.find((d) => d.path === 'etc/passwd')!.detail).toBe('size 26 → 28');
    expect(describeDrift(drift, 2)).toBe(
      '/etc modified (mode 0755 → 0777); /etc/evil added (file not in the image); and 3 more',
    );
  });

  it('catch a same-size change by its sha256, and a quick check by the change time', async () => {
    const root = await tree();
    const files = await walkTree(root, { ignore: ['proc'] });
    const first = await compareTree(root, files, { ignore: ['proc'] });
    expect(first.baseline.size).toBe(4);
    // Same size, other bytes: the full check hashes; the quick one sees the change time move.
    await new Promise((r) => setTimeout(r, 10));
    await writeFile(path.join(root, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/zz\n');
    const full = await compareTree(root, files, { ignore: ['proc'] });
    expect(full.drift.map((d) => d.detail)).toEqual([expect.stringMatching(/^sha256 /)]);
    const quick = await compareTree(root, files, { ignore: ['proc'], baseline: first.baseline });
    expect(quick.drift.map((d) => d.path)).toEqual(['etc/passwd']);
    // Unchanged files are trusted by the quick check without being read again.
    await appendFile(path.join(root, 'run.sh'), '');
    const again = await compareTree(root, files, { ignore: ['proc'], baseline: first.baseline });
    expect(again.drift.map((d) => d.path)).toEqual(['etc/passwd']);
  });
});
