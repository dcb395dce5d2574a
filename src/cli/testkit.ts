/**
 * Fixtures for the CLI's tests (not built): `kiln ARGS` run as main() runs it, with stdout
 * captured, and a kiln server over a {@link FakeControlPlane} to point it at.
 */
import { CommanderError } from 'commander';
import { vi } from 'vitest';
import { FakeControlPlane, startApiServer, type ApiServer } from '../api/index.js';
import { IN_MEMORY, openState, type StateStore } from '../state/index.js';
import { describeError, ExitCode, exitCodeFor } from './exit.js';
import { program } from './main.js';

/** Runs `kiln ARGS` as main() does and returns the exit code, stdout and the printed error. */
export async function kiln(...args: string[]): Promise<{ code: number; stdout: string; error: string }> {
  let stdout = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  process.exitCode = undefined;
  try {
    await program().parseAsync(['node', 'kiln', ...args]);
    return { code: typeof process.exitCode === 'number' ? process.exitCode : 0, stdout, error: '' };
  } catch (err) {
    const code = err instanceof CommanderError ? ExitCode.Usage : exitCodeFor(err);
    return { code, stdout, error: describeError(err) };
  } finally {
    spy.mockRestore();
    process.exitCode = undefined;
  }
}

/** A server over a fresh fake plane, and `conn`: the flags that reach it as admin `alice`. */
export interface FakeServer {
  readonly store: StateStore;
  readonly plane: FakeControlPlane;
  readonly api: ApiServer;
  readonly conn: readonly string[];
  close(): Promise<void>;
}

/** Starts a {@link FakeServer}, with the KILN_* variables blanked until `close`. */
export async function fakeServer(): Promise<FakeServer> {
  for (const name of ['KILN_SERVER', 'KILN_TOKEN', 'KILN_HOME', 'KILN_DEBUG']) vi.stubEnv(name, '');
  const store = openState(IN_MEMORY);
  const plane = new FakeControlPlane({ store });
  const api = await startApiServer({
    plane,
    tokens: store.tokens,
    audit: store.audit,
    version: '9.9.9',
    log: () => {},
  });
  const conn = ['--server', api.url, '--token', store.tokens.create('alice', ['admin']).secret];
  return {
    store,
    plane,
    api,
    conn,
    close: async () => {
      vi.unstubAllEnvs();
      await api.close();
      store.close();
    },
  };
}
