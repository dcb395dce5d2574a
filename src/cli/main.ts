import { Command, CommanderError } from 'commander';
import { kilnVersion } from '../bake/index.js';
import { bakeCommand } from './bake.js';
import { devCommand } from './dev.js';
import { doctorCommand } from './doctor.js';
import { describeError, ExitCode, exitCodeFor } from './exit.js';
import { imagesCommand } from './images.js';
import { outdatedCommand } from './outdated.js';
import { pushCommand } from './push.js';
import { renderCommand } from './render.js';
import { replicateCommand } from './replicate.js';
import { runCommand } from './run.js';
import { serverCommand } from './server.js';
import { upCommand } from './up.js';
import {
  deployCommand,
  instancesCommand,
  logsCommand,
  releasesCommand,
  rollbackCommand,
  statusCommand,
} from './fleet.js';
import { chaosCommand } from './chaos.js';
import { releaseCommand, ringsCommand } from './rings.js';
import { rolloutCommand } from './rollout.js';
import { tokensCommand } from './tokens.js';
import { auditCommand } from './audit.js';
import { execCommand } from './exec.js';
import { verifyCommand } from './verify.js';

/** The whole command tree; one file per verb. */
export function program(): Command {
  const root = new Command('kiln')
    .description(
      'immutable infrastructure: bake reproducible, signed, minimal images from Debian packages, and release them only by replacement',
    )
    .version(kilnVersion(), '-V, --version')
    .option('-c, --config <file>', 'config file (default: kiln.config.ts, kiln.config.js or kiln.yaml here)')
    .showHelpAfterError()
    .exitOverride();
  for (const cmd of [
    bakeCommand(),
    imagesCommand(),
    runCommand(),
    devCommand(),
    pushCommand(),
    replicateCommand(),
    outdatedCommand(),
    doctorCommand(),
    upCommand(),
    serverCommand(),
    deployCommand(),
    rollbackCommand(),
    releasesCommand(),
    statusCommand(),
    instancesCommand(),
    logsCommand(),
    rolloutCommand(),
    releaseCommand(),
    ringsCommand(),
    chaosCommand(),
    tokensCommand(),
    verifyCommand(),
    execCommand(),
    auditCommand(),
    renderCommand(),
  ]) {
    root.addCommand(cmd.exitOverride());
    for (const sub of cmd.commands) sub.exitOverride(); // not inherited: rollout status, rings status…
  }
  return root;
}

/** Runs the CLI with `argv` (as process.argv) and returns the exit code. Errors are printed, never thrown. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await program().parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.Ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help'
      )
        return ExitCode.Ok;
      return ExitCode.Usage;
    }
    process.stderr.write(`${describeError(err)}\n`);
    return exitCodeFor(err);
  }
}
