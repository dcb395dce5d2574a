import { describe, expect, it } from 'vitest';
import type { ChaosReportJson } from '../../src/api/index.js';
import { SERVICE, useFleet, waitFor } from '../support/fleet.js';
import { describeLoad, startLoad } from '../support/loadgen.js';

const { fleet } = useFleet();
const RATE = 500;
const KILLS = 30;

describe.sequential('the chaos monkey', () => {
  it(`keeps a 4-instance service available through ${KILLS} kills, one every 2 s, at ${RATE} req/s`, async () => {
    // Given four instances serving under load
    const f = await fleet({ replicas: 4 });
    await f.startServer();
    const first = await f.kiln(['deploy', SERVICE, '--no-bake', '--wait', '--json']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    await waitFor(
      `${f.url} to answer`,
      async () => ((await fetch(f.url).catch(() => undefined))?.ok ? true : undefined),
      {
        timeoutMs: 10_000,
        everyMs: 50,
      },
    );
    const load = await startLoad({ url: f.url, rate: RATE });

    // When the monkey kills one instance every 2 s for a minute
    const r = await f.kiln([
      'chaos',
      'run',
      SERVICE,
      '--kills',
      String(KILLS),
      '--interval',
      '2s',
      '--wait',
      '--json',
    ]);
    const summary = await load.stop();
    console.log(`load through ${KILLS} kills: ${describeLoad(summary)}`);

    // Then every victim was replaced, fast, and clients barely noticed
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as ChaosReportJson;
    console.log(
      `chaos report: MTTR median ${report.mttrMs.median} ms, p99 ${report.mttrMs.p99} ms; detected median ${report.detectMs.median} ms; ` +
        `availability ${report.availability} (${report.failed} of ${report.requests} failed)`,
    );
    expect(report.kills).toBe(KILLS);
    expect(report.recovered).toBe(KILLS);
    expect(report.mttrMs.median!).toBeLessThan(1000);
    expect(report.availability!).toBeGreaterThanOrEqual(0.999);
    const victims = report.terminations.map((t) => t.instance);
    expect(new Set(victims).size).toBe(KILLS);
    const replacements = report.terminations.map((t) => t.replacement);
    expect(new Set(replacements).size).toBe(KILLS);
    for (const t of report.terminations) {
      expect(t.outcome).toBe('terminated');
      expect(t.detectionMs!).toBeLessThanOrEqual(t.recoveryMs!);
    }

    // And the report agrees with what the load generator saw
    expect(summary.ok / summary.sent).toBeGreaterThanOrEqual(0.999);
    expect(report.failed).toBe(summary.failed);
    expect(report.requests).toBeLessThanOrEqual(summary.sent);
    expect(report.requests).toBeGreaterThanOrEqual(Math.floor(RATE * (KILLS - 1) * 2 * 0.9));

    // And four healthy instances serve again, none of them a victim
    const api = await f.api();
    await waitFor(
      'four healthy instances',
      async () => {
        const live = (await api.instances(SERVICE)).filter((i) => i.state === 'healthy');
        return live.length === 4 && live.every((i) => !victims.includes(i.id)) ? true : undefined;
      },
      { timeoutMs: 10_000, everyMs: 100 },
    );
  }, 180_000);

  it('refuses the modes this runtime cannot carry out, saying why', async () => {
    const f = await fleet({ replicas: 1 });
    await f.startServer();
    expect((await f.kiln(['deploy', SERVICE, '--no-bake', '--wait'])).code).toBe(0);
    const r = await f.kiln(['chaos', 'run', SERVICE, '--mode', 'partition']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/mode partition is not available: instances share the host network/);
    const dry = await f.kiln(['chaos', 'run', SERVICE, '--dry-run', '--wait', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const report = JSON.parse(dry.stdout) as ChaosReportJson;
    // One instance and at least one to keep: nothing may go, and nothing did.
    expect(report.terminations.map((t) => t.outcome)).toEqual(['skipped']);
    expect(report.kills).toBe(0);
  }, 120_000);
});
