import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { execa } from 'execa';

import { afterEach, describe, expect, it } from 'vitest';

import { ExitWatcher, exitCodeOfWaitStatus, type ProcessExit } from './exit-watch.js';

const started: ChildProcess[] = [];

afterEach(() => {
  for (const child of started.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/**
 * Starts `sh` with `script` running in the background, prints its pid, then turns into a `sleep`
 * that never reaps it: the background process stays a zombie once it exits, as a container's init
 * does on a host whose pid 1 is slow to reap. Returns the zombie-to-be's pid.
 */
async function unreapedChild(script: string): Promise<number> {
  const parent = spawn('/bin/sh', ['-c', `/bin/sh -c '${script}' & echo $!; exec sleep 60`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.push(parent);
  const [chunk] = (await once(parent.stdout!, 'data')) as [Buffer];
  return Number(chunk.toString().trim());
}

function exits(): {
  watcher: ExitWatcher;
  heard: Map<string, ProcessExit>;
  next: (key: string) => Promise<ProcessExit>;
} {
  const heard = new Map<string, ProcessExit>();
  const waiting = new Map<string, (exit: ProcessExit) => void>();
  const watcher = new ExitWatcher((key, exit) => {
    expect(heard.has(key)).toBe(false);
    heard.set(key, exit);
    waiting.get(key)?.(exit);
  }, 10);
  const next = (key: string): Promise<ProcessExit> =>
    heard.has(key) ? Promise.resolve(heard.get(key)!) : new Promise((resolve) => waiting.set(key, resolve));
  return { watcher, heard, next };
}

describe('exitCodeOfWaitStatus', () => {
  it.each([
    [0, 0],
    [7 << 8, 7],
    [255 << 8, 255],
    [9, 137],
    [15, 143],
    [9 | 0x80, 137],
  ])('reads wait status %i as exit code %i', (status, code) => {
    expect(exitCodeOfWaitStatus(status)).toBe(code);
  });
});

describe('ExitWatcher', () => {
  it('reports the exit code of a process that exits by itself, while it is a zombie', async () => {
    const { watcher, next } = exits();
    try {
      const pid = await unreapedChild('sleep 0.2; exit 5');
      watcher.watch('a', pid);
      expect(watcher.pidOf('a')).toBe(pid);
      expect(await next('a')).toEqual({ exitCode: 5 });
      expect(watcher.pidOf('a')).toBeUndefined();
    } finally {
      watcher.close();
    }
  });

  it('signals a running process and reports 128 + the signal', async () => {
    const { watcher, next } = exits();
    try {
      const pid = await unreapedChild('exec sleep 60');
      watcher.watch('b', pid);
      expect(watcher.signal('b', 'SIGKILL')).toBe(true);
      expect(await next('b')).toEqual({ exitCode: 137 });
      expect(watcher.signal('b', 'SIGKILL')).toBe(false);
    } finally {
      watcher.close();
    }
  });

  it('reports a reaped process without an exit code, and never signals its pid again', async () => {
    const { watcher, next } = exits();
    try {
      const child = spawn('sleep', ['60'], { stdio: 'ignore' });
      started.push(child);
      watcher.watch('c', child.pid!);
      child.kill('SIGKILL');
      await once(child, 'exit');
      expect(watcher.signal('c', 'SIGKILL')).toBe(false);
      expect(await next('c')).toEqual({});
    } finally {
      watcher.close();
    }
  });

  it('reports a pid that is gone before it is watched on the next pass, not inside watch', async () => {
    const { watcher, heard, next } = exits();
    try {
      const child = spawn('true', { stdio: 'ignore' });
      await once(child, 'exit');
      watcher.watch('d', child.pid!);
      expect(heard.has('d')).toBe(false);
      expect(await next('d')).toEqual({});
    } finally {
      watcher.close();
    }
  });

  it('does not report what it stopped watching, and keeps reporting after a callback throws', async () => {
    const reported: string[] = [];
    const watcher = new ExitWatcher((key) => {
      reported.push(key);
      throw new Error('callback bug');
    }, 10);
    try {
      const quiet = await unreapedChild('exec sleep 60');
      const loud = await unreapedChild('exec sleep 60');
      const other = await unreapedChild('exec sleep 60');
      watcher.watch('quiet', quiet);
      watcher.watch('loud', loud);
      watcher.watch('other', other);
      watcher.unwatch('quiet');
      for (const pid of [quiet, loud, other]) process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 100 && reported.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect(reported.sort()).toEqual(['loud', 'other']);
    } finally {
      watcher.close();
    }
  });
});

describe('ExitWatcher keep-alive', () => {
  // A Node process whose only pending work is the watcher: it waits for the exit only when kept alive.
  const script = (keepAlive: boolean): string => `
    import { ExitWatcher } from ${JSON.stringify(join(import.meta.dirname, 'exit-watch.ts'))};
    const watcher = new ExitWatcher((_key, exit) => { console.log('exit', exit.exitCode); watcher.close(); }, 10);
    watcher.keepAlive(${keepAlive});
    watcher.watch('x', Number(process.argv.at(-1)));
    console.error('watching');
  `;

  it.each([
    [true, 'exit 137'],
    [false, ''],
  ])('with keepAlive(%s) the process waits for the exit, printing %j', async (keepAlive, expected) => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-keepalive-'));
    try {
      const file = join(dir, 'watch.mts');
      await writeFile(file, script(keepAlive));
      const pid = await unreapedChild('exec sleep 60');
      const child = execa('node', ['--import', 'jiti/register', file, String(pid)], {
        cwd: join(import.meta.dirname, '../..'),
      });
      // Judged from the moment it watches, however slow its start: kept alive, it is still running
      // half a second later; not kept alive, it exits on its own while the watched process lives.
      const watching = new Promise<void>((resolve) =>
        child.stderr!.on('data', (chunk: Buffer) => chunk.toString().includes('watching') && resolve()),
      );
      await Promise.race([watching, child]);
      const outcome = await Promise.race([
        child.then(() => 'exited'),
        sleep(keepAlive ? 500 : 60_000, 'still running'),
      ]);
      expect(outcome).toBe(keepAlive ? 'still running' : 'exited');
      process.kill(pid, 'SIGKILL');
      expect((await child).stdout).toBe(expected);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
