/**
 * The fleet verbs, each a thin layer over the API client: `kiln deploy`, `rollback`, `releases`,
 * `status`, `instances` and `logs`. They find the server by `--server`/`--token`, else
 * KILN_SERVER/KILN_TOKEN, else `.kiln/server.json` and `.kiln/admin-token`. `--json` prints the
 * shapes of docs/api.md.
 */
import { Command, Option } from 'commander';
import type { ApiClient, DeployResultJson } from '../api/index.js';
import { printJson } from './common.js';
import { bakeBeforeDeploy } from './deploy-bake.js';
import { deployToRegions, type RegionDeployFlags } from './deploy-regions.js';
import { ExitCode } from './exit.js';
import { withRegistryFlags } from './replicate.js';
import {
  clientFor,
  finishedLine,
  instancesTable,
  parseCount,
  parseTimeout,
  progressLine,
  releasesTable,
  startedLine,
  statusTable,
  withConnection,
  type ConnectionOptions,
} from './fleet-common.js';

/** The `--timeout` of `--wait` unless given. */
export const DEFAULT_WAIT_TIMEOUT = '10m';

interface WaitFlags extends ConnectionOptions {
  readonly wait?: boolean;
  readonly timeout: string;
  readonly json?: boolean;
}

/**
 * Prints what a deploy or rollback started and, with `--wait`, follows the rollout to its end.
 * Sets exit code 1 when it ends failed or rolled back.
 */
async function report(
  api: ApiClient,
  verb: 'deploy' | 'rollback',
  result: DeployResultJson,
  opts: WaitFlags,
  timeoutMs: number,
): Promise<void> {
  if (!opts.wait) {
    if (opts.json) printJson(result);
    else process.stdout.write(`${startedLine(verb, result)}\n`);
    return;
  }
  if (!opts.json) process.stdout.write(`${startedLine(verb, result)}\n`);
  let shown = `${result.rollout.phase}\0${result.rollout.message ?? ''}`;
  const rollout = await api.waitForRollout(result.rollout.id, {
    timeoutMs,
    onUpdate: (r) => {
      const now = `${r.phase}\0${r.message ?? ''}`;
      if (now === shown || r.done || opts.json) return;
      shown = now;
      process.stdout.write(`${progressLine(r)}\n`);
    },
  });
  if (opts.json) printJson({ ...result, rollout });
  else process.stdout.write(`${finishedLine(rollout)}\n`);
  if (rollout.phase !== 'succeeded') process.exitCode = ExitCode.Failed;
}

function waitOptions(cmd: Command): Command {
  return cmd
    .option('--wait', 'follow the rollout until it ends; exit 1 when it fails or is rolled back')
    .option('--timeout <duration>', 'with --wait, give up waiting after this long', DEFAULT_WAIT_TIMEOUT)
    .option('--json', 'print JSON (DeployResultJson, docs/api.md)');
}

/** `kiln deploy SERVICE [--image NAME|DIGEST] [--strategy rolling|bluegreen|canary] [--bake|--no-bake] [--reason TEXT] [--wait] [--regions eu,us]`. */
export function deployCommand(): Command {
  const verb = waitOptions(
    withConnection(
      new Command('deploy')
        .description('make a new release of a service and roll it out')
        .argument('<service>', 'a service declared in the config')
        .option(
          '--image <name>',
          "image name in the server's store or a digest (default: the service's image)",
        )
        .addOption(
          new Option('--strategy <strategy>', "override the service's strategy").choices([
            'rolling',
            'bluegreen',
            'canary',
          ]),
        )
        .option('--reason <text>', 'recorded with the release')
        .option(
          '--bake',
          "rebake the service's image (only the layers that changed, such as the app) and release it blue/green: the fast path for an app-only change",
        )
        .option('--no-bake', "deploy the store's image as it is; do not bake the project's image first")
        .option(
          '--regions <list>',
          "roll out region by region (eu,us): replicate the image to each region's registry, deploy through its control plane, stop at the first that fails",
        ),
    ),
  );
  return withRegistryFlags(verb).action(
    async (
      service: string,
      opts: WaitFlags & {
        image?: string;
        strategy?: 'rolling' | 'bluegreen' | 'canary';
        reason?: string;
        bake?: boolean;
        regions?: string;
      },
      cmd: Command,
    ) => {
      if (opts.regions !== undefined) return deployToRegions(cmd, service, opts as RegionDeployFlags);
      const timeoutMs = parseTimeout('--timeout', opts.timeout);
      // An explicit --bake must bake (or say why it cannot) and releases blue/green by default;
      // without it, deploy bakes a stale project image when it can and keeps the service's strategy.
      // With both --bake and --no-bake declared, commander leaves `bake` unset unless one is given.
      const fast = opts.bake === true;
      const baked =
        opts.bake !== false ? await bakeBeforeDeploy(cmd, service, { ...opts, required: fast }) : undefined;
      // A stateful service has one update (one identity at a time), so --bake keeps it.
      const strategy = opts.strategy ?? (fast && baked?.stateful !== true ? 'bluegreen' : undefined);
      const api = await clientFor(cmd, opts);
      const result = await api.deploy(service, {
        ...(opts.image === undefined ? {} : { image: opts.image }),
        ...(strategy === undefined ? {} : { strategy }),
        ...(opts.reason === undefined ? {} : { reason: opts.reason }),
      });
      await report(api, 'deploy', result, opts, timeoutMs);
    },
  );
}

