import { EventEmitter } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ExecSessionJson, SecurityReportJson, VerifyJson } from '../api/index.js';
import type { Archives } from '../bake/index.js';
import { UnavailableError } from '../errors/index.js';
import { auditReport, auditText, checkArchive } from './audit.js';
import { ExitCode } from './exit.js';
import { openedLine, runExecSession, type ExecApi } from './exec.js';
import { fakeServer, kiln, type FakeServer } from './testkit.js';
import { verifyExitCode, verifyText } from './verify.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

let server: FakeServer;
beforeEach(async () => {
  server = await fakeServer();
});
afterEach(async () => {
  await server.close();
});

const verdict = { service: 'web', release: 'r1', digest: D1, files: [], process: [] };
const DRIFTED: VerifyJson = {
  checkedAt: '2026-01-01T00:00:00.000Z',
  instances: [
    { ...verdict, id: 'web-r1-a', verdict: 'clean' },
    {
      ...verdict,
      id: 'web-r1-b',
      verdict: 'drifted',
      files: [{ path: 'etc/evil', change: 'added', detail: 'file not in the image' }],
      process: ['live env MODE: "prod" → "debug"'],
      action: 'replace',
      taint: { reason: 'DriftDetected', message: 'x', at: '2026-01-01T00:00:00.000Z' },
    },
  ],
  clean: 1,
  drifted: 1,
  unverified: 0,
};

describe('kiln verify', () => {
  it('prints each instance with its differences, and exits 4 when one drifted', async () => {
    server.plane.verifyValue = DRIFTED;
    const out = await kiln('verify', 'web-r1-b', ...server.conn);
    expect(out.code).toBe(ExitCode.Integrity);
    expect(out.stdout).toBe(
      [
        'web-r1-a  web r1 sha256:111111111111  clean',
        'web-r1-b  web r1 sha256:111111111111  DRIFTED: tainted (DriftDetected); the controller replaces it',
        '    /etc/evil added (file not in the image)',
        '    live env MODE: "prod" → "debug"',
        '2 instances checked (every file hashed): 1 clean, 1 drifted',
        '',
      ].join('\n'),
    );
    expect(server.plane.calls).toEqual([{ method: 'verify', args: [{ instance: 'web-r1-b' }] }]);
  });

  it('exits 0 when every instance is clean, 1 when one could not be verified, and refuses an instance with --all', async () => {
    const clean: VerifyJson = { ...DRIFTED, instances: [DRIFTED.instances[0]!], clean: 1, drifted: 0 };
    expect(verifyExitCode(clean)).toBe(0);
    expect(verifyExitCode({ ...clean, unverified: 1 })).toBe(ExitCode.Failed);
    server.plane.verifyValue = clean;
    const json = await kiln('verify', '--all', '--json', ...server.conn);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(clean);
    expect((await kiln('verify', 'x', '--all', ...server.conn)).code).toBe(ExitCode.Usage);
  });

  it('says when the replacement is held or only reported', () => {
    const taint = { reason: 'ExecDetected', message: 'x', at: '' };
    const held = verifyText({
      ...DRIFTED,
      instances: [{ ...DRIFTED.instances[0]!, taint, action: 'held' }],
    });
    expect(held).toContain('clean, and was tainted before: tainted (ExecDetected); its replacement waits');
    const alert = verifyText({ ...DRIFTED, instances: [{ ...DRIFTED.instances[1]!, action: 'alert' }] });
    expect(alert).toContain('drift.action is alert: reported, not replaced');
  });
});

const SESSION: ExecSessionJson = {
  session: 'exec-1',
  instance: 'web-r1-a',
  service: 'web',
  actor: 'alice',
  command: ['/bin/sh'],
  argv: ['crun', 'exec', 'web-r1-a', '/bin/sh'],
  state: 'open',
  openedAt: '2026-01-01T00:00:00.000Z',
  heartbeatMs: 10,
  expiresAfterMs: 30_000,
  graceMs: 60_000,
  replace: true,
};

/** A child process that exits with `code` (or is killed by `signal`) after `ms`. */
function fakeChild(ms: number, code: number | null, signal: NodeJS.Signals | null = null): ChildProcess {
  const child = new EventEmitter() as ChildProcess;
  setTimeout(() => child.emit('exit', code, signal), ms);
  return child;
}

describe('kiln exec', () => {
  it('runs the argv, heartbeats while it runs, ends the session with its exit status and returns it', async () => {
    const calls: string[] = [];
    const api: ExecApi = {
      execHeartbeat: async (s) => (calls.push(`beat ${s}`), SESSION),
      execEnd: async (s, r) => (calls.push(`end ${s} ${r?.exitCode}`), SESSION),
    };
    const ran: string[][] = [];
    const code = await runExecSession(api, SESSION, {
      spawn: (file, args) => (ran.push([file, ...args]), fakeChild(60, 3)),
    });
    expect(code).toBe(3);
    expect(ran).toEqual([['crun', 'exec', 'web-r1-a', '/bin/sh']]);
    expect(calls.filter((c) => c.startsWith('beat')).length).toBeGreaterThanOrEqual(2);
    expect(calls.at(-1)).toBe('end exec-1 3');
  });

  it('reports a signal as 128 + its number, and warns but still returns when the plane is gone', async () => {
    const warnings: string[] = [];
    const api: ExecApi = {
      execHeartbeat: async () => {
        throw new UnavailableError('gone');
      },
      execEnd: async () => {
        throw new UnavailableError('gone');
      },
    };
    const code = await runExecSession(api, SESSION, {
      spawn: () => fakeChild(40, null, 'SIGKILL'),
      warn: (l) => warnings.push(l),
    });
    expect(code).toBe(137);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('heartbeat failed');
    expect(warnings[1]).toContain('it ends by itself after 30 s');
  });

  it('says the instance is tainted and when it is replaced', () => {
    expect(openedLine(SESSION)).toBe(
      'kiln: web-r1-a is now tainted (ExecDetected, exec session exec-1); it is replaced 1 min after this session ends',
    );
    expect(openedLine({ ...SESSION, replace: false })).toContain('drift.action is alert');
  });

  it('opens the session through the API with the command after --', async () => {
    server.plane.execValue = { ...SESSION, argv: ['/bin/sh', '-c', 'exit 5'], heartbeatMs: 60_000 };
    const out = await kiln('exec', 'web-r1-a', ...server.conn, '--', '/bin/sh', '-c', 'exit 7');
    expect(out.code).toBe(5);
    expect(server.plane.calls.map((c) => [c.method, ...c.args])).toEqual([
      ['execOpen', 'web-r1-a', { command: ['/bin/sh', '-c', 'exit 7'] }, 'alice'],
      ['execEnd', 'exec-1', { exitCode: 5 }, 'alice'],
    ]);
  });
});

