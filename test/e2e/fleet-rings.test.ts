import { describe, expect, it } from 'vitest';
import type { ReleaseJson, RingJson } from '../../src/api/index.js';
import { freePort, useFleet, WEB_IMAGE_YAML, waitFor } from '../support/fleet.js';
import { describeLoad, startLoad, type LoadSummary } from '../support/loadgen.js';

const { fleet } = useFleet();
const RATE = 150;
const APPS = ['app1', 'app2', 'app3'] as const;

/**
 * A base image (`BASE_GEN` in its env) and three apps built on it, served by services at tiers 1, 2
 * and 3. app2 fails 5 % of requests when it runs on base generation 2: a base that breaks one service.
 */
function ringConfig(baseGen: number, ports: readonly number[]): string {
  const base =
    WEB_IMAGE_YAML.replace('- name: web', '- name: base') + `    env: { BASE_GEN: "${baseGen}" }\n`;
  const apps = APPS.map((a) => `  - name: ${a}\n    from: base\n    env: { APP: ${a} }\n`).join('');
  const canary = JSON.stringify({
    type: 'canary',
    steps: [{ weight: 25, analyse: '10s' }, { weight: 100 }],
    analysis: { interval: '5s', minSamples: 150 },
  });
  const services = APPS.map((a, i) =>
    [
      `  - name: ${a}`,
      `    image: ${a}`,
      `    replicas: 2`,
      `    port: ${ports[i]}`,
      `    tier: ${i + 1}`,
      `    health: { http: /health.html, interval: 200ms, timeout: 1s }`,
      `    env: ${JSON.stringify({ CGI: '1', GEN: '1', ...(a === 'app2' ? { FAIL_ON_BASE: '2' } : {}) })}`,
      `    strategy: ${canary}`,
      '',
    ].join('\n'),
  ).join('');
  return `${base}${apps}services:\n${services}`;
}

describe.sequential('base-image promotion rings', () => {
  it('releases a new base tier by tier, each by canary, and stops at the tier whose canary fails', async () => {
    // Given three services on base generation 1, serving under load
    const f = await fleet({ replicas: 1 }, { bake: false });
    const ports = [await freePort(), await freePort(), await freePort()];
    await f.write(ringConfig(1, ports));
    await f.project.bake();
    await f.startServer();
    for (const app of APPS) {
      const r = await f.kiln(['deploy', app, '--no-bake', '--wait', '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    const urls = ports.map((p) => `http://127.0.0.1:${p}/`);
    for (const url of urls) {
      await waitFor(
        `${url} to answer`,
        async () => ((await fetch(url).catch(() => undefined))?.ok ? true : undefined),
        {
          timeoutMs: 10_000,
          everyMs: 50,
        },
      );
    }
    const loads = await Promise.all(urls.map((url) => startLoad({ url, rate: RATE, bodies: true })));

    // When base generation 2 is baked and released
    await f.write(ringConfig(2, ports));
    const released = await f.kiln(['release', 'base', 'base', '--wait', '--json']);
    const summaries: LoadSummary[] = [];
    for (const load of loads) summaries.push(await load.stop());
    summaries.forEach((s, i) => console.log(`${APPS[i]} under the ring: ${describeLoad(s)}`));

    // Then the ring stopped at tier 2 and says why
    expect(released.code, released.stdout + released.stderr).toBe(1);
    const ring = JSON.parse(released.stdout) as RingJson;
    expect(ring.phase).toBe('failed');
    expect(ring.message).toMatch(/stopped at wave 2 of 3 \(tier 2\): app2: canary analysis failed/);
    expect(
      ring.waves.map((w) => [w.tier, w.phase, w.services.map((s) => `${s.service} ${s.outcome}`)]),
    ).toEqual([
      [1, 'succeeded', ['app1 succeeded']],
      [2, 'rolled-back', ['app2 failed']],
      [3, 'pending', ['app3 skipped']],
    ]);
    const status = await f.kiln(['rings', 'status']);
    expect(status.stdout).toContain(`${ring.id}: base base`);
    expect(status.stdout).toMatch(/wave 3, tier 3: pending\n\s+app3: skipped/);

    // And tier 1 runs the new base, tier 2 is back on the old one, tier 3 was never touched
    const api = await f.api();
    const current = async (app: string) =>
      (await api.releases(app)).find((r: ReleaseJson) => r.current)!.name;
    expect(await current('app1')).toBe('r2');
    expect(await current('app2')).toBe('r1');
    expect((await api.releases('app3')).map((r) => r.name)).toEqual(['r1']);
    await waitFor(
      'app2 to run only r1',
      async () => {
        const live = (await api.instances('app2')).filter((i) => i.state !== 'stopped');
        return live.length === 2 && live.every((i) => i.release === 'r1') ? true : undefined;
      },
      { timeoutMs: 20_000, everyMs: 100 },
    );

    // And only app2's canary failed requests, within its share
    expect(summaries[0]!.failed).toBe(0);
    expect(summaries[2]!.failed).toBe(0);
    expect(Object.keys(summaries[1]!.failures)).toEqual(['status 500']);
    const r2 = Object.entries(summaries[1]!.bodies ?? {})
      .filter(([body]) => body.startsWith('r2 '))
      .reduce((n, [, k]) => n + k, 0);
    expect(r2 / summaries[1]!.sent).toBeLessThanOrEqual(0.25);
  }, 300_000);
});
