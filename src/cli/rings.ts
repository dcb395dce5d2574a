/**
 * `kiln release base IMAGE` and `kiln rings status`: how a new base image (a security patch, say)
 * reaches every service built on it, through the same pipeline as any release. The CLI rebakes
 * every image built on the base (it has the project's config and store); the control plane then
 * releases the services using them in waves by tier, each by canary, and stops at the first wave
 * that fails.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import type { RingJson } from '../api/index.js';
import { bake } from '../bake/index.js';
import { ConflictError, KilnError, ValidationError } from '../errors/index.js';
import type { LoadedConfig } from '../spec/index.js';
import { aptRootFromEnv, loadFromOptions, printJson } from './common.js';
import { ExitCode } from './exit.js';
import {
  clientFor,
  parseTimeout,
  shortDigest,
  withConnection,
  type ConnectionOptions,
} from './fleet-common.js';

/** How long `--wait` follows a ring unless `--timeout` says: an hour (each wave is a canary). */
export const DEFAULT_RING_TIMEOUT = '1h';

/**
 * The images built on `base`, directly or through others, with `base` itself first: what a new
 * base means rebaking. Throws a ValidationError naming the declared images when `base` is not one.
 */
export function imagesOnBase(config: LoadedConfig, base: string): string[] {
  const images = config.stack.images;
  if (!images.some((i) => i.name === base)) {
    throw new ValidationError(config.file, [
      {
        path: 'images',
        message: `no image "${base}" is declared`,
        fix: `name one of: ${images.map((i) => i.name).join(', ') || '(none declared)'}`,
      },
    ]);
  }
  const on = new Set([base]);
  for (let grew = true; grew;) {
    grew = false;
    for (const i of images) {
      if (!on.has(i.name) && on.has(i.from)) {
        on.add(i.name);
        grew = true;
      }
    }
  }
  return images.filter((i) => on.has(i.name)).map((i) => i.name);
}

/** `kiln release base IMAGE [--wait] [--json]`. */
export function releaseCommand(): Command {
  const root = new Command('release').description('release a new base image to every service built on it');
  root.addCommand(
    withConnection(
      new Command('base')
        .description(
          'rebake every image built on IMAGE and release the services using them in waves by tier, lowest first, each by canary; stop at the first wave that fails',
        )
        .argument('<image>', 'a base image declared in the config')
        .option('--wait', 'follow the ring until it ends; exit 1 when it stops at a failed wave')
        .option('--timeout <duration>', 'with --wait, give up waiting after this long', DEFAULT_RING_TIMEOUT)
        .option('--json', 'print JSON (RingJson, docs/api.md)'),
    ).action(
      async (
        base: string,
        opts: ConnectionOptions & { wait?: boolean; timeout: string; json?: boolean },
        cmd: Command,
      ) => {
        const timeoutMs = parseTimeout('--timeout', opts.timeout);
        const config = await loadFromOptions(cmd);
        const names = imagesOnBase(config, base);
        const services = config.stack.services.filter((s) => names.includes(s.image));
        if (services.length === 0) {
          throw new ValidationError(config.file, [
            {
              path: 'services',
              message: `no service uses ${base} or an image built on it (${names.join(', ')})`,
              fix: 'give a service one of these images, or name another base',
            },
          ]);
        }
        // Ask the server first: a bake is wasted if it cannot be reached or a ring still runs.
        const api = await clientFor(cmd, opts);
        const running = (await api.rings(1))[0];
        if (running?.phase === 'running') {
          throw new ConflictError(
            `ring ${running.id} (base ${running.base}) is still running: ${running.message}; wait for it (kiln rings status)`,
          );
        }
        const baked = await bake({
          config,
          names,
          log: (line) => process.stderr.write(`${line}\n`),
          ...aptRootFromEnv(),
        });
        const digest = new Map(baked.map((b) => [b.name, b.digest]));
        const ring = await api.startRing({
          base,
          baseDigest: digest.get(base)!,
          targets: services.map((s) => ({ service: s.name, image: s.image, digest: digest.get(s.image)! })),
        });
        if (!opts.json) process.stdout.write(`${ring.id}: ${ring.message}\n`);
        if (!opts.wait) {
          if (opts.json) printJson(ring);
          return;
        }
        const final = await follow(api, ring, timeoutMs, opts.json === true);
        if (opts.json) printJson(final);
        else process.stdout.write(ringText(final));
        if (final.phase !== 'succeeded') process.exitCode = ExitCode.Failed;
      },
    ),
  );
  return root;
}

async function follow(
  api: { rings(limit?: number): Promise<RingJson[]> },
  ring: RingJson,
  timeoutMs: number,
  quiet: boolean,
): Promise<RingJson> {
  const deadline = Date.now() + timeoutMs;
  let shown = ring.message;
  for (;;) {
    const now = (await api.rings(20)).find((r) => r.id === ring.id);
    if (!now) throw new KilnError('runtime', `ring ${ring.id} is no longer listed by the server`);
    if (now.message !== shown && !quiet) process.stdout.write(`${now.message}\n`);
    shown = now.message;
    if (now.phase !== 'running') return now;
    if (Date.now() > deadline) {
      throw new KilnError(
        'runtime',
        `ring ${ring.id} is still running after ${Math.round(timeoutMs / 1000)} s: ${now.message}`,
      );
    }
    await sleep(500);
  }
}

/** `kiln rings status [--json]`. */
export function ringsCommand(): Command {
  const root = new Command('rings').description('base-image promotion rings');
  root.addCommand(
    withConnection(
      new Command('status')
        .description('show the newest rings: each wave by tier, and how each service went')
        .option('--limit <n>', 'how many rings', '5')
        .option('--json', 'print JSON (RingJson[], docs/api.md)'),
    ).action(async (opts: ConnectionOptions & { limit: string; json?: boolean }, cmd: Command) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 999) {
        throw new ValidationError(undefined, [
          {
            path: '--limit',
            message: `${opts.limit} is not a count`,
            fix: 'give a whole number from 1 to 999',
          },
        ]);
      }
      const rings = await (await clientFor(cmd, opts)).rings(limit);
      if (opts.json) printJson(rings);
      else
        process.stdout.write(
          rings.length ? rings.map(ringText).join('\n') : 'no base image has been released by ring yet\n',
        );
    }),
  );
  return root;
}

/** The human form of a ring. */
export function ringText(r: RingJson): string {
  const lines = [
    `${r.id}: base ${r.base} (${shortDigest(r.baseDigest)}) ${r.phase}, by ${r.createdBy} at ${r.createdAt}`,
    `  ${r.message}`,
  ];
  r.waves.forEach((w, i) => {
    lines.push(`  wave ${i + 1}, tier ${w.tier}: ${w.phase}`);
    for (const s of w.services) {
      lines.push(
        `    ${s.service}: ${s.outcome ?? (w.phase === 'running' ? 'rolling out' : 'waiting')}` +
          `${s.rollout ? ` (rollout ${s.rollout})` : ''}${s.message ? `: ${s.message}` : ''}`,
      );
    }
  });
  return `${lines.join('\n')}\n`;
}
