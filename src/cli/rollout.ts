/**
 * `kiln rollout status|promote|abort|pause|resume SERVICE`: a service's rollout in detail, and a
 * person stepping into a canary. `status` shows every look of the judge: the score, the decision
 * and the verdict on each metric, with the numbers behind it.
 */
import { Command, Option } from 'commander';
import type {
  CanaryLookJson,
  MetricVerdictJson,
  RolloutCommandJson,
  RolloutDetailJson,
} from '../api/index.js';
import { printJson } from './common.js';
import { clientFor, withConnection, type ConnectionOptions } from './fleet-common.js';

/** `kiln rollout …`. */
export function rolloutCommand(): Command {
  const root = new Command('rollout').description("inspect a service's rollout, or step into a canary");
  root.addCommand(
    withConnection(
      new Command('status')
        .description(
          "show the service's newest rollout: its steps and, for a canary, every look of the judge",
        )
        .argument('<service>', 'a service declared in the config')
        .option('--json', 'print JSON (RolloutDetailJson, docs/api.md)'),
    ).action(async (service: string, opts: ConnectionOptions & { json?: boolean }, cmd: Command) => {
      const detail = await (await clientFor(cmd, opts)).serviceRollout(service);
      if (opts.json) printJson(detail);
      else process.stdout.write(rolloutText(detail));
    }),
  );
  const verbs: readonly [RolloutCommandJson, string][] = [
    ['promote', 'skip the rest of the current canary step (with --full, every step: straight to 100%)'],
    ['abort', 'stop the canary and roll back to the release it started from'],
    ['pause', 'hold the canary where it is: traffic stays, no look is taken, no deadline runs'],
    ['resume', 'let a paused canary go on; its current step is analysed afresh'],
  ];
  for (const [verb, description] of verbs) {
    let cmd = withConnection(
      new Command(verb)
        .description(description)
        .argument('<service>', 'a service with a canary rollout in progress')
        .option('--json', 'print JSON (RolloutDetailJson, docs/api.md)'),
    );
    if (verb === 'promote') cmd = cmd.addOption(new Option('--full', 'promote through every remaining step'));
    root.addCommand(
      cmd.action(
        async (service: string, opts: ConnectionOptions & { json?: boolean; full?: boolean }, c: Command) => {
          const api = await clientFor(c, opts);
          const detail = await api.controlRollout(service, verb, opts.full ? { full: true } : {});
          if (opts.json) printJson(detail);
          else process.stdout.write(`${service}: ${verb} done; rollout ${detail.id} is ${detail.phase}\n`);
        },
      ),
    );
  }
  return root;
}

const pct = (x: number | null, digits = 1) => (x === null ? '–' : `${(x * 100).toFixed(digits)}%`);
const num = (x: number | null, digits = 2) => (x === null ? '–' : x.toFixed(digits));

/** A proportion's effect is in rate points (0.02 → "2.00 pts"); anything else's is relative ("20.0%"). */
function effect(m: MetricVerdictJson, x: number | null): string {
  if (m.kind !== 'proportion') return pct(x);
  return x === null ? '–' : `${(x * 100).toFixed(2)} pts`;
}

/** The human form of a rollout's detail. */
export function rolloutText(d: RolloutDetailJson): string {
  const lines: string[] = [];
  lines.push(
    `${d.service}: rollout ${d.id} ${d.from ? `${d.from} → ` : ''}${d.to} by ${d.strategy}: ${d.phase}`,
  );
  if (d.message) lines.push(`  ${d.message}`);
  for (const c of d.conditions) lines.push(`  ${c.type}=${c.status} (${c.reason}): ${c.message}`);
  const canary = d.canary;
  if (canary) {
    const steps = canary.steps
      .map((s, i) => {
        const label = `${s.weight}%${s.analyseMs !== undefined ? ` analyse ${Math.round(s.analyseMs / 1000)}s` : ''}`;
        return i + 1 === canary.step && !d.done ? `[${label}]` : label;
      })
      .join(' → ');
    lines.push(`  steps: ${steps} → 100%   (canary weight now ${canary.weight}%)`);
    if (canary.windowStartedAt) lines.push(`  analysis window opened ${canary.windowStartedAt}`);
    for (const look of canary.looks) lines.push(...lookLines(look));
  }
  return `${lines.join('\n')}\n`;
}

function lookLines(l: CanaryLookJson): string[] {
  const score = l.score === null ? 'no score' : `score ${Math.round(l.score)}`;
  const out = [
    `  step ${l.step} (${l.weight}%) look ${l.look}/${l.looks} at ${l.at}: ${score}, ${l.decision}; ` +
      `${l.samples.baseline} baseline / ${l.samples.canary} canary requests`,
    `    ${l.reason}`,
  ];
  for (const m of l.metrics) out.push(`    ${metricLine(m)}`);
  for (const w of l.warnings) out.push(`    warning: ${w}`);
  return out;
}

function metricLine(m: MetricVerdictJson): string {
  const flag = m.classification === 'pass' ? 'pass' : m.classification.toUpperCase();
  const crit = m.critical ? ' (critical)' : '';
  if (m.classification === 'nodata') return `${m.name}${crit}: nodata: ${m.reason}`;
  return (
    `${m.name}${crit}: ${flag}  baseline median ${num(m.baseline.median)} mean ${num(m.baseline.mean, 4)} (n=${m.baseline.n}), ` +
    `canary median ${num(m.canary.median)} mean ${num(m.canary.mean, 4)} (n=${m.canary.n}); ` +
    `effect ${effect(m, m.effect)} (band ${effect(m, m.tolerance)}), p=${m.pValue === null ? '–' : m.pValue.toPrecision(2)} ` +
    `vs α=${m.alpha === null ? '–' : m.alpha.toPrecision(2)}`
  );
}
