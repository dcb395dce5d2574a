/**
 * The swarm driver's calls to a manager's Engine API: reading a scope's services with their tasks
 * and the nodes, removing a service, and having Swarm place a lost one again.
 */
import { NotFoundError } from '../../errors/index.js';
import type { Engine } from './engine.js';
import { LABELS, type SwarmNode, type SwarmService, type SwarmTask } from './service-spec.js';

/** One read of the swarm: the scope's services (or those named), their tasks, and every node. */
export interface SwarmRead {
  readonly services: readonly SwarmService[];
  readonly tasks: readonly SwarmTask[];
  readonly nodes: ReadonlyMap<string, SwarmNode>;
}

/** Reads the services labelled with `scope` (only those named `ids`, when given). */
export async function readSwarm(engine: Engine, scope: string, ids?: readonly string[]): Promise<SwarmRead> {
  const label = [`${LABELS.scope}=${scope}`];
  const listed = await engine.request<SwarmService[]>({
    path: '/services',
    query: { filters: ids ? { label, name: [...ids] } : { label } },
  });
  // The `name` filter matches prefixes: keep exact names only.
  const services = listed.filter((s) => (ids ? ids.includes(s.Spec.Name) : true));
  const [tasks, nodes] = await Promise.all([
    services.length === 0
      ? Promise.resolve([] as SwarmTask[])
      : engine.request<SwarmTask[]>({
          path: '/tasks',
          query: { filters: { service: services.map((s) => s.ID) } },
        }),
    engine.request<SwarmNode[]>({ path: '/nodes' }),
  ]);
  return { services, tasks, nodes: new Map(nodes.map((n) => [n.ID, n])) };
}

/** Removes service `name`; one that is gone already is fine. */
export async function removeService(engine: Engine, name: string): Promise<void> {
  try {
    await engine.request({ method: 'DELETE', path: `/services/${name}` });
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
}

/**
 * Has Swarm place a service's task again, on a node that is up: a forced update. Swarm reschedules
 * by itself only under a restart policy that would also restart exited processes behind kiln's
 * back (docs/swarm.md, node loss).
 */
export async function placeAgain(engine: Engine, service: SwarmService): Promise<void> {
  const spec = service.Spec;
  await engine.request({
    method: 'POST',
    path: `/services/${service.ID}/update`,
    query: { version: service.Version.Index },
    body: {
      ...spec,
      TaskTemplate: { ...spec.TaskTemplate, ForceUpdate: (spec.TaskTemplate.ForceUpdate ?? 0) + 1 },
    },
  });
}
