/**
 * An HTTP proxy on 127.0.0.1 in front of a registry that cuts a client's connection once it has
 * sent a given number of bytes of blob uploads (PATCH or PUT bodies), and counts what it got
 * and what it passed on. `buffered` reads each request whole before forwarding it, as nginx does
 * by default (`proxy_request_buffering on`), so the registry never sees a cut request; otherwise
 * bytes are streamed through and the registry's side is cut at the same byte. Not exported from
 * index.ts. Traffic stays on 127.0.0.1.
 */
import http from 'node:http';
import type { Cleanup } from './registry.js';

/** A running proxy. */
export interface CuttingProxy {
  /** `127.0.0.1:PORT` */
  readonly host: string;
  /** Cuts the connection once clients have sent `bytes` more bytes of upload bodies (once). */
  cutAfter(bytes: number): void;
  /** How many connections it has cut. */
  readonly cuts: number;
  /** Upload body bytes received from clients, and passed on to the registry, since the start. */
  readonly received: number;
  readonly forwarded: number;
}

/** Starts a proxy to `upstream` (`127.0.0.1:PORT`) and registers its stop with `cleanup`. */
export async function startCuttingProxy(
  cleanup: Cleanup,
  upstream: string,
  options: { readonly buffered: boolean },
): Promise<CuttingProxy> {
  const [upHost, upPort] = upstream.split(':');
  let cutAt = Infinity;
  const state = { host: '', cuts: 0, received: 0, forwarded: 0 };
  const server = http.createServer((req, res) => {
    const upload =
      /\/blobs\/uploads\//.test(req.url ?? '') && (req.method === 'PATCH' || req.method === 'PUT');
    const forward = http.request(
      { host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    const chunks: Buffer[] = [];
    let cut = false;
    req.on('data', (chunk: Buffer) => {
      if (cut) return;
      let keep = chunk;
      if (upload) {
        const room = cutAt - state.received;
        if (chunk.length >= room) {
          keep = chunk.subarray(0, Math.max(0, room));
          cut = true;
        }
        state.received += keep.length;
      }
      if (options.buffered) chunks.push(keep);
      else if (keep.length > 0) {
        if (upload) state.forwarded += keep.length;
        forward.write(keep);
      }
      if (cut) {
        cutAt = Infinity;
        state.cuts++;
        req.socket.destroy();
        // Streaming: the registry got the bytes before the cut, and then loses the client too.
        if (!options.buffered) setTimeout(() => forward.destroy(), 50);
        else forward.destroy();
      }
    });
    req.on('end', () => {
      if (cut) return;
      const body = Buffer.concat(chunks);
      if (options.buffered && upload) state.forwarded += body.length;
      forward.end(options.buffered ? body : undefined);
    });
  });
  state.host = await cleanup.listen(server);
  return {
    get host() {
      return state.host;
    },
    cutAfter(bytes) {
      cutAt = state.received + bytes;
    },
    get cuts() {
      return state.cuts;
    },
    get received() {
      return state.received;
    },
    get forwarded() {
      return state.forwarded;
    },
  };
}
