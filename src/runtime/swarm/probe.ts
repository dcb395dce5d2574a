/**
 * What `kiln doctor` asks of a swarm target's engine: that it answers, speaks a recent enough API,
 * and is a manager of an active swarm (only a manager creates services).
 */
import { Engine, type EngineTls } from './engine.js';

/** The engine's answer, as doctor prints it. */
export interface SwarmProbe {
  readonly ok: boolean;
  readonly detail: string;
  /** What to do when not ok. */
  readonly fix?: string;
}

interface EngineInfo {
  readonly ServerVersion?: string;
  readonly Swarm?: {
    readonly LocalNodeState?: string;
    readonly ControlAvailable?: boolean;
    readonly Nodes?: number;
  };
}

/** Asks the engine at `url` (`unix:///…` or `tcp://…`, with `tls`) whether kiln can run instances through it. */
export async function probeSwarm(url: string, tls?: EngineTls): Promise<SwarmProbe> {
  const engine = new Engine(url, tls);
  try {
    const info = await engine.request<EngineInfo>({ path: '/info', timeoutMs: 10_000 });
    const state = info.Swarm?.LocalNodeState ?? 'inactive';
    const version = `Docker ${info.ServerVersion ?? '(unknown version)'}`;
    if (state !== 'active') {
      return {
        ok: false,
        detail: `${version}, but this node is not in a swarm (${state})`,
        fix: `docker -H ${url} swarm init (or join this node to the swarm)`,
      };
    }
    if (info.Swarm?.ControlAvailable !== true) {
      return {
        ok: false,
        detail: `${version}, a swarm worker: services are created on a manager`,
        fix: "point the target's docker: at a manager's Engine API",
      };
    }
    return { ok: true, detail: `${version}, swarm manager of ${info.Swarm.Nodes ?? '?'} node(s)` };
  } catch (err) {
    return {
      ok: false,
      detail: err instanceof Error ? err.message : String(err),
      fix: "start dockerd there (apt-get install docker.io), or correct the target's docker: address",
    };
  } finally {
    engine.close();
  }
}