const REPORT: SecurityReportJson = {
  generatedAt: '2026-01-02T00:00:00.000Z',
  taintedSince: '2026-01-01T00:00:00.000Z',
  services: [
    {
      service: 'web',
      release: 'r2',
      images: [
        {
          digest: D1,
          instances: 2,
          releases: ['r2'],
          signer: { keyid: `sha256:${'f'.repeat(64)}`, trusted: true, source: '/k/signing.pub' },
          signers: [{ keyid: `sha256:${'f'.repeat(64)}`, trusted: true, source: '/k/signing.pub' }],
          sbom: {
            digest: `sha256:${'5'.repeat(64)}`,
            mediaType: 'application/vnd.cyclonedx+json',
            artifactType: 'application/vnd.cyclonedx+json',
            subject: D1,
            store: '/p/.kiln/store',
            components: 2,
            packages: [
              { name: 'libc6', version: '2.36-9', suite: 'testing' },
              { name: 'tzdata', version: '2024a-1', suite: 'testing-updates' },
            ],
          },
        },
        { digest: D2, instances: 1, releases: ['r1'], signer: null, signers: [], sbom: null },
      ],
      tainted: [
        {
          id: 'web-r1-x',
          release: 'r1',
          state: 'stopped',
          taint: { reason: 'ExecDetected', message: 'alice ran sh', at: '2026-01-01T10:00:00.000Z' },
        },
      ],
    },
  ],
};

/** An archive whose suites have these newest versions (suite of each), or that cannot be read. */
function archive(newest: Record<string, { version: string; suite: string }> | Error): Archives {
  return {
    index: async (suite: string) => {
      if (newest instanceof Error) throw newest;
      expect(suite).toBe('testing');
      return { newest: (name: string) => newest[name] };
    },
  } as unknown as Archives;
}

describe('kiln audit', () => {
  it('lists the packages with a newer security version, from the SBOM of each running image', async () => {
    const checks = await checkArchive(
      REPORT,
      archive({
        libc6: { version: '2.36-9+deb12u1', suite: 'testing-security' },
        tzdata: { version: '2025a-1', suite: 'testing-updates' },
      }),
    );
    const report = auditReport(REPORT, checks);
    const [d1, d2] = report.services[0]!.images;
    expect(d1!.securityUpdates).toEqual({
      status: 'checked',
      packages: [
        { name: 'libc6', installed: '2.36-9', available: '2.36-9+deb12u1', suite: 'testing-security' },
      ],
    });
    expect(d1!.sbom).toEqual({ ...REPORT.services[0]!.images[0]!.sbom, packages: undefined });
    expect(d1!.sbom).not.toHaveProperty('packages');
    expect(d2!.securityUpdates).toEqual({
      status: 'unknown',
      reason: 'the image has no SBOM to read its packages from',
    });
    const text = auditText(report);
    expect(text).toContain('    security:  1 package has a newer security version');
    expect(text).toContain('               libc6 2.36-9 → 2.36-9+deb12u1 (testing-security)');
    expect(text).toContain('    signer:    NONE: the image has no signature');
    expect(text).toContain('    web-r1-x r1 stopped at 2026-01-01 10:00:00Z: ExecDetected: alice ran sh');
  });

  it('reports the archive column as unknown with the reason when the archive cannot be read', async () => {
    const checks = await checkArchive(REPORT, archive(new UnavailableError('cannot reach 127.0.0.1:9')));
    const report = auditReport(REPORT, checks);
    expect(report.services[0]!.images[0]!.securityUpdates).toEqual({
      status: 'unknown',
      reason: 'reading the testing archive failed: cannot reach 127.0.0.1:9',
    });
    expect(report.services[0]!.images[0]!.signer?.trusted).toBe(true);
    const noConfig = await checkArchive(REPORT, new Error('no kiln.config.ts here'));
    expect(noConfig.get(D1)).toEqual({
      status: 'unknown',
      reason: 'no archive to compare with: no kiln.config.ts here',
    });
  });

  it('prints the plane report with the archive column, outside a project too', async () => {
    server.plane.reportValue = REPORT;
    const out = await kiln('audit', '--json', ...server.conn);
    expect(out.code).toBe(0);
    const json = JSON.parse(out.stdout) as {
      services: { images: { securityUpdates: { status: string } }[] }[];
    };
    expect(json.services[0]!.images.map((i) => i.securityUpdates.status)).toEqual(['unknown', 'unknown']);
  });
});
