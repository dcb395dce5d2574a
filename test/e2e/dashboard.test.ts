import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConnection } from '../../src/api/index.js';
import { openState } from '../../src/state/index.js';
import { SERVICE, useFleet, waitFor, type FleetProject } from '../support/fleet.js';
import { startLoad } from '../support/loadgen.js';

const { fleet } = useFleet();
const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
/** With KILN_SCREENSHOTS=1 (npm run screenshots) the page shots land in docs/screenshots/. */
const SHOTS =
  process.env.KILN_SCREENSHOTS === '1'
    ? path.resolve(import.meta.dirname, '../../docs/screenshots')
    : undefined;

let browser: Browser;
let shots: string;
beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  shots = SHOTS ?? (await mkdtemp(path.join(tmpdir(), 'kiln-shots-')));
  await mkdir(shots, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  if (!SHOTS && shots) await rm(shots, { recursive: true, force: true });
});

/** A control plane with r1 of the web service serving, its URL, and an admin and a read-only token. */
async function serving(f: FleetProject): Promise<{ url: string; admin: string; viewer: string }> {
  await f.startServer();
  const first = await f.kiln(['deploy', SERVICE, '--no-bake', '--wait']);
  expect(first.code, first.stdout + first.stderr).toBe(0);
  const { url, token } = await readConnection(f.project.home, {});
  const store = openState(path.join(f.project.home, 'state.db'));
  try {
    return { url, admin: token, viewer: store.tokens.create('viewer', ['read']).secret };
  } finally {
    store.close();
  }
}

