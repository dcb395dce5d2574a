import path from 'node:path';
import type { Command } from 'commander';
import { findConfig, loadConfig, type LoadedConfig } from '../spec/index.js';
import { kilnHome } from '../bake/index.js';

/** Options every verb that reads the config accepts. */
export interface GlobalOptions {
  readonly config?: string;
}

/** The config named by `-c FILE`, or found in the working directory. */
export async function loadFromOptions(cmd: Command): Promise<LoadedConfig> {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const file = opts.config ? path.resolve(opts.config) : findConfig(process.cwd());
  return loadConfig(file);
}

/** The state directory for a config. */
export function homeFor(config: LoadedConfig): string {
  return kilnHome(config);
}

/** Writes JSON to stdout, two-space indented, with a final newline. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Formats bytes as KiB/MiB for people. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Left-aligned columns for people. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return (
    rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') +
    '\n'
  );
}

/** The root apt sources are read from: `KILN_APT_ROOT` (for chroots and tests), else the machine's. */
export function aptRootFromEnv(): { aptRoot?: string } {
  const root = process.env.KILN_APT_ROOT;
  return root ? { aptRoot: root } : {};
}
