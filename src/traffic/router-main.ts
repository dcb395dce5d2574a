/**
 * The router process's entry point: `node dist/traffic/router-main.js --state-file FILE …` (see
 * `parseRouterArgs`). `spawnRouter` starts it detached.
 */
import { runRouterProcess } from './router-process.js';

await runRouterProcess(process.argv.slice(2), process.env);
