import path from 'node:path';
import { Command, Option } from 'commander';
import { readTlsFiles, type RolloutJson } from '../api/index.js';
import { bake } from '../bake/index.js';
import { ValidationError } from '../errors/index.js';
import { findConfig, loadConfig } from '../spec/index.js';
import { aptRootFromEnv, table, type GlobalOptions } from './common.js';
import {
  startFor,
  TLS_CERT_OPTION,
  TLS_KEY_OPTION,
  VERIFY_INTERVAL_OPTION,
  tlsFiles,
  untilSignal,
  type TlsOptions,
} from './server.js';

/**
 * `kiln up [DIR]`: bake what is stale, start the control plane, deploy every service, print the
 * URLs, and on Ctrl-C stop everything it started (instances, router, control plane).
 */
export function upCommand(): Command {
  return new Command('up')
    .description(
      'bake what is stale, start the control plane, deploy every service and print their URLs; Ctrl-C stops everything',
    )
    .argument('[dir]', 'project directory', '.')
    .option('--port <port>', 'API port on 127.0.0.1 (0 = any)', '0')
    .addOption(new Option('--runtime <name>', 'OCI runtime').choices(['crun', 'runc']))
    .option('--offline', 'bake only from cached archive indexes and packages')
    .option(...TLS_CERT_OPTION)
    .option(...TLS_KEY_OPTION)
    .option(...VERIFY_INTERVAL_OPTION)
    .action(
      async (
        dir: string,
        opts: {
          port: string;
          runtime?: 'crun' | 'runc';
          offline?: boolean;
          verifyInterval?: string;
        } & TlsOptions,
        cmd: Command,
      ) => {
        const global = cmd.optsWithGlobals<GlobalOptions>();
        const file = global.config ? path.resolve(global.config) : findConfig(path.resolve(dir));
        const config = await loadConfig(file);
        const services = config.stack.services;
        if (services.length === 0) {
          throw new ValidationError(file, [
            {
              path: 'services',
              message: 'the project declares no services, so there is nothing to bring up',
              fix: 'declare one: services: [{ name: web, image: NAME, port: 8080 }]',
            },
          ]);
        }
        // A bad certificate or key is reported before the bake, not after it.
        const tls = tlsFiles(opts);
        if (tls) await readTlsFiles(tls);
        const say = (line: string) => process.stdout.write(`${line}\n`);
        const wanted = [...new Set(services.map((s) => s.image).filter((i) => !i.startsWith('sha256:')))];
        const baked = await bake({
          config,
          names: wanted,
          ...(opts.offline ? { offline: true } : {}),
          ...(opts.runtime ? { runtime: opts.runtime } : {}),
          log: (m) => process.stderr.write(`${m}\n`),
          ...aptRootFromEnv(),
        });
        for (const b of baked)
          say(`image ${b.name}: ${b.digest.slice(0, 19)} ${b.upToDate ? '(up to date)' : '(baked)'}`);

        const cp = await startFor(config, opts);
        const stopping = untilSignal();
        let interrupted = false;
        void stopping.then(() => (interrupted = true));
        try {
          const rollouts: RolloutJson[] = [];
          for (const svc of services) {
            const result = await cp.plane.deploy(svc.name, {}, 'kiln up');
            rollouts.push(result.rollout);
            say(
              result.unchanged
                ? `${svc.name}: ${result.release.name} already running`
                : `${svc.name}: ${result.release.name} rolling out (${result.rollout.strategy})`,
            );
          }
          const ended = await Promise.race([
            Promise.all(rollouts.map((r) => waitDone(cp.plane, r.id, () => interrupted))),
            stopping.then(() => undefined),
          ]);
          if (ended) {
            const failed = ended.filter((r) => r.phase !== 'succeeded');
            for (const r of failed) say(`${r.service}: rollout ${r.phase}: ${r.message ?? ''}`);
            if (failed.length) {
              process.exitCode = 1;
            } else {
              const status = await cp.plane.status();
              say('');
              say(
                table([
                  ['SERVICE', 'RELEASE', 'HEALTHY', 'URL'],
                  ...status.map((s) => [s.name, s.release ?? '-', `${s.healthy}/${s.replicas}`, s.url]),
                ]).trimEnd(),
              );
              say('');
              say(`API ${cp.url} · kiln status, kiln deploy SERVICE · Ctrl-C stops everything`);
              await stopping;
            }
          }
        } finally {
          say('kiln up: stopping instances and the router…');
          await cp.shutdown();
          say('kiln up: stopped; nothing is left running');
        }
      },
    );
}

async function waitDone(
  plane: { rollout(id: string): Promise<RolloutJson> },
  id: string,
  interrupted: () => boolean,
): Promise<RolloutJson> {
  for (;;) {
    const r = await plane.rollout(id);
    if (r.done || interrupted()) return r;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
