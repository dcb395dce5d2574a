/**
 * Host-wide port claims. Every kiln control plane on a host allocates instance ports from the same
 * range, and a bind check alone cannot tell two of them apart in the moment between one picking a
 * port and its instance listening there: both find it free and both take it. So a control plane
 * first claims a port with a file created exclusively (`O_EXCL`) in a directory all of them share;
 * the file names the claimant's PID and home. A claim whose process is gone is stale and is taken
 * over; a control plane restarted on the same home takes its own claims back.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where claims are kept unless told: `<tmpdir>/kiln-ports`, shared by every user (mode 1777). */
export function defaultClaimsDir(): string {
  return path.join(os.tmpdir(), 'kiln-ports');
}

interface Claimant {
  readonly pid: number;
  readonly home: string;
}

/** One control plane's claims. Synchronous, so a claim is decided before anything else runs. */
export class HostPortClaims {
  readonly #dir: string;
  readonly #me: Claimant;
  readonly #mine = new Set<number>();

  /** `home` tells this control plane's claims from another's in the same process (tests). */
  constructor(dir: string, home: string, pid: number = process.pid) {
    this.#dir = dir;
    this.#me = { pid, home: path.resolve(home) };
    fs.mkdirSync(dir, { recursive: true, mode: 0o1777 });
  }

  /** The ports this control plane holds claims on. */
  held(): readonly number[] {
    return [...this.#mine].sort((a, b) => a - b);
  }

  /** Claims `port`: true if it is now ours, false if a live control plane holds it. */
  claim(port: number): boolean {
    if (this.#mine.has(port)) return true;
    const file = this.#file(port);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, `${this.#me.pid} ${this.#me.home}\n`, { flag: 'wx', mode: 0o644 });
        this.#mine.add(port);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readClaim(file);
      if (holder === undefined) {
        // Being written this instant, or left unreadable long ago by a crash mid-write.
        if (!olderThan(file, STALE_UNREADABLE_MS)) return false;
      } else if (holder.home === this.#me.home) {
        if (holder.pid === this.#me.pid) {
          this.#mine.add(port);
          return true;
        }
        // This home's earlier control plane: restarted, it takes its own claims back.
      } else if (alive(holder.pid)) return false;
      fs.rmSync(file, { force: true });
    }
    return false;
  }

  /** Gives `port` up, if it is ours. */
  release(port: number): void {
    if (!this.#mine.delete(port)) return;
    const holder = readClaim(this.#file(port));
    if (holder?.pid === this.#me.pid && holder.home === this.#me.home)
      fs.rmSync(this.#file(port), { force: true });
  }

  /** Gives up every claim of ours that `keep` does not name. */
  releaseAllBut(keep: ReadonlySet<number>): void {
    for (const port of [...this.#mine]) if (!keep.has(port)) this.release(port);
  }

  #file(port: number): string {
    return path.join(this.#dir, String(port));
  }
}

/** An unreadable claim file this old was left by a crash in the middle of writing it. */
const STALE_UNREADABLE_MS = 10_000;

/** True when `file` was last written more than `ms` ago (or is gone). */
function olderThan(file: string, ms: number): boolean {
  try {
    return Date.now() - fs.statSync(file).mtimeMs > ms;
  } catch {
    return true;
  }
}

/** The claimant a claim file names, or undefined when it cannot be read (being written: busy). */
function readClaim(file: string): Claimant | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const match = /^(\d+) (.+)\n$/.exec(text);
  return match ? { pid: Number(match[1]), home: match[2]! } : undefined;
}

/** True while process `pid` exists (EPERM: it exists, run by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