/** `kiln rollback SERVICE [--to rN] [--wait]`. */
export function rollbackCommand(): Command {
  return waitOptions(
    withConnection(
      new Command('rollback')
        .description('go back to an earlier release (instantly when its blue/green standby is still warm)')
        .argument('<service>', 'a service declared in the config')
        .option('--to <release>', 'the release to go back to, rN (default: the one before the current)'),
    ),
  ).action(async (service: string, opts: WaitFlags & { to?: string }, cmd: Command) => {
    const timeoutMs = parseTimeout('--timeout', opts.timeout);
    const api = await clientFor(cmd, opts);
    const result = await api.rollback(service, opts.to === undefined ? {} : { to: opts.to });
    await report(api, 'rollback', result, opts, timeoutMs);
  });
}

/** `kiln releases SERVICE [--json]`. */
export function releasesCommand(): Command {
  return withConnection(
    new Command('releases')
      .description("list a service's releases, newest first; * marks the current one")
      .argument('<service>', 'a service declared in the config')
      .option('--json', 'print JSON (ReleaseJson[], docs/api.md)'),
  ).action(async (service: string, opts: ConnectionOptions & { json?: boolean }, cmd: Command) => {
    const releases = await (await clientFor(cmd, opts)).releases(service);
    if (opts.json) printJson(releases);
    else process.stdout.write(releasesTable(releases));
  });
}

/** `kiln status [SERVICE] [--json]`. */
export function statusCommand(): Command {
  return withConnection(
    new Command('status')
      .description('show each service: its release, healthy instances, URL and rollout')
      .argument('[service]', 'only this service')
      .option('--json', 'print JSON (ServiceStatusJson[], docs/api.md)'),
  ).action(
    async (service: string | undefined, opts: ConnectionOptions & { json?: boolean }, cmd: Command) => {
      const services = await (await clientFor(cmd, opts)).status(service);
      if (opts.json) printJson(services);
      else process.stdout.write(statusTable(services));
    },
  );
}

/** `kiln instances [--service S] [--json]`. */
export function instancesCommand(): Command {
  return withConnection(
    new Command('instances')
      .description('list live instances with their release, state, port, health and age')
      .option('--service <name>', 'only this service')
      .option('--json', 'print JSON (InstanceJson[], docs/api.md)'),
  ).action(async (opts: ConnectionOptions & { service?: string; json?: boolean }, cmd: Command) => {
    const instances = await (await clientFor(cmd, opts)).instances(opts.service);
    if (opts.json) printJson(instances);
    else process.stdout.write(instancesTable(instances));
  });
}

/** `kiln logs INSTANCE [--tail N]`. */
export function logsCommand(): Command {
  return withConnection(
    new Command('logs')
      .description("print an instance's output")
      .argument('<instance>', 'an instance id (see kiln instances)')
      .option('--tail <lines>', 'only the last N lines'),
  ).action(async (instance: string, opts: ConnectionOptions & { tail?: string }, cmd: Command) => {
    const tail = parseCount('--tail', opts.tail);
    const text = await (await clientFor(cmd, opts)).logs(instance, tail);
    process.stdout.write(text);
  });
}
