import { Command } from 'commander';
import { Archives, homePaths, hostDebianArch, outdatedPackages, readLock } from '../bake/index.js';
import { NotFoundError } from '../errors/index.js';
import type { LoadedConfig } from '../spec/index.js';
import { aptRootFromEnv, homeFor, loadFromOptions, printJson, table } from './common.js';

/** `kiln outdated [--json]`: locked packages that have newer versions in the archive. */
export function outdatedCommand(): Command {
  return new Command('outdated')
    .description('list locked packages with newer versions in the archive; security updates are marked')
    .option('--json', 'print JSON')
    .option('--exit-code', 'exit 1 when anything is outdated')
    .action(async (opts: { json?: boolean; exitCode?: boolean }, cmd: Command) => {
      const config = await loadFromOptions(cmd);
      const lock = await readLock(config.dir);
      if (!lock) throw new NotFoundError(`no kiln.lock beside ${config.file}: run \`kiln bake\` first`);
      const outdated = await outdatedPackages(lock, archivesFor(config));
      if (opts.json) printJson(outdated);
      else if (outdated.length === 0) process.stdout.write('every locked package is at its newest version\n');
      else {
        const rows = [['IMAGE', 'PACKAGE', 'LOCKED', 'AVAILABLE', 'SUITE', '']];
        for (const o of outdated)
          rows.push([o.image, o.name, o.locked, o.available, o.suite, o.security ? 'SECURITY' : '']);
        process.stdout.write(table(rows));
        process.stdout.write('run `kiln bake --update` to take them\n');
      }
      if (opts.exitCode && outdated.length > 0) process.exitCode = 1;
    });
}

/** The Debian archive of a project, as its config names it (its mirror, else the machine's apt sources). */
export function archivesFor(config: LoadedConfig): Archives {
  return new Archives({
    cacheDir: homePaths(homeFor(config)).cache,
    arch: config.stack.arch ?? hostDebianArch(),
    ...(config.stack.mirror ? { mirror: config.stack.mirror } : {}),
    ...aptRootFromEnv(),
  });
}
