/**
 * `kiln exec INSTANCE [--tty] -- CMD...`: a debugging shell in a running instance. The control
 * plane opens an audited session (admin scope), taints the instance at once and answers the host
 * command (`crun … exec [--tty] ID CMD…`); this verb runs it with the terminal's stdin, stdout and
 * stderr, heartbeats the session while it runs, and tells the control plane when it ended. The
 * instance is replaced `drift.execGrace` after that (unless its service says `alert`). It exits
 * with the command's exit status (128 + the signal's number when a signal ended it).
 */
import { spawn as nodeSpawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { Command } from 'commander';
import type { ApiClient, ExecSessionJson } from '../api/index.js';
import { clientFor, withConnection, type ConnectionOptions } from './fleet-common.js';

interface ExecFlags extends ConnectionOptions {
  readonly tty?: boolean;
}

export function execCommand(): Command {
  return withConnection(
    new Command('exec')
      .description(
        'run a command in a running instance (crun/runc exec); audited, and the instance is tainted and replaced after',
      )
      .argument('<instance>', 'a running instance (kiln instances)')
      .argument('<command...>', 'the program and its arguments, after --')
      .option('-t, --tty', 'allocate a terminal (an interactive shell)')
      .action(async (instance: string, command: string[], opts: ExecFlags, cmd: Command) => {
        const api = await clientFor(cmd, opts);
        const session = await api.execOpen(instance, { command, ...(opts.tty ? { tty: true } : {}) });
        process.stderr.write(`${openedLine(session)}\n`);
        process.exitCode = await runExecSession(api, session);
      }),
  );
}

/** What the verb says before the command runs: the taint and when the replacement comes. */
export function openedLine(s: ExecSessionJson): string {
  const when = s.replace
    ? `it is replaced ${seconds(s.graceMs)} after this session ends`
    : "its service's drift.action is alert: it is reported, not replaced";
  return `kiln: ${s.instance} is now tainted (ExecDetected, exec session ${s.session}); ${when}`;
}

/** What {@link runExecSession} needs of the API client. */
export type ExecApi = Pick<ApiClient, 'execHeartbeat' | 'execEnd'>;

/** Options of {@link runExecSession}. */
export interface ExecRunOptions {
  /** @default node:child_process spawn */
  readonly spawn?: (file: string, args: readonly string[]) => ChildProcess;
  /** @default stderr */
  readonly warn?: (line: string) => void;
}

/**
 * Runs the session's `argv` with inherited stdio, heartbeating every `heartbeatMs` while it runs,
 * then ends the session with the exit status, which it returns. SIGINT and SIGQUIT reach the
 * command (the terminal's process group) and are ignored here, so the end is always reported.
 */
export async function runExecSession(
  api: ExecApi,
  session: ExecSessionJson,
  options: ExecRunOptions = {},
): Promise<number> {
  const warn = options.warn ?? ((line: string) => process.stderr.write(`${line}\n`));
  const [file, ...args] = session.argv ?? [];
  if (file === undefined) throw new Error(`exec session ${session.session} came without a command to run`);
  const spawn = options.spawn ?? ((f, a) => nodeSpawn(f, [...a], { stdio: 'inherit' }));
  let warned = false;
  const beat = setInterval(() => {
    api.execHeartbeat(session.session).catch((err: unknown) => {
      if (warned) return;
      warned = true;
      warn(
        `kiln: the exec session's heartbeat failed (${String(err)}); it ends by itself after ${seconds(session.expiresAfterMs)}`,
      );
    });
  }, session.heartbeatMs);
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGQUIT', ignore);
  let code: number;
  try {
    code = await new Promise<number>((resolve, reject) => {
      const child = spawn(file, args);
      child.once('error', reject);
      child.once('exit', (status, signal) =>
        resolve(status ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)),
      );
    });
  } catch (err) {
    code = 127;
    warn(`kiln: running ${file} failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    clearInterval(beat);
    process.off('SIGINT', ignore);
    process.off('SIGQUIT', ignore);
  }
  try {
    await api.execEnd(session.session, { exitCode: Math.min(255, code) });
  } catch (err) {
    warn(
      `kiln: telling the control plane the session ended failed (${err instanceof Error ? err.message : String(err)}); ` +
        `it ends by itself after ${seconds(session.expiresAfterMs)}`,
    );
  }
  return code;
}

function seconds(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`;
}
