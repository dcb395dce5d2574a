import { Command, Option } from 'commander';
import {
  SELF_SIGNED_HINT,
  type NamedTarget,
  startControlPlane,
  type RunningControlPlane,
  type TlsFiles,
} from '../api/index.js';
import { ValidationError } from '../errors/index.js';
import { loadConfig, parseDuration, resolveTargetPaths, type LoadedConfig } from '../spec/index.js';
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

/** `--tls-cert` and `--tls-key`, which `kiln server` and `kiln up` take. */
export interface TlsOptions {
  readonly tlsCert?: string;
  readonly tlsKey?: string;
}

/** `--tls-cert FILE`, as `.option(...TLS_CERT_OPTION)` of a verb that starts the control plane. */
export const TLS_CERT_OPTION = [
  '--tls-cert <file>',
  'serve the API over HTTPS with this PEM certificate (needs --tls-key)',
] as const;
/** `--tls-key FILE`, the certificate's key. */
export const TLS_KEY_OPTION = [
  '--tls-key <file>',
  "the certificate's PEM private key, unencrypted (needs --tls-cert)",
] as const;

/** `--verify-interval DURATION`: how often instances are checked against their release. */
export const VERIFY_INTERVAL_OPTION = [
  '--verify-interval <duration>',
  'check every instance against its release this often, such as "2s" (drift taints and replaces it); "0" turns it off',
] as const;

/** A duration flag such as "2s", or "0"; a UsageError-like ValidationError naming the flag otherwise. */
function parseInterval(text: string): number {
  const ms = text === '0' ? 0 : parseDuration(text);
  if (ms === undefined) {
    throw new ValidationError('--verify-interval', [
      {
        path: '',
        message: `"${text}" is not a duration`,
        fix: 'write it as "500ms", "2s" or "1m", or "0" to turn the check off',
      },
    ]);
  }
  return ms;
}

/** The TLS files the flags name: none, or both (ValidationError when only one is given). */
export function tlsFiles(opts: TlsOptions): TlsFiles | undefined {
  if (opts.tlsCert === undefined && opts.tlsKey === undefined) return undefined;
  if (opts.tlsCert === undefined || opts.tlsKey === undefined) {
    const missing = opts.tlsCert === undefined ? '--tls-cert' : '--tls-key';
    throw new ValidationError(missing, [
      {
        path: '',
        message: 'HTTPS needs both a certificate and its key',
        fix: `give ${missing} too, or neither for plain HTTP; to make a pair: ${SELF_SIGNED_HINT}`,
      },
    ]);
  }
  return { certFile: opts.tlsCert, keyFile: opts.tlsKey };
}

/** The control plane of `config`'s project; the config is read again for every deploy. */
export async function startFor(
  config: LoadedConfig,
  opts: { port?: string; runtime?: 'crun' | 'runc'; verifyInterval?: string; target?: string } & TlsOptions,
): Promise<RunningControlPlane> {
  const tls = tlsFiles(opts);
  const declared = opts.target === undefined ? undefined : declaredTarget(config, opts.target);
  const target = declared && { ...declared, spec: resolveTargetPaths(declared.spec, config.dir) };
  const verifyIntervalMs = opts.verifyInterval === undefined ? undefined : parseInterval(opts.verifyInterval);
  const cp = await startControlPlane({
    home: homeFor(config),
    services: async () => (await loadConfig(config.file)).stack.services,
    ...(opts.port !== undefined ? { port: Number(opts.port) } : {}),
    ...(opts.runtime ? { runtime: opts.runtime } : {}),
    ...(tls ? { tls } : {}),
    ...(verifyIntervalMs !== undefined ? { verifyIntervalMs } : {}),
    ...(target ? { target } : {}),
    log: (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`),
  });
  if (cp.newAdminToken) {
    process.stdout.write(
      `admin token (shown once; also in ${homeFor(config)}/admin-token, mode 0600):\n  ${cp.newAdminToken}\n`,
    );
  }
  return cp;
}

/** The target `name` of the config; a ValidationError naming the declared ones otherwise. */
export function declaredTarget(config: LoadedConfig, name: string): NamedTarget {
  const targets = config.stack.targets;
  if (Object.hasOwn(targets, name)) return { name, spec: targets[name]! };
  const known = Object.keys(targets);
  throw new ValidationError(config.file, [
    {
      path: 'targets',
      message: `--target ${name}: no such target`,
      fix: known.length
        ? `use one of: ${known.join(', ')}`
        : `declare it: targets: { ${name}: { driver: 'swarm', docker: 'unix:///var/run/docker.sock', registry: 'host:5000/kiln' } }`,
    },
  ]);
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
    .option(...TLS_CERT_OPTION)
    .option(...TLS_KEY_OPTION)
    .option(...VERIFY_INTERVAL_OPTION)
    .option(
      '--target <name>',
      "run the instances on this declared target (such as a swarm: targets: { prod: { driver: 'swarm', … } })",
    )
    .action(
      async (
        opts: {
          port: string;
          runtime?: 'crun' | 'runc';
          verifyInterval?: string;
          target?: string;
        } & TlsOptions,
        cmd: Command,
      ) => {
        const config = await loadFromOptions(cmd);
        const cp = await startFor(config, opts);
        process.stdout.write(`kiln server: API at ${cp.url} (pid ${process.pid}); Ctrl-C stops it\n`);
        const signal = await untilSignal();
        process.stderr.write(`kiln server: ${signal}: stopping; instances and the router keep serving\n`);
        await cp.close();
      },
    );
}
