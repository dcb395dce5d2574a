/**
 * What the HAProxy driver keeps about each service, and the pure functions over it: the config
 * and map files rendered from it, slot assignment, and metrics from `show stat` counters.
 *
 * Each service has two backends, `be_<service>_0` and `be_<service>_1`, each with the same number
 * of pre-allocated `server` slots. A route change fills the idle half through the runtime API and
 * then flips the frontend's map entry to it in one `set map`: the atomic switch HAProxy offers.
 */
import type { Backend, BackendMetrics, ServiceRoute } from './router.js';
import { DEFAULT_CONNECT_TIMEOUT_MS } from './proxy.js';

/** Server slots pre-allocated per half of a service; more are added (by reload) when a route needs them. */
export const DEFAULT_HAPROXY_SLOTS = 8;

/** Counters of one server slot as `show stat` reports them (cumulative since the worker started). */
export interface SlotCounters {
  readonly requests: number;
  readonly classes: readonly [number, number, number, number, number];
  readonly errors: number;
  readonly retries: number;
  /** Estimated milliseconds spent (HAProxy gives only an average time over recent requests). */
  readonly latencySumMs: number;
}

/** One `server` slot: the backend in it (or none, in maintenance) and its counters when it got it. */
export interface Slot {
  readonly backend: Backend | null;
  readonly baseline: SlotCounters;
}

/** A service as the driver keeps it. */
export interface HaproxyService {
  readonly service: string;
  readonly listenPort: number;
  /** Which half the frontend routes to. */
  readonly active: 0 | 1;
  readonly halves: readonly [readonly Slot[], readonly Slot[]];
}

/** Everything the driver keeps on disk (`state.json`), enough to re-create or adopt HAProxy. */
export interface HaproxyState {
  readonly version: 1;
  readonly services: readonly HaproxyService[];
  /** Counters of slot tenures that ended, by `service/backendId`. */
  readonly accumulated: Readonly<Record<string, SlotCounters>>;
}

/** Paths the rendered config refers to. */
export interface HaproxyPaths {
  readonly statsSocket: string;
  readonly mapFile: string;
  readonly idleSocket: string;
}

/** Counters of a slot that has served nothing. */
export const ZERO_COUNTERS: SlotCounters = {
  requests: 0,
  classes: [0, 0, 0, 0, 0],
  errors: 0,
  retries: 0,
  latencySumMs: 0,
};

/** The name of half `h` of `service`'s backends. */
export function halfName(service: string, h: 0 | 1): string {
  return `be_${service}_${h}`;
}

/** The name of slot `i` (0-based) inside a half. */
export function slotName(i: number): string {
  return `s${i + 1}`;
}

/** The route a service serves: the active half's filled slots, in slot order. */
export function routeOf(s: HaproxyService): ServiceRoute {
  return {
    service: s.service,
    listenPort: s.listenPort,
    backends: s.halves[s.active].flatMap((slot) => (slot.backend === null ? [] : [slot.backend])),
  };
}

/** Slots per half for `n` backends: the default, or the next power of two above it. */
export function slotsFor(n: number, current = DEFAULT_HAPROXY_SLOTS): number {
  let slots = Math.max(current, DEFAULT_HAPROXY_SLOTS);
  while (slots < n) slots *= 2;
  return slots;
}

function serverLine(i: number, slot: Slot): string {
  const b = slot.backend;
  if (b === null) return `  server ${slotName(i)} 127.0.0.1:1 weight 0 disabled`;
  const host = b.host.includes(':') ? `[${b.host}]` : b.host;
  return `  server ${slotName(i)} ${host}:${b.port} weight ${b.weight}`;
}

/**
 * Renders `haproxy.cfg` for `state`: the current weights and addresses are written into it, so a
 * reload or a restarted HAProxy serves exactly what the runtime API had set.
 */
