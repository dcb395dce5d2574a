import { Command, Option } from 'commander';
import { DEV_PORT_OFFSET, startDev } from '../dev/index.js';
import { KilnError, ValidationError } from '../errors/index.js';
import { aptRootFromEnv, homeFor, loadFromOptions } from './common.js';
import { untilSignal } from './server.js';

/** The flags of `kiln dev`. */
export interface DevFlags {
  readonly port?: string;
  readonly watch: boolean;
  readonly runtime?: 'crun' | 'runc';
  readonly offline?: boolean;
}

/**
 * `kiln dev SERVICE [--port N] [--no-watch]`: the developer loop. Runs the service from its base
 * image with the app's folder mounted, restarts it on every change, and on Ctrl-C (or SIGTERM)
 * stops it and removes everything it made. The instance's output goes to stdout, kiln's own lines
 * (each restart and the time until healthy) to stderr.
 */
export function devCommand(): Command {
  return new Command('dev')
    .description(
      "run SERVICE from its base image with the app's folder mounted read-only, restarted on every change; " +
        'marked dev: mutable, never released, never behind the router',
    )
    .argument('<service>', 'a service of the config whose image has an app folder')
    .option('--port <port>', `port on 127.0.0.1 (default: the service's port + ${DEV_PORT_OFFSET})`)
    .option('--no-watch', 'run it once; do not restart on changes')
    .addOption(new Option('--runtime <name>', 'OCI runtime').choices(['crun', 'runc']))
    .option('--offline', 'bake the base only from cached archive indexes and packages')
    .action(async (service: string, opts: DevFlags, cmd: Command) => {
      const config = await loadFromOptions(cmd);
      const say = (line: string) => process.stderr.write(`kiln dev: ${line}\n`);
      // A Ctrl-C while the base bakes ends kiln at once: nothing runs yet, and a bake writes
      // atomically. From here on it stops the session (a session whose kiln was killed anyway is
      // swept by the next kiln dev).
      const session = await startDev({
        config,
        service,
        home: homeFor(config),
        ...(opts.port !== undefined ? { port: parsePort(opts.port) } : {}),
        watch: opts.watch,
        ...(opts.runtime ? { runtime: opts.runtime } : {}),
        ...(opts.offline ? { offline: true } : {}),
        ...aptRootFromEnv(),
        log: say,
        output: (text) => process.stdout.write(text),
      });
      const stopping = untilSignal();
      // The URL once the first start has an outcome (healthy, or why not), unless stopped first.
      const first = await Promise.race([session.started, stopping.then(() => undefined)]);
      if (first === 'failed') {
        // Not a bug in the app (that one waits for a fix): the container itself cannot run here.
        await session.close();
        throw new KilnError(
          'runtime',
          `the dev instance of ${service} could not start: ${session.cycles[0]?.error ?? 'no reason given'}`,
        );
      }
      if (first !== undefined) {
        say(
          `${session.service} on ${session.url} (dev: not released, not routed)${opts.watch ? ', restarted on every change' : ''}; Ctrl-C stops it`,
        );
      }
      const signal = await stopping;
      say(`${signal}: stopping`);
      await session.close();
      say('stopped; nothing is left running');
    });
}

/** `--port N` as a number, or a ValidationError saying what a port is. */
export function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) {
    throw new ValidationError(undefined, [
      { path: '--port', message: `"${text}" is not a port`, fix: 'give a whole number from 1 to 65535' },
    ]);
  }
  return port;
}
