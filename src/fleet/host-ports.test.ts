import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostPortClaims } from './host-ports.js';
import { PortPicker } from './ports.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-claims-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The PID of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describe('HostPortClaims', () => {
  it('gives a port to one control plane until it lets go', () => {
    const a = new HostPortClaims(dir, '/projects/a');
    const b = new HostPortClaims(dir, '/projects/b');
    expect(a.claim(20000)).toBe(true);
    expect(a.claim(20000)).toBe(true);
    expect(b.claim(20000)).toBe(false);
    expect(b.claim(20001)).toBe(true);
    a.release(20000);
    expect(b.claim(20000)).toBe(true);
    expect(b.held()).toEqual([20000, 20001]);
    b.releaseAllBut(new Set([20001]));
    expect(b.held()).toEqual([20001]);
    expect(fs.readdirSync(dir)).toEqual(['20001']);
  });

  it("takes over a claim whose process is gone, and its own home's earlier claims", async () => {
    const gone = new HostPortClaims(dir, '/projects/a', await deadPid());
    expect(gone.claim(20000)).toBe(true);
    const b = new HostPortClaims(dir, '/projects/b');
    expect(b.claim(20000)).toBe(true);

    // The same home, an earlier control plane (still running here, as in a restart's overlap).
    const earlier = new HostPortClaims(dir, '/projects/c', process.ppid);
    expect(earlier.claim(20002)).toBe(true);
    const restarted = new HostPortClaims(dir, '/projects/c');
    expect(restarted.claim(20002)).toBe(true);
    expect(fs.readFileSync(path.join(dir, '20002'), 'utf8')).toBe(`${process.pid} /projects/c\n`);
  });

  it('leaves a claim file being written alone, and clears one left unreadable long ago', () => {
    const file = path.join(dir, '20000');
    fs.writeFileSync(file, '123');
    const a = new HostPortClaims(dir, '/projects/a');
    expect(a.claim(20000)).toBe(false);
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(file, old, old);
    expect(a.claim(20000)).toBe(true);
  });

  it("does not remove another's claim when told to release a port it does not hold", () => {
    const a = new HostPortClaims(dir, '/projects/a');
    const b = new HostPortClaims(dir, '/projects/b');
    expect(a.claim(20000)).toBe(true);
    b.release(20000);
    b.releaseAllBut(new Set());
    expect(b.claim(20000)).toBe(false);
  });
});

describe('PortPicker with host-wide claims', () => {
  it('never hands one port to two control planes, even before either instance listens', async () => {
    // Two control planes, each with its own store. Between a pick and its instance listening the
    // bind check finds the port free, so without claims the second would take it too.
    const records: number[][] = [[], []];
    const pickers = ['/projects/a', '/projects/b'].map(
      (home, k) =>
        new PortPicker({
          range: { from: 19400, to: 19409 },
          host: '127.0.0.1',
          clock: Date.now,
          held: () => records[k]!,
          claims: new HostPortClaims(dir, home),
        }),
    );
    for (let i = 0; i < 6; i++) await pickers[i % 2]!.pick((port) => records[i % 2]!.push(port));
    expect(records[0]).toEqual([19400, 19402, 19404]);
    expect(records[1]).toEqual([19401, 19403, 19405]);
  });

  it('gives up the claims of ports no record holds any more', async () => {
    const held: number[] = [];
    const claims = new HostPortClaims(dir, '/projects/a');
    const picker = new PortPicker({
      range: { from: 19400, to: 19409 },
      host: '127.0.0.1',
      clock: Date.now,
      held: () => held,
      claims,
    });
    await picker.pick((port) => held.push(port));
    await picker.pick((port) => held.push(port));
    expect(claims.held()).toEqual(held);
    held.shift(); // the first instance is stopped: its record no longer holds its port
    await picker.pick((port) => held.push(port));
    expect(claims.held()).toEqual([...held].sort((a, b) => a - b));
    expect(held).toEqual([19401, 19400]);
  });
});