export function renderHaproxyConfig(state: HaproxyState, paths: HaproxyPaths, maxRetries: number): string {
  const lines = [
    '# Written by kiln (traffic/haproxy.ts) on every change; edits here are lost.',
    'global',
    `  stats socket ${paths.statsSocket} mode 600 level admin expose-fd listeners`,
    '  stats timeout 2m',
    '  hard-stop-after 5m',
    '',
    'defaults',
    '  mode http',
    `  timeout connect ${DEFAULT_CONNECT_TIMEOUT_MS}ms`,
    '  timeout client 5m',
    '  timeout server 5m',
    '  timeout http-keep-alive 10s',
    '  option http-keep-alive',
    '  option forwardfor',
    `  retries ${maxRetries}`,
    '  option redispatch 1',
    '  retry-on conn-failure empty-response',
    '',
    // HAProxy will not run without a listener; this one takes no port.
    'frontend kiln_idle',
    `  bind unix@${paths.idleSocket}`,
    '  http-request return status 200 content-type text/plain string ok',
  ];
  for (const s of state.services) {
    lines.push(
      '',
      `frontend fe_${s.service}`,
      `  bind 127.0.0.1:${s.listenPort}`,
      '  http-request set-header X-Forwarded-Proto http unless { req.hdr(x-forwarded-proto) -m found }',
      `  use_backend %[str(${s.service}),map(${paths.mapFile},${halfName(s.service, s.active)})]`,
    );
    for (const h of [0, 1] as const) {
      lines.push(
        '',
        `backend ${halfName(s.service, h)}`,
        '  balance roundrobin',
        ...s.halves[h].map((slot, i) => serverLine(i, slot)),
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Renders the map file: each service's active half. */
export function renderMap(state: HaproxyState): string {
  return state.services.map((s) => `${s.service} ${halfName(s.service, s.active)}\n`).join('');
}

/** Fills `slots` slots with `backends` in order, keeping no counters (baselines set by the caller). */
export function fillSlots(
  backends: readonly Backend[],
  slots: number,
  baseline: (i: number) => SlotCounters,
): Slot[] {
  return Array.from({ length: slots }, (_, i) => ({ backend: backends[i] ?? null, baseline: baseline(i) }));
}

/** `cur − base`, or `cur` when the counters restarted (a reload or restart of HAProxy). */
export function delta(cur: SlotCounters, base: SlotCounters): SlotCounters {
  if (cur.requests < base.requests) return cur;
  return {
    requests: cur.requests - base.requests,
    classes: cur.classes.map((c, i) => c - base.classes[i]!) as unknown as SlotCounters['classes'],
    errors: cur.errors - base.errors,
    retries: cur.retries - base.retries,
    latencySumMs: Math.max(0, cur.latencySumMs - base.latencySumMs),
  };
}

/** Adds two counter sets. */
export function add(a: SlotCounters, b: SlotCounters): SlotCounters {
  return {
    requests: a.requests + b.requests,
    classes: a.classes.map((c, i) => c + b.classes[i]!) as unknown as SlotCounters['classes'],
    errors: a.errors + b.errors,
    retries: a.retries + b.retries,
    latencySumMs: a.latencySumMs + b.latencySumMs,
  };
}

/** Live figures of one slot from `show stat`. */
export interface SlotStat {
  readonly counters: SlotCounters;
  /** Sessions on the server now, plus those queued for it. */
  readonly inFlight: number;
}

/**
 * Metrics per backend: ended tenures plus what every slot holding the backend counted since it got
 * it, in either half (the idle half may still finish requests). Lists the active route's backends
 * and idle-half ones with requests in flight. HAProxy keeps no latency histogram: `buckets` is
 * empty, `count` is the response count and `sum` an estimate from its average times.
 */
export function metricsOf(
  state: HaproxyState,
  stat: (service: string, h: 0 | 1, i: number) => SlotStat | undefined,
): BackendMetrics[] {
  const out: BackendMetrics[] = [];
  for (const s of [...state.services].sort((a, b) => (a.service < b.service ? -1 : 1))) {
    const byId = new Map<string, { counters: SlotCounters; inFlight: number; inRoute: boolean }>();
    for (const h of [0, 1] as const) {
      s.halves[h].forEach((slot, i) => {
        if (slot.backend === null) return;
        const live = stat(s.service, h, i);
        const id = slot.backend.id;
        const entry = byId.get(id) ?? {
          counters: state.accumulated[`${s.service}/${id}`] ?? ZERO_COUNTERS,
          inFlight: 0,
          inRoute: false,
        };
        if (live !== undefined) {
          entry.counters = add(entry.counters, delta(live.counters, slot.baseline));
          entry.inFlight += live.inFlight;
        }
        entry.inRoute ||= h === s.active;
        byId.set(id, entry);
      });
    }
    for (const [id, e] of [...byId.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!e.inRoute && e.inFlight === 0) continue;
      const c = e.counters;
      const responses = c.classes.reduce((a, b) => a + b, 0);
      out.push({
        service: s.service,
        backendId: id,
        requests: c.requests,
        responses: {
          '1xx': c.classes[0],
          '2xx': c.classes[1],
          '3xx': c.classes[2],
          '4xx': c.classes[3],
          '5xx': c.classes[4],
        },
        errors: c.errors,
        retries: c.retries,
        inFlight: e.inFlight,
        latencyMs: { buckets: [], sum: c.latencySumMs, count: responses },
      });
    }
  }
  return out;
}

/** Drops ended-tenure counters of backends no slot holds any more. */
export function prune(state: HaproxyState): HaproxyState {
  const held = new Set(
    state.services.flatMap((s) =>
      [...s.halves[0], ...s.halves[1]].flatMap((slot) =>
        slot.backend === null ? [] : [`${s.service}/${slot.backend.id}`],
      ),
    ),
  );
  return {
    ...state,
    accumulated: Object.fromEntries(Object.entries(state.accumulated).filter(([k]) => held.has(k))),
  };
}
