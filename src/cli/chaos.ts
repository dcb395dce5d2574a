/**
 * `kiln chaos run [SERVICE]` and `kiln chaos report`: terminate instances on demand (the schedule
 * of services that opted in runs in the control plane by itself) and read how fast the fleet
 * recovered and what clients saw meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, Option } from 'commander';
import type { ApiClient, ChaosReportJson, ChaosRunJson } from '../api/index.js';
import { KilnError } from '../errors/index.js';
import { printJson } from './common.js';
import { ExitCode } from './exit.js';
import {
  clientFor,
  parseCount,
  parseTimeout,
  withConnection,
  type ConnectionOptions,
} from './fleet-common.js';

/** `kiln chaos …`. */
export function chaosCommand(): Command {
  const root = new Command('chaos').description('terminate instances on purpose, and measure the recovery');
  root.addCommand(
    withConnection(
      new Command('run')
        .description(
          'terminate instances of SERVICE (or of every service that opted in), one every --interval; with --wait, print the report when done',
        )
        .argument('[service]', 'a deployed service (default: every service with chaos.enabled)')
        .option('--kills <n>', 'how many instances to terminate', '1')
        .option('--interval <duration>', 'time between terminations', '2s')
        .addOption(
          new Option('--mode <mode>', 'how to terminate')
            .choices(['kill', 'stop', 'corrupt', 'partition'])
            .default('kill'),
        )
        .option('--dry-run', 'only record what would be terminated')
        .option(
          '--wait',
          'wait for the run to end and print its report; exit 1 if an instance did not recover',
        )
        .option('--timeout <duration>', 'with --wait, give up after this long', '30m')
        .option('--json', 'print JSON (ChaosRunJson, or with --wait ChaosReportJson; docs/api.md)'),
    ).action(
      async (
        service: string | undefined,
        opts: ConnectionOptions & {
          kills: string;
          interval: string;
          mode: 'kill' | 'stop' | 'corrupt' | 'partition';
          dryRun?: boolean;
          wait?: boolean;
          timeout: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const kills = parseCount('--kills', opts.kills)!;
        const timeoutMs = parseTimeout('--timeout', opts.timeout);
        parseTimeout('--interval', opts.interval);
        const api = await clientFor(cmd, opts);
        const run = await api.chaosRun({
          ...(service !== undefined ? { service } : {}),
          kills,
          interval: opts.interval,
          mode: opts.mode,
          ...(opts.dryRun ? { dryRun: true } : {}),
        });
        if (!opts.wait) {
          if (opts.json) printJson(run);
          else process.stdout.write(`${run.id}: ${run.message}\n`);
          return;
        }
        if (!opts.json) process.stdout.write(`${run.id}: ${run.message}\n`);
        await finished(api, run, timeoutMs);
        const report = await api.chaosReport(run.id);
        if (opts.json) printJson(report);
        else process.stdout.write(reportText(report));
        if (report.recovered < report.kills || report.run?.phase === 'failed')
          process.exitCode = ExitCode.Failed;
      },
    ),
  );
  root.addCommand(
    withConnection(
      new Command('report')
        .description('MTTR (median, p99) and availability of a chaos run, and each termination')
        .option('--run <id>', 'the run (default: the latest)')
        .option('--json', 'print JSON (ChaosReportJson, docs/api.md)'),
    ).action(async (opts: ConnectionOptions & { run?: string; json?: boolean }, cmd: Command) => {
      const report = await (await clientFor(cmd, opts)).chaosReport(opts.run);
      if (opts.json) printJson(report);
      else process.stdout.write(reportText(report));
    }),
  );
  return root;
}

async function finished(api: ApiClient, run: ChaosRunJson, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await api.chaosReport(run.id)).run?.phase !== 'running') return;
    if (Date.now() > deadline)
      throw new KilnError(
        'runtime',
        `chaos run ${run.id} is still running after ${Math.round(timeoutMs / 1000)} s`,
      );
    await sleep(250);
  }
}

const ms = (x: number | null) =>
  x === null ? '–' : x < 1000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(2)} s`;

/** The human form of a report. */
export function reportText(r: ChaosReportJson): string {
  const lines: string[] = [];
  if (r.run) lines.push(`${r.run.id}: ${r.run.message} (${r.run.phase})`);
  else lines.push('scheduled terminations of the last 24 hours');
  lines.push(
    `  ${r.kills} terminated, ${r.recovered} recovered; MTTR median ${ms(r.mttrMs.median)}, p99 ${ms(r.mttrMs.p99)}; ` +
      `detected in median ${ms(r.detectMs.median)}, p99 ${ms(r.detectMs.p99)}`,
  );
  if (r.availability !== null) {
    lines.push(
      `  availability ${(r.availability * 100).toFixed(3)}%: ${r.failed} of ${r.requests} requests failed during the run`,
    );
  }
  for (const t of r.terminations) {
    const rec =
      t.recoveryMs !== undefined
        ? `recovered in ${ms(t.recoveryMs)} by ${t.replacement}`
        : t.outcome === 'terminated'
          ? 'not recovered'
          : '';
    lines.push(
      `  ${t.startedAt} ${t.service} ${t.outcome} ${t.instance || '-'} (${t.mode})${rec ? `: ${rec}` : ''}` +
        `${t.failedRequests !== undefined ? `, ${t.failedRequests} failed requests` : ''}${t.outcome === 'held' || t.outcome === 'skipped' ? `: ${t.reason}` : ''}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
