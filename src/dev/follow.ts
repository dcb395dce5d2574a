/**
 * The dev instance's output on the terminal: the local driver writes each instance's stdout and
 * stderr to a file of its own (never a pipe, so an instance outlives kiln), and the follower reads
 * what was appended, every {@link DEFAULT_FOLLOW_INTERVAL_MS}, moving on to the next instance's
 * file after a restart.
 */
import { open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

/** How often the log file is read for new output. */
export const DEFAULT_FOLLOW_INTERVAL_MS = 100;

const CHUNK_BYTES = 64 * 1024;

/** Follows one log file at a time and writes what is appended to `write`. */
export class LogFollower {
  readonly #write: (text: string) => void;
  #file: string | undefined;
  #offset = 0;
  #decoder = new StringDecoder('utf8');
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout;

  constructor(write: (text: string) => void, intervalMs = DEFAULT_FOLLOW_INTERVAL_MS) {
    this.#write = write;
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  /** Writes the rest of the current file, then follows `file` from its start. */
  follow(file: string): Promise<void> {
    return this.#queue(async () => {
      await this.#readNew();
      this.#file = file;
      this.#offset = 0;
      this.#decoder = new StringDecoder('utf8');
    });
  }

  /** Writes what was appended since the last read. */
  flush(): Promise<void> {
    return this.#queue(() => this.#readNew());
  }

  /** A last read, then no more. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }

  #queue(step: () => Promise<void>): Promise<void> {
    // A failed read (the file not there yet) is tried again at the next tick.
    this.#chain = this.#chain.then(step).catch(() => undefined);
    return this.#chain;
  }

  async #readNew(): Promise<void> {
    if (this.#file === undefined) return;
    const fh = await open(this.#file, 'r').catch(() => undefined);
    if (fh === undefined) return;
    try {
      const buf = Buffer.alloc(CHUNK_BYTES);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.#offset);
        if (bytesRead === 0) break;
        this.#offset += bytesRead;
        const text = this.#decoder.write(buf.subarray(0, bytesRead));
        if (text !== '') this.#write(text);
      }
    } finally {
      await fh.close();
    }
  }
}
