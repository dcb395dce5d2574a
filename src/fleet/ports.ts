/**
 * Instance ports. The state store knows only this project's instances, while every kiln control
 * plane on a host allocates from the same range, so a port is also claimed host-wide
 * ({@link HostPortClaims}: two control planes cannot both take a port in the moment before either
 * instance listens) and checked free on the host before an instance gets it. A port some other program holds is skipped for {@link BUSY_PORT_SKIP_MS}, and
 * the scan goes on through the whole range: a block of busy ports (another project's fleet) costs
 * one bind check each, never a backoff.
 */
import net from 'node:net';
import type { PortRange } from '../state/index.js';
import type { HostPortClaims } from './host-ports.js';

/** How long a port found taken by another program is skipped: 1 min. */
export const BUSY_PORT_SKIP_MS = 60_000;

/** Options of {@link PortPicker}. */
export interface PortPickerOptions {
  readonly range: PortRange;
  /** Where instances listen. */
  readonly host: string;
  readonly clock: () => number;
  /** The ports live instance records hold now. */
  readonly held: () => Iterable<number | undefined>;
  /** Host-wide claims shared with the other control planes here. @default none: the bind check only */
  readonly claims?: HostPortClaims;
}

/** What {@link PortPicker.pick} found: the claim's result, and the ports skipped as busy. */
export interface Picked<T> {
  /** Undefined when no port of the range is free. */
  readonly value?: T;
  readonly skipped: readonly number[];
}

/** Picks instance ports, lowest first. One per executor. */
export class PortPicker {
  readonly #o: PortPickerOptions;
  /** Ports found taken by other programs, until when to skip them. */
  readonly #busy = new Map<number, number>();
  /** Ports being checked for a claim that has not recorded them yet. */
  readonly #picking = new Set<number>();

  constructor(options: PortPickerOptions) {
    this.#o = options;
  }

  /**
   * Finds the lowest port that no live record holds and nothing on the host listens on, and calls
   * `claim(port)`, which must record it at once (synchronously), so a pick running alongside sees
   * it held.
   */
  async pick<T>(claim: (port: number) => T): Promise<Picked<T>> {
    const now = this.#o.clock();
    for (const [port, until] of this.#busy) if (until <= now) this.#busy.delete(port);
    const { claims } = this.#o;
    claims?.releaseAllBut(new Set([...this.#held(), ...this.#picking]));
    const skipped: number[] = [];
    for (let port = this.#next(); port !== undefined; port = this.#next()) {
      if (claims && !claims.claim(port)) {
        this.#busy.set(port, now + BUSY_PORT_SKIP_MS);
        skipped.push(port);
        continue;
      }
      this.#picking.add(port);
      try {
        if (await portIsFree(this.#o.host, port)) return { value: claim(port), skipped };
      } finally {
        this.#picking.delete(port);
      }
      claims?.release(port);
      this.#busy.set(port, now + BUSY_PORT_SKIP_MS);
      skipped.push(port);
    }
    return { skipped };
  }

  /** The lowest port of the range not held by a record, not known busy, and not being checked. */
  #next(): number | undefined {
    const held = new Set(this.#held());
    for (let port = this.#o.range.from; port <= this.#o.range.to; port++) {
      if (!held.has(port) && !this.#busy.has(port) && !this.#picking.has(port)) return port;
    }
    return undefined;
  }

  #held(): number[] {
    return [...this.#o.held()].filter((p): p is number => p !== undefined);
  }
}

/** True when nothing listens on `host:port` (a listener can be opened there). */
function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
