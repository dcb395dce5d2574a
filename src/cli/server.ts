import { Command, Option } from 'commander';
import { startControlPlane, type RunningControlPlane } from '../api/index.js';
import { loadConfig, type LoadedConfig } from '../spec/index.js';
import { homeFor, loadFromOptions } from './common.js';

/** Resolves on the first SIGINT or SIGTERM (and stops listening for them). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** The control plane of `config`'s project; the config is read again for every deploy. */
export async function startFor(
  config: LoadedConfig,
  opts: { port?: string; runtime?: 'crun' | 'runc' },
): Promise<RunningControlPlane> {
  const cp = await startControlPlane({
    home: homeFor(config),
    services: async () => (await loadConfig(config.file)).stack.services,
    ...(opts.port !== undefined ? { port: Number(opts.port) } : {}),
    ...(opts.runtime ? { runtime: opts.runtime } : {}),
    log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
  });
  if (cp.newAdminToken) {
    process.stdout.write(
      `admin token (shown once; also in ${homeFor(config)}/admin-token, mode 0600):\n  ${cp.newAdminToken}\n`,
    );
  }
  return cp;
}

/** `kiln server`: run the control plane (API, fleet controller, router) in the foreground. */
export function serverCommand(): Command {
  return new Command('server')
    .description(
      'run the control plane: the HTTP API, the fleet controller and the router (its own process). ' +
        'Stopping it leaves instances and the router serving; the next start adopts them.',
    )
    .option('--port <port>', 'API port on 127.0.0.1 (0 = any; the URL goes to .kiln/server.json)', '0')
    .addOption(new Option('--runtime <name>', 'OCI runtime for instances').choices(['crun', 'runc']))
    .action(async (opts: { port: string; runtime?: 'crun' | 'runc' }, cmd: Command) => {
      const config = await loadFromOptions(cmd);
      const cp = await startFor(config, opts);
      process.stdout.write(`kiln server: API at ${cp.url} (pid ${process.pid}); Ctrl-C stops it\n`);
      const signal = await untilSignal();
      process.stderr.write(`kiln server: ${signal}: stopping; instances and the router keep serving\n`);
      await cp.close();
    });
}
