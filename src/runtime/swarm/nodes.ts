/**
 * The engines of a swarm's nodes. Swarm's API (on a manager) places, lists and removes services,
 * and reads their logs; signalling or exec'ing into a container needs the engine of the node the
 * container runs on. The manager's own node is reached through the manager's engine; other nodes
 * through the addresses the driver was given (`nodes`), keyed by node hostname, ID or address.
 */
import { ConflictError, NotFoundError, UnavailableError } from '../../errors/index.js';
import { CONTROL_TIMEOUT_MS } from '../detect.js';
import type { ExecResult } from '../driver.js';
import { demux, Engine, type EngineTls } from './engine.js';
import { nodeAddress, type SwarmNode } from './service-spec.js';

/** How often a container is looked at while waiting for it to stop: 50 ms. */
const STOP_POLL_MS = 50;

/** Finds and keeps one {@link Engine} per node address the driver was given. */
export class NodeEngines {
  readonly #manager: Engine;
  readonly #given: Readonly<Record<string, string>>;
  readonly #engines = new Map<string, Engine>();
  readonly #tls: EngineTls | undefined;
  #managerNode: Promise<string> | undefined;

  constructor(manager: Engine, given: Readonly<Record<string, string>>, tls?: EngineTls) {
    this.#manager = manager;
    this.#given = given;
    this.#tls = tls;
  }

  /** The engine of `node`; an UnavailableError saying how to give it when the driver has none. */
  async of(node: SwarmNode | undefined, instance: string): Promise<Engine> {
    if (node !== undefined && node.ID === (await this.#managerNodeId())) return this.#manager;
    const url = node && this.#urlOf(node);
    if (url === undefined) {
      const name = node?.Description?.Hostname ?? node?.ID ?? '(none yet)';
      throw new UnavailableError(
        `instance ${instance} runs on swarm node ${name}${node ? ` (${nodeAddress(node) ?? 'no address'})` : ''}, ` +
          'whose Docker Engine kiln was not given: add it to the target as nodes: { ' +
          `"${name}": "unix:///path/docker.sock" } (or "tcp://host:port") to signal or exec there`,
      );
    }
    let engine = this.#engines.get(url);
    if (engine === undefined) {
      engine = new Engine(url, this.#tls);
      this.#engines.set(url, engine);
    }
    return engine;
  }

  /** The engine URL given for `node`, if any (for `docker -H URL exec`). */
  async urlOf(node: SwarmNode): Promise<string | undefined> {
    if (node.ID === (await this.#managerNodeId())) return this.#manager.url;
    return this.#urlOf(node);
  }

  close(): void {
    for (const engine of this.#engines.values()) engine.close();
    this.#engines.clear();
  }

  #urlOf(node: SwarmNode): string | undefined {
    const keys = [node.ID, node.Description?.Hostname, nodeAddress(node)];
    for (const key of keys) if (key !== undefined && Object.hasOwn(this.#given, key)) return this.#given[key];
    return undefined;
  }

  #managerNodeId(): Promise<string> {
    this.#managerNode ??= this.#manager
      .request<{ Swarm?: { NodeID?: string; ControlAvailable?: boolean } }>({ path: '/info' })
      .then((info) => {
        if (!info.Swarm?.NodeID || !info.Swarm.ControlAvailable) {
          throw new UnavailableError(
            `the Docker Engine at ${this.#manager.url} is not a swarm manager ` +
              '(fix: docker swarm init there, or give a manager node\'s socket as "docker")',
          );
        }
        return info.Swarm.NodeID;
      });
    this.#managerNode.catch(() => (this.#managerNode = undefined));
    return this.#managerNode;
  }
}

/** Sends `signal` to a container; one that is not running (any more) is left alone. */
export async function signalContainer(engine: Engine, container: string, signal: string): Promise<void> {
  try {
    await engine.request({ method: 'POST', path: `/containers/${container}/kill`, query: { signal } });
  } catch (err) {
    if (err instanceof ConflictError || err instanceof NotFoundError) return; // not running, or gone
    throw err;
  }
}

/** True while the container runs. */
export async function containerRuns(engine: Engine, container: string): Promise<boolean> {
  try {
    const c = await engine.request<{ State?: { Running?: boolean } }>({
      path: `/containers/${container}/json`,
    });
    return c.State?.Running === true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}

/** SIGTERM, then SIGKILL once `graceMs` passed, then waits until the container has stopped. */
export async function stopContainer(engine: Engine, container: string, graceMs: number): Promise<void> {
  await signalContainer(engine, container, 'SIGTERM');
  if (await stopsWithin(engine, container, graceMs)) return;
  await signalContainer(engine, container, 'SIGKILL');
  if (!(await stopsWithin(engine, container, CONTROL_TIMEOUT_MS))) {
    throw new UnavailableError(`container ${container} still runs ${CONTROL_TIMEOUT_MS} ms after SIGKILL`);
  }
}

async function stopsWithin(engine: Engine, container: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!(await containerRuns(engine, container))) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, Math.min(STOP_POLL_MS, Math.max(1, deadline - Date.now()))));
  }
}

/**
 * Runs `args` in a running container through its node's engine, as `docker exec` does. The exec's
 * id is in `own` while it runs, so the drift check knows it for the driver's own.
 */
export async function execInContainer(
  engine: Engine,
  container: string,
  args: readonly string[],
  timeoutMs: number,
  own?: Set<string>,
): Promise<ExecResult> {
  const created = await engine.request<{ Id: string }>({
    method: 'POST',
    path: `/containers/${container}/exec`,
    body: { Cmd: [...args], AttachStdout: true, AttachStderr: true, AttachStdin: false, Tty: false },
  });
  own?.add(created.Id);
  try {
    return await runExec(engine, container, created.Id, timeoutMs);
  } finally {
    own?.delete(created.Id);
  }
}

async function runExec(
  engine: Engine,
  container: string,
  id: string,
  timeoutMs: number,
): Promise<ExecResult> {
  const output = await engine
    .raw({
      method: 'POST',
      path: `/exec/${id}/start`,
      body: { Detach: false, Tty: false },
      timeoutMs,
    })
    .catch((err: unknown) => {
      if (err instanceof UnavailableError && /no answer within/.test(err.message)) {
        throw new UnavailableError(`exec in ${container} did not finish within ${timeoutMs} ms`, {
          cause: err,
        });
      }
      throw err;
    });
  const { stdout, stderr } = demux(output);
  const inspected = await engine.request<{ ExitCode: number | null; Running: boolean }>({
    path: `/exec/${id}/json`,
  });
  return { exitCode: inspected.ExitCode ?? -1, stdout, stderr };
}

/** The `docker` command that runs `args` in `container` with this terminal, TLS flags and all. */
export function dockerExecCommand(
  engine: Engine,
  container: string,
  args: readonly string[],
  tty: boolean,
): string[] {
  const { tls } = engine;
  const flags = tls
    ? ['--tlsverify', '--tlscacert', tls.files.ca, '--tlscert', tls.files.cert, '--tlskey', tls.files.key]
    : [];
  return ['docker', '-H', engine.url, ...flags, 'exec', '-i', ...(tty ? ['-t'] : []), container, ...args];
}
