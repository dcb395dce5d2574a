/**
 * One service of the built-in router: its loopback listener and the snapshot of backends requests
 * choose from. A route change builds a new snapshot and swaps it in one assignment, so a request
 * sees the old set or the new one, never a mix.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ConflictError, wrap } from '../errors/index.js';
import { BackendCounters } from './metrics.js';
import { BackendState, proxyRequest, type BackendChooser } from './proxy.js';
import type { BackendMetrics, ServiceRoute } from './router.js';
import { SmoothWeightedPicker } from './weights.js';

interface Snapshot {
  readonly states: readonly BackendState[];
  readonly picker: SmoothWeightedPicker;
}

function snapshotOf(states: readonly BackendState[]): Snapshot {
  return { states, picker: new SmoothWeightedPicker(states.map((s) => s.effectiveWeight)) };
}

async function listen(server: http.Server, port: number, host: string, service: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') {
        reject(
          new ConflictError(
            `serving ${service}: port ${host}:${port} is taken; choose another listenPort, or 0 to let the router pick`,
          ),
        );
      } else reject(wrap(`serving ${service} on ${host}:${port}`, err));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
  return (server.address() as AddressInfo).port;
}

/** A service's listener and backends in the built-in router. */
export class ServiceProxy implements BackendChooser {
  closing = false;
  private server: http.Server;
  private port: number;
  private snap: Snapshot = snapshotOf([]);
  private readonly retiring = new Set<BackendState>();
  private now = 0;
  private readonly skipDown = (i: number): boolean => this.snap.states[i]!.downUntil > this.now;

  private constructor(
    readonly service: string,
    private readonly host: string,
    private readonly maxRetries: number,
  ) {
    this.server = this.newServer();
    this.port = 0;
  }

  /** Starts serving `service` on `host:port` (0 = any free port), with no backends yet. */
  static async open(service: string, port: number, host: string, maxRetries: number): Promise<ServiceProxy> {
    const proxy = new ServiceProxy(service, host, maxRetries);
    proxy.port = await listen(proxy.server, port, host, service);
    return proxy;
  }

  /** The port this service is served on. */
  get listenPort(): number {
    return this.port;
  }

  /** Moves the listener to another port: the new one opens before the old one closes. */
  async relisten(port: number): Promise<void> {
    const next = this.newServer();
    this.port = await listen(next, port, this.host, this.service);
    const old = this.server;
    this.server = next;
    old.close();
    old.closeIdleConnections();
  }

  atHost(host: string): readonly BackendState[] {
    return this.snap.states.filter((s) => s.backend.host === host);
  }

  choose(tried: readonly BackendState[] | null): BackendState | undefined {
    const { states, picker } = this.snap;
    this.now = performance.now();
    let i: number;
    if (tried === null) {
      i = picker.pick(this.skipDown);
      // Every backend recently refused: try them anyway rather than fail without trying.
      if (i === -1) i = picker.pick();
    } else {
      i = picker.pick((j) => tried.includes(states[j]!) || this.skipDown(j));
      if (i === -1) i = picker.pick((j) => tried.includes(states[j]!));
    }
    return i === -1 ? undefined : states[i];
  }

  /** Replaces the whole backend set, keeping agents and counters of backends whose address stays. */
  apply(route: ServiceRoute): void {
    const byId = new Map(this.snap.states.map((s) => [s.backend.id, s]));
    const next = route.backends.map((b) => {
      const old = byId.get(b.id);
      if (old !== undefined && old.backend.host === b.host && old.backend.port === b.port) {
        byId.delete(b.id);
        old.backend = b;
        old.draining = false;
        return old;
      }
      return new BackendState(b, old?.counters ?? new BackendCounters());
    });
    this.snap = snapshotOf(next);
    for (const old of byId.values()) {
      // Left without a drain (kiln drains the healthy ones first): it failed, and may never answer
      // (a lost node), so the requests safe to send again go to the backends left.
      if (!old.draining) old.moveWaiting();
      this.retire(old);
    }
  }

  /** Sends no new requests to `backendId`; returns its state, or undefined when it is not in the route. */
  startDrain(backendId: string): BackendState | undefined {
    const state = this.snap.states.find((s) => s.backend.id === backendId);
    if (state === undefined) return undefined;
    state.draining = true;
    this.snap = snapshotOf(this.snap.states);
    return state;
  }

  /**
   * Drops a drained backend from the route unless a later `apply` brought it back; with `cut`,
   * its requests still in flight are ended now.
   */
  finishDrain(state: BackendState, cut: boolean): void {
    if (cut) state.agent.destroy();
    if (!state.draining || !this.snap.states.includes(state)) return;
    this.snap = snapshotOf(this.snap.states.filter((s) => s !== state));
    this.retire(state);
  }

  /** The route as served: actual listen port, draining backends at weight 0. */
  route(): ServiceRoute {
    return {
      service: this.service,
      listenPort: this.port,
      backends: this.snap.states.map((s) => ({ ...s.backend, weight: s.effectiveWeight })),
    };
  }

  /** Counters of every backend in the route, and of removed ones still finishing requests. */
  metrics(): BackendMetrics[] {
    const byId = new Map<string, BackendCounters>();
    for (const s of this.snap.states) byId.set(s.backend.id, s.counters);
    for (const s of this.retiring) if (!byId.has(s.backend.id)) byId.set(s.backend.id, s.counters);
    return [...byId.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, counters]) => counters.snapshot(this.service, id));
  }

  /**
   * Stops accepting connections at once. Requests in flight finish (their connections then close)
   * unless `force`, which ends every connection now.
   */
  close(force: boolean): void {
    this.closing = true;
    this.server.close();
    this.server.closeIdleConnections();
    const states = [...this.snap.states];
    this.snap = snapshotOf([]);
    for (const s of states) this.retire(s);
    if (force) {
      this.server.closeAllConnections();
      for (const s of this.retiring) s.agent.destroy();
    }
  }

  private retire(state: BackendState): void {
    if (state.inFlight === 0) {
      state.agent.destroy();
      return;
    }
    this.retiring.add(state);
    void state.idle().then(() => {
      this.retiring.delete(state);
      state.agent.destroy();
    });
  }

  /** Client requests and client-visible failures, across every backend the service ever had. */
  readonly totals = { requests: 0, failed: 0 };

  private newServer(): http.Server {
    const server = http.createServer({ noDelay: true, requestTimeout: 0 }, (req, res) => {
      this.totals.requests++;
      // Counted once per request: a 5xx sent in full, or a response the client never got whole.
      res.once('close', () => {
        if (!res.writableFinished || res.statusCode >= 500) this.totals.failed++;
      });
      proxyRequest(this, req, res, this.maxRetries);
    });
    // A listener error after start (not EADDRINUSE, which listen reports) must not crash the router.
    server.on('error', () => undefined);
    return server;
  }
}
