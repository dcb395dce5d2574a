/**
 * `GET /ui/events`: the event log as Server-Sent Events. Each new event becomes
 * `event: change` with `{kind, service, message}`; a comment every 15 s keeps proxies from
 * closing the stream. It starts after the newest event at connect time.
 */
import type http from 'node:http';
import type { ControlPlane } from '../types.js';

/** How often the event log is read. */
export const EVENTS_POLL_MS = 250;
/** How often an idle stream sends a comment. */
export const EVENTS_HEARTBEAT_MS = 15_000;
const BATCH = 500;

/** The `seq` of the newest event (0 when there is none). */
async function latestSeq(plane: ControlPlane): Promise<number> {
  let since = 0;
  for (;;) {
    const batch = await plane.events(since, undefined, BATCH);
    if (batch.length === 0) return since;
    since = batch.at(-1)!.seq;
    if (batch.length < BATCH) return since;
  }
}

/** Streams events to `res` until the client goes or `signal` (the server closing) fires. */
export async function streamEvents(
  plane: ControlPlane,
  res: http.ServerResponse,
  signal?: AbortSignal,
  timing: { readonly pollMs?: number; readonly heartbeatMs?: number } = {},
): Promise<void> {
  let since = await latestSeq(plane);
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  res.write('retry: 2000\n: connected\n\n');
  let busy = false;
  let ended = false;
  const poll = setInterval(() => {
    if (busy || ended) return;
    busy = true;
    plane
      .events(since, undefined, BATCH)
      .then((events) => {
        for (const e of events) {
          since = e.seq;
          if (ended) return;
          const data = JSON.stringify({ kind: e.kind, service: e.service ?? null, message: e.message });
          res.write(`event: change\nid: ${e.seq}\ndata: ${data}\n\n`);
        }
      })
      .catch(() => {
        // The store was busy or closing: try again at the next tick.
      })
      .finally(() => {
        busy = false;
      });
  }, timing.pollMs ?? EVENTS_POLL_MS);
  const heartbeat = setInterval(() => {
    if (!ended) res.write(': heartbeat\n\n');
  }, timing.heartbeatMs ?? EVENTS_HEARTBEAT_MS);
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(poll);
    clearInterval(heartbeat);
    signal?.removeEventListener('abort', end);
    if (!res.writableEnded) res.end();
  };
  // res (not req) 'close': the connection went; req's fires as soon as its (empty) body is read.
  res.on('close', end);
  res.on('error', end);
  if (signal?.aborted) end();
  else signal?.addEventListener('abort', end);
}
