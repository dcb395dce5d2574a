/**
 * A small Redis client for tests (RESP2 over TCP on loopback): enough to write, read and ask a
 * server about itself, independent of kiln. One command at a time per connection.
 */
import net from 'node:net';

/** A RESP reply: a string, an integer, null, an array of replies, or a server error. */
export type Reply = string | number | null | Reply[] | RespError;

export class RespError extends Error {}

export class Resp {
  readonly #socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  #closed: Error | undefined;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#drain();
    });
    const close = (err?: Error) => {
      this.#closed ??= err ?? new Error('connection closed');
      this.#waiting?.reject(this.#closed);
      this.#waiting = undefined;
    };
    socket.on('error', close);
    socket.on('close', () => close());
  }

  /** Connects to 127.0.0.1:`port`; rejects when nothing listens. */
  static connect(port: number, timeoutMs = 2_000): Promise<Resp> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer from port ${port}`)));
      socket.once('connect', () => resolve(new Resp(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends one command and resolves with its reply (a server error is returned, not thrown). */
  command(...args: (string | number)[]): Promise<Reply> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#waiting) return Promise.reject(new Error('one command at a time'));
    const parts = args.map(String);
    const wire = `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.#socket.write(wire);
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #drain(): void {
    if (!this.#waiting) return;
    const parsed = parse(this.#buffer, 0);
    if (!parsed) return;
    this.#buffer = this.#buffer.subarray(parsed.end);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting.resolve(parsed.value);
  }
}

/** Parses one reply at `at`, or undefined when the buffer does not hold all of it yet. */
function parse(buf: Buffer, at: number): { value: Reply; end: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const line = buf.toString('utf8', at + 1, eol);
  switch (String.fromCharCode(buf[at]!)) {
    case '+':
      return { value: line, end: eol + 2 };
    case '-':
      return { value: new RespError(line), end: eol + 2 };
    case ':':
      return { value: Number(line), end: eol + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: eol + 2 };
      if (buf.length < eol + 2 + n + 2) return undefined;
      return { value: buf.toString('utf8', eol + 2, eol + 2 + n), end: eol + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: eol + 2 };
      const items: Reply[] = [];
      let end = eol + 2;
      for (let i = 0; i < n; i++) {
        const item = parse(buf, end);
        if (!item) return undefined;
        items.push(item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(buf.toString('utf8', at, eol))}`);
  }
}

/**
 * Writes `SET key value` to the server on `port` as fast as it answers until `stop()`, reconnecting
 * when it goes away. Only the writes the server acknowledged with +OK are recorded.
 */
export function startWriter(
  port: number,
  prefix: string,
): {
  readonly acked: () => readonly string[];
  readonly failed: () => number;
  readonly stop: () => Promise<void>;
} {
  const acked: string[] = [];
  let failed = 0;
  let running = true;
  const loop = (async () => {
    let n = 0;
    let conn: Resp | undefined;
    while (running) {
      try {
        conn ??= await Resp.connect(port);
        const key = `${prefix}:${n++}`;
        const reply = await conn.command('SET', key, `v-${key}`);
        if (reply === 'OK') acked.push(key);
        else failed++;
      } catch {
        failed++;
        conn?.close();
        conn = undefined;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    conn?.close();
  })();
  return {
    acked: () => acked,
    failed: () => failed,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}