async function login(url: string, token: string, width = 1280): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${url}/ui/login`);
  await page.fill('#login input[name=token]', token);
  await Promise.all([page.waitForURL(`${url}/ui/`), page.click('#login button[type=submit]')]);
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

describe.sequential('the dashboard, in Chromium', () => {
  it('shows a rollout started from the CLI live, and rolls back on a click', async () => {
    // Given r1 serving and the service's page open
    const f = await fleet({ replicas: 2 });
    const { url, admin } = await serving(f);
    const page = await login(url, admin);
    await expect
      .poll(() => page.textContent(`#services tr[data-service="${SERVICE}"] .release`))
      .toMatch(/r1/);
    await page.goto(`${url}/ui/services/${SERVICE}`);
    await expect.poll(() => page.locator('#releases tr[data-release="r1"]').count()).toBe(1);

    // When r2 is deployed from the CLI
    await f.declare({ replicas: 2, gen: 2 });
    const deploy = f.spawnKiln(['deploy', SERVICE, '--no-bake', '--wait']);

    // Then the page shows it without a reload: the new release, then its rollout done
    await page.locator('#releases tr[data-release="r2"]').waitFor({ timeout: 30_000 });
    await expect.poll(() => page.textContent('#rollout .phase'), { timeout: 30_000 }).toBe('succeeded');
    expect(await deploy.exited).toBe(0);
    await expect
      .poll(
        async () => (await page.locator('#instances tr[data-instance] .state').allTextContents()).join(','),
        {
          timeout: 30_000,
        },
      )
      .toBe('healthy,healthy');

    // When rollback is clicked
    await page.click('button[data-action="rollback"]');

    // Then the control plane rolls back to r1, and the page says so
    const api = await f.api();
    await waitFor(
      'r1 to be current again',
      async () => ((await api.releases(SERVICE)).find((r) => r.current)?.name === 'r1' ? true : undefined),
      { timeoutMs: 30_000, everyMs: 100 },
    );
    const last = (await api.status(SERVICE))[0]!.rollout!;
    expect(last).toMatchObject({ from: 'r2', to: 'r1' });
    await expect.poll(() => page.textContent('#rollout'), { timeout: 30_000 }).toContain('r1');
    const audit = await api.events(0, SERVICE, 1000);
    expect(audit.some((e) => e.kind === 'rollout.started' && e.message.includes('rollback'))).toBe(true);
  }, 180_000);

  it('shows no action to a read-only token, and refuses its requests', async () => {
    const f = await fleet({ replicas: 1 });
    const { url, viewer } = await serving(f);
    const page = await login(url, viewer);
    await page.goto(`${url}/ui/services/${SERVICE}`);
    await page.locator('#rollout').waitFor();
    expect(await page.locator('[data-action]').count()).toBe(0);
    expect(await page.locator('form#deploy').count()).toBe(0);
    await expect.poll(() => page.textContent('#whoami')).toContain('viewer');
    // The same request the rollback button would send, sent by hand, is refused.
    const status = await page.evaluate(async (u) => {
      const r = await fetch(u, { method: 'POST', headers: { 'HX-Request': 'true' } });
      return r.status;
    }, `${url}/ui/services/${SERVICE}/rollback`);
    expect(status).toBe(403);
    const api = await f.api();
    expect((await api.releases(SERVICE)).map((r) => r.name)).toEqual(['r1']);
    // Without a session there is only the login page.
    const anonymous = await (await browser.newContext()).newPage();
    await anonymous.goto(`${url}/ui/`);
    expect(anonymous.url()).toBe(`${url}/ui/login`);
  }, 120_000);

  it('renders every page, at laptop and phone widths', async () => {
    // Given a fleet with some history: a canary judged, a chaos run
    const f = await fleet({ replicas: 2, cgi: true });
    const { url, admin } = await serving(f);
    const load = await startLoad({ url: f.url, rate: 200 });
    try {
      await f.declare({
        replicas: 2,
        gen: 2,
        cgi: true,
        canary: {
          steps: [{ weight: 25, analyse: '6s' }, { weight: 100 }],
          analysis: { interval: '2s', minSamples: 50 },
        },
      });
      const canary = await f.kiln(['deploy', SERVICE, '--no-bake', '--wait']);
      expect(canary.code, canary.stdout + canary.stderr).toBe(0);
      const chaos = await f.kiln(['chaos', 'run', SERVICE, '--kills', '3', '--interval', '1s', '--wait']);
      expect(chaos.code, chaos.stdout + chaos.stderr).toBe(0);
    } finally {
      await load.stop();
    }
    for (const [width, suffix] of [
      [1280, ''],
      [390, '-phone'],
    ] as const) {
      const page = await login(url, admin, width);
      await page.locator('#services').waitFor();
      await shot(page, `overview${suffix}`);
      await page.goto(`${url}/ui/services/${SERVICE}`);
      await page.locator('#score-chart canvas').waitFor({ timeout: 10_000 });
      expect(await page.locator('#verdicts tr[data-metric]').count()).toBeGreaterThanOrEqual(2);
      await shot(page, `service${suffix}`);
      await page.goto(`${url}/ui/images`);
      await page.locator('#images tr[data-image]').first().waitFor();
      await shot(page, `images${suffix}`);
      await page.goto(`${url}/ui/chaos`);
      expect(await page.locator('#terminations tr').count()).toBeGreaterThanOrEqual(3);
      await page.locator('#mttr-chart canvas').waitFor({ timeout: 10_000 });
      await shot(page, `chaos${suffix}`);
      await page.goto(`${url}/ui/audit`);
      await page.locator('#audit tr[data-seq]').first().waitFor();
      await shot(page, `audit${suffix}`);
      // Nothing scrolls the whole page sideways: wide tables scroll in their own box.
      // Run in the page; written as a string so the test's own TypeScript needs no DOM types.
      const overflow = await page.evaluate<number>(
        'document.documentElement.scrollWidth - window.innerWidth',
      );
      expect(overflow).toBeLessThanOrEqual(1);
      await page.context().close();
    }
    const anonymous = await (await browser.newContext({ viewport: { width: 1280, height: 700 } })).newPage();
    await anonymous.goto(`${url}/ui/login`);
    await shot(anonymous, 'login');
  }, 240_000);
});
