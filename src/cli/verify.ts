/**
 * `kiln verify [INSTANCE|--all] [--service NAME] [--json]`: checks running instances against their
 * releases now, with every file of their root hashed, and their bundle and live environment
 * compared with the release. Drift taints the instance as the background check does (replaced, or
 * only reported with `drift.action: alert`). Exit 0 when every instance is clean, 4 when one
 * drifted, 1 when one could not be verified.
 */
import { Command } from 'commander';
import type { InstanceVerdictJson, VerifyJson } from '../api/index.js';
import { ValidationError } from '../errors/index.js';
import { printJson } from './common.js';
import { ExitCode } from './exit.js';
import { clientFor, shortDigest, withConnection, type ConnectionOptions } from './fleet-common.js';

/** Differences listed per instance before "and N more". */
export const MAX_LISTED = 20;

interface VerifyFlags extends ConnectionOptions {
  readonly all?: boolean;
  readonly service?: string;
  readonly json?: boolean;
}

export function verifyCommand(): Command {
  return withConnection(
    new Command('verify')
      .description(
        'check running instances against their releases now (every file hashed, bundle and live environment); drift taints them',
      )
      .argument('[instance]', 'a live instance (default: every live instance)')
      .option('--all', 'every live instance (the default)')
      .option('--service <name>', "only this service's instances")
      .option('--json', 'print JSON (VerifyJson, docs/api.md)')
      .action(async (instance: string | undefined, opts: VerifyFlags, cmd: Command) => {
        if (instance !== undefined && opts.all) {
          throw new ValidationError('kiln verify', [
            { path: 'instance', message: 'an instance and --all were both given', fix: 'give one of them' },
          ]);
        }
        const api = await clientFor(cmd, opts);
        const result = await api.verify({
          ...(instance !== undefined ? { instance } : {}),
          ...(opts.service !== undefined ? { service: opts.service } : {}),
        });
        if (opts.json) printJson(result);
        else process.stdout.write(verifyText(result));
        process.exitCode = verifyExitCode(result);
      }),
  );
}

/** 0 when every instance is clean, 4 (integrity) when one drifted, else 1 when one is unverified. */
export function verifyExitCode(result: VerifyJson): number {
  if (result.drifted > 0) return ExitCode.Integrity;
  return result.unverified > 0 ? ExitCode.Failed : ExitCode.Ok;
}

/** One line per instance (`web-r1-a1b2 web r1 sha256:… clean`), its differences below it, a summary last. */
export function verifyText(result: VerifyJson): string {
  const lines: string[] = [];
  for (const v of result.instances) {
    lines.push(`${v.id}  ${v.service} ${v.release} ${shortDigest(v.digest)}  ${verdictWords(v)}`);
    const diffs = [
      ...v.files.map((f) => `/${f.path} ${f.change} (${f.detail})`),
      ...v.process,
      ...(v.error !== undefined ? [v.error] : []),
    ];
    for (const d of diffs.slice(0, MAX_LISTED)) lines.push(`    ${d}`);
    if (diffs.length > MAX_LISTED) lines.push(`    and ${diffs.length - MAX_LISTED} more (--json lists all)`);
  }
  const n = result.instances.length;
  lines.push(
    n === 0
      ? 'no live instances to verify'
      : `${n} instance${n === 1 ? '' : 's'} checked (every file hashed): ${result.clean} clean, ${result.drifted} drifted` +
          (result.unverified > 0 ? `, ${result.unverified} could not be verified` : ''),
  );
  return `${lines.join('\n')}\n`;
}

function verdictWords(v: InstanceVerdictJson): string {
  const head = v.verdict === 'clean' ? 'clean' : v.verdict === 'drifted' ? 'DRIFTED' : 'UNVERIFIED';
  if (!v.taint) return head;
  const then = v.verdict === 'clean' ? ', and was tainted before' : '';
  const what =
    v.action === 'alert'
      ? 'drift.action is alert: reported, not replaced'
      : v.action === 'held'
        ? 'its replacement waits for an exec session and its grace period'
        : 'the controller replaces it';
  return `${head}${then}: tainted (${v.taint.reason}); ${what}`;
}
