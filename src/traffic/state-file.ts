/**
 * The built-in router's state file: every route it serves, rewritten atomically on each change and
 * read at start, so a restarted router serves the same routes on the same ports at once.
 */
import { ValidationError, wrap } from '../errors/index.js';
import { readIfExists, writeFileAtomic } from './files.js';
import { validateRoute, type ServiceRoute } from './router.js';

/** The state file's format version. */
export const ROUTER_STATE_VERSION = 1;

/** The state file's content. */
export interface RouterState {
  readonly version: typeof ROUTER_STATE_VERSION;
  readonly routes: readonly ServiceRoute[];
}

/** Reads the routes in `file`; a missing file means none. Throws `ValidationError` naming the file. */
export async function loadRouterState(file: string): Promise<ServiceRoute[]> {
  let text: string | undefined;
  try {
    text = await readIfExists(file);
  } catch (err) {
    throw wrap(`reading router state ${file}`, err);
  }
  if (text === undefined) return [];
  let parsed: Partial<RouterState>;
  try {
    parsed = JSON.parse(text) as Partial<RouterState>;
  } catch (err) {
    throw new ValidationError(file, [
      {
        path: '',
        message: `not JSON (${(err as Error).message})`,
        fix: 'restore it from a backup or delete it and set the routes again',
      },
    ]);
  }
  if (parsed.version !== ROUTER_STATE_VERSION || !Array.isArray(parsed.routes)) {
    throw new ValidationError(file, [
      {
        path: 'version',
        message: `expected a kiln router state, version ${ROUTER_STATE_VERSION}`,
        fix: 'start a router of the kiln version that wrote it, or delete it and set the routes again',
      },
    ]);
  }
  return parsed.routes.map((r, i) => {
    try {
      return validateRoute(r, file);
    } catch (err) {
      throw wrap(`routes[${i}]`, err);
    }
  });
}

/** Writes `routes` to `file` atomically (readers see the old file or the whole new one). */
export async function saveRouterState(file: string, routes: readonly ServiceRoute[]): Promise<void> {
  const state: RouterState = { version: ROUTER_STATE_VERSION, routes };
  try {
    await writeFileAtomic(file, `${JSON.stringify(state, null, 2)}\n`);
  } catch (err) {
    throw wrap(`saving router state ${file}`, err);
  }
}
