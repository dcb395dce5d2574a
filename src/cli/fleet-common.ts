/**
 * What the fleet verbs (deploy, rollback, releases, status, instances, logs) share: the
 * `--server`/`--token` options, finding the server, parsing counts and durations, and the lines
 * and tables they print. The formatting functions are pure so tests call them directly.
 */
import path from 'node:path';
import type { Command } from 'commander';
import {
  ApiClient,
  CA_ENV,
  readConnection,
  SERVER_ENV,
  TOKEN_ENV,
  type DeployResultJson,
  type InstanceJson,
  type ReleaseJson,
  type RolloutJson,
  type ServiceStatusJson,
} from '../api/index.js';
import { ValidationError, wrap } from '../errors/index.js';
import { parseDuration } from '../spec/index.js';
import { homeFor, loadFromOptions, table } from './common.js';

/** `--server`, `--token` and `--ca`, which every fleet verb takes. */
export interface ConnectionOptions {
  readonly server?: string;
  readonly token?: string;
  readonly ca?: string;
}

/** Adds `--server URL`, `--token T` and `--ca FILE` to a verb. */
export function withConnection(cmd: Command): Command {
  return cmd
    .option('--server <url>', `control plane URL (default: ${SERVER_ENV}, else .kiln/server.json)`)
    .option('--token <token>', `API token (default: ${TOKEN_ENV}, else .kiln/admin-token)`)
    .option(
      '--ca <file>',
      `PEM certificate to trust for an https:// server (default: ${CA_ENV}, else the one .kiln/server.json names)`,
    );
}

/**
 * A client for the server named by the flags, else the environment, else the project's
 * `.kiln/server.json` and `.kiln/admin-token`. The config is loaded only when flags and
 * environment leave something to find, so the verbs work outside a project given both.
 */
export async function clientFor(
  cmd: Command,
  opts: ConnectionOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ApiClient> {
  const flags = {
    ...(opts.server === undefined ? {} : { server: opts.server }),
    ...(opts.token === undefined ? {} : { token: opts.token }),
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
  };
  let home: string | undefined;
  if (!(flags.server ?? env[SERVER_ENV]) || !(flags.token ?? env[TOKEN_ENV])) {
    try {
      home = homeFor(await loadFromOptions(cmd));
    } catch (err) {
      if (env.KILN_HOME) home = path.resolve(env.KILN_HOME);
      else
        throw wrap(
          `finding the kiln server (give --server and --token, or set ${SERVER_ENV} and ${TOKEN_ENV})`,
          err,
        );
    }
  }
  return new ApiClient(await readConnection(home, env, flags));
}

/** `--tail`-style whole numbers ≥ 0. */
export function parseCount(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,9}$/.test(text)) {
    throw new ValidationError(flag, [
      { path: '', message: `${JSON.stringify(text)} is not a whole number`, fix: `write ${flag} 100` },
    ]);
  }
  return Number(text);
}

/** `--timeout 10m` in milliseconds. */
export function parseTimeout(flag: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw new ValidationError(flag, [
      {
        path: '',
        message: `${JSON.stringify(text)} is not a duration`,
        fix: `give a unit, as ${flag} 90s or ${flag} 10m`,
      },
    ]);
  }
  return ms;
}

/** `sha256:` and the first 12 hex digits. */
export function shortDigest(digest: string): string {
  return digest.slice(0, 'sha256:'.length + 12);
}

/**
 * The line deploy and rollback print at once:
 * `web: r4 (sha256:0123456789ab) rolling out from r3 by rolling, rollout 7`.
 */
export function startedLine(verb: 'deploy' | 'rollback', result: DeployResultJson): string {
  const { release, rollout } = result;
  const head = `${release.service}: ${release.name} (${shortDigest(release.digest)})`;
  if (result.unchanged) return `${head} is already current; nothing to roll out`;
  if (result.instant) {
    return `${head} instant (standby ${release.name} switched back)${rollout.from ? ` from ${rollout.from}` : ''}, rollout ${rollout.id}`;
  }
  const doing = verb === 'deploy' ? 'rolling out' : 'rolling back';
  return `${head} ${doing}${rollout.from ? ` from ${rollout.from}` : ''} by ${rollout.strategy}, rollout ${rollout.id}`;
}

/** A progress line while waiting: `  progressing: 2 of 3 instances of r4 are healthy`. */
export function progressLine(rollout: RolloutJson): string {
  return `  ${phaseWords(rollout.phase)}${rollout.message ? `: ${rollout.message}` : ''}`;
}

/** The last line once the rollout is done: `web: r4 succeeded: all 3 instances of r4 are healthy`. */
export function finishedLine(rollout: RolloutJson): string {
  return `${rollout.service}: ${rollout.to} ${phaseWords(rollout.phase)}${rollout.message ? `: ${rollout.message}` : ''}`;
}

function phaseWords(phase: RolloutJson['phase']): string {
  return phase === 'rolled-back' ? 'rolled back' : phase;
}

/** `kiln releases`: NAME DIGEST CREATED BY REASON, `*` before the current release. */
export function releasesTable(releases: readonly ReleaseJson[]): string {
  const rows = [['  NAME', 'DIGEST', 'CREATED', 'BY', 'REASON']];
  for (const r of releases) {
    rows.push([
      `${r.current ? '*' : ' '} ${r.name}`,
      shortDigest(r.digest),
      shortTime(r.createdAt),
      r.createdBy,
      r.reason === '' ? '-' : r.reason,
    ]);
  }
  return table(rows);
}

/** `kiln status`: SERVICE RELEASE HEALTHY URL ROLLOUT. */
export function statusTable(services: readonly ServiceStatusJson[]): string {
  const rows = [['SERVICE', 'RELEASE', 'HEALTHY', 'URL', 'ROLLOUT']];
  for (const s of services) {
    rows.push([
      s.name,
      s.release ?? '-',
      `${s.healthy}/${s.replicas}${s.tainted ? ` (${s.tainted} tainted)` : ''}`,
      s.url,
      [
        s.rollout ? `${s.rollout.phase} ${s.rollout.from ? `${s.rollout.from}→` : ''}${s.rollout.to}` : '-',
        s.standby ? `(standby ${s.standby.release})` : '',
      ]
        .filter((part) => part !== '')
        .join(' '),
    ]);
  }
  return table(rows);
}

/** `kiln instances`: ID SERVICE RELEASE STATE PORT HEALTH AGE. */
export function instancesTable(instances: readonly InstanceJson[], now: Date = new Date()): string {
  const rows = [['ID', 'SERVICE', 'RELEASE', 'STATE', 'PORT', 'HEALTH', 'AGE']];
  for (const i of instances) {
    const { status, failures } = i.health;
    rows.push([
      i.id,
      i.service,
      i.release,
      i.taint && i.state !== 'tainted' ? `${i.state} (tainted: ${i.taint.reason})` : i.state,
      i.port === undefined ? '-' : String(i.port),
      status === 'failing' ? `failing (${failures})` : status,
      age(i.createdAt, now),
    ]);
  }
  return table(rows);
}

/** How long ago `since` was, in the largest whole unit: `45s`, `12m`, `5h`, `3d`. */
export function age(since: string, now: Date): string {
  const s = Math.max(0, Math.floor((now.getTime() - Date.parse(since)) / 1000));
  if (Number.isNaN(s)) return '-';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** `2026-01-01T10:00:00.000Z` → `2026-01-01 10:00:00Z`. */
export function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
