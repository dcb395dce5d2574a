/**
 * `kiln deploy` bakes the service's image first when it is one of the project's images and the
 * server is this project's own (it shares the project's store): editing the app or the config and
 * running `kiln deploy web` then releases the change, with nothing stale deployed by mistake.
 */
import type { Command } from 'commander';
import { SERVER_ENV } from '../api/index.js';
import { bake } from '../bake/index.js';
import { ValidationError } from '../errors/index.js';
import { aptRootFromEnv, loadFromOptions } from './common.js';

/**
 * Bakes what `service` (or `--image`) needs, when that is this project's image; else does nothing,
 * or, with `required` (an explicit `--bake`), throws a ValidationError saying why it cannot.
 * When it baked, says whether the service is stateful (which has no strategy to choose).
 */
export async function bakeBeforeDeploy(
  cmd: Command,
  service: string,
  opts: { readonly image?: string; readonly server?: string; readonly required?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ readonly stateful: boolean } | void> {
  const cannot = (message: string, fix: string): void => {
    if (opts.required) throw new ValidationError(undefined, [{ path: '--bake', message, fix }]);
  };
  // A server named by flag or environment may be another machine's, with its own store.
  if (opts.server !== undefined || env[SERVER_ENV]) {
    return cannot(
      "the server is named by --server or KILN_SERVER, so it may not share this project's image store",
      'bake and push the image yourself, then deploy it with --image',
    );
  }
  const config = opts.required
    ? await loadFromOptions(cmd)
    : await loadFromOptions(cmd).catch(() => undefined);
  if (!config) return;
  const image = opts.image ?? config.stack.services.find((s) => s.name === service)?.image;
  if (image === undefined || !config.stack.images.some((i) => i.name === image)) {
    return cannot(
      `${image ?? service} is not an image this project declares, so there is nothing to bake`,
      'name a service whose image is declared under images:, or deploy without --bake',
    );
  }
  const [baked] = await bake({
    config,
    names: [image],
    log: (line) => process.stderr.write(`${line}\n`),
    ...aptRootFromEnv(),
  });
  if (baked && !baked.upToDate) process.stderr.write(`image ${image}: baked ${baked.digest.slice(0, 19)}\n`);
  return { stateful: config.stack.services.find((s) => s.name === service)?.kind === 'stateful' };
}
