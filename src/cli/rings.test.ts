import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RingJson } from '../api/index.js';
import { ValidationError } from '../errors/index.js';
import { validateStack, type LoadedConfig } from '../spec/index.js';
import { ExitCode } from './exit.js';
import { imagesOnBase, ringText } from './rings.js';
import { fakeServer, kiln, type FakeServer } from './testkit.js';

let server: FakeServer;
beforeEach(async () => {
  server = await fakeServer();
});
afterEach(async () => {
  await server?.close();
});

const BASE = `sha256:${'a'.repeat(64)}`;
const AT = '2026-01-01T00:00:00.000Z';

/** A ring of base "debian-base" through three tiers: the first done, the second rolling out. */
const RUNNING: RingJson = {
  id: 'ring-2',
  base: 'debian-base',
  baseDigest: BASE,
  phase: 'running',
  message: 'wave 2 of 3 (tier 2) is rolling out',
  createdBy: 'alice',
  createdAt: AT,
  updatedAt: AT,
  waves: [
    {
      tier: 1,
      phase: 'succeeded',
      services: [
        {
          service: 'web',
          image: 'app',
          digest: BASE,
          rollout: 'rollout-5',
          outcome: 'succeeded',
          message: 'canary passed every step',
        },
        { service: 'docs', image: 'app', digest: BASE, outcome: 'unchanged' },
      ],
    },
    {
      tier: 2,
      phase: 'running',
      services: [{ service: 'api', image: 'app', digest: BASE, rollout: 'rollout-6' }],
    },
    { tier: 3, phase: 'pending', services: [{ service: 'batch', image: 'app', digest: BASE }] },
  ],
};

const FAILED: RingJson = {
  ...RUNNING,
  id: 'ring-1',
  phase: 'failed',
  message: 'wave 1 (tier 1) failed: web was rolled back',
  waves: [
    {
      tier: 1,
      phase: 'rolled-back',
      services: [{ service: 'web', image: 'app', digest: BASE, outcome: 'reverted', message: 'errors HIGH' }],
    },
  ],
};

const RUNNING_TEXT = [
  'ring-2: base debian-base (sha256:aaaaaaaaaaaa) running, by alice at 2026-01-01T00:00:00.000Z',
  '  wave 2 of 3 (tier 2) is rolling out',
  '  wave 1, tier 1: succeeded',
  '    web: succeeded (rollout rollout-5): canary passed every step',
  '    docs: unchanged',
  '  wave 2, tier 2: running',
  '    api: rolling out (rollout rollout-6)',
  '  wave 3, tier 3: pending',
  '    batch: waiting',
  '',
].join('\n');

describe('kiln rings status', () => {
  it('prints each ring newest first, wave by wave, asking for 5 by default', async () => {
    server.plane.ringLog.push(RUNNING, FAILED);
    const { code, stdout } = await kiln('rings', 'status', ...server.conn);
    expect(code).toBe(0);
    expect(stdout).toBe(
      RUNNING_TEXT +
        '\n' +
        [
          'ring-1: base debian-base (sha256:aaaaaaaaaaaa) failed, by alice at 2026-01-01T00:00:00.000Z',
          '  wave 1 (tier 1) failed: web was rolled back',
          '  wave 1, tier 1: rolled-back',
          '    web: reverted: errors HIGH',
          '',
        ].join('\n'),
    );
    expect(server.plane.calls).toEqual([{ method: 'rings', args: [5] }]);
  });

  it('prints RingJson[] with --json, as many as --limit asks', async () => {
    server.plane.ringLog.push(RUNNING, FAILED);
    const { code, stdout } = await kiln('rings', 'status', '--limit', '1', '--json', ...server.conn);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual([RUNNING]);
    expect(server.plane.calls).toEqual([{ method: 'rings', args: [1] }]);
  });

  it('says so when there is no ring yet', async () => {
    expect((await kiln('rings', 'status', ...server.conn)).stdout).toBe(
      'no base image has been released by ring yet\n',
    );
  });

  it.each(['0', '1000', '2.5', 'many'])('refuses --limit %s before asking the server', async (limit) => {
    const { code, error } = await kiln('rings', 'status', '--limit', limit, ...server.conn);
    expect(code).toBe(ExitCode.Usage);
    expect(error).toBe(
      `kiln: input: invalid\n  [--limit] ${limit} is not a count (fix: give a whole number from 1 to 999)`,
    );
    expect(server.plane.calls).toEqual([]);
  });
});

describe('ringText', () => {
  it('shows a ring wave by wave', () => {
    expect(ringText(RUNNING)).toBe(RUNNING_TEXT);
  });
});

describe('imagesOnBase', () => {
  /** app is built on mid, mid on base (declared after app), tool on debian directly. */
  const config: LoadedConfig = {
    file: '/project/kiln.yaml',
    dir: '/project',
    stack: validateStack(
      {
        images: [
          { name: 'app', from: 'mid' },
          { name: 'base', from: 'debian:bookworm' },
          { name: 'tool', from: 'debian:bookworm' },
          { name: 'mid', from: 'base' },
          { name: 'side', from: 'base' },
        ],
      },
      '/project/kiln.yaml',
    ),
  };

  it.each([
    ['base', ['app', 'base', 'mid', 'side']],
    ['mid', ['app', 'mid']],
    ['app', ['app']],
    ['tool', ['tool']],
  ])('finds every image built on %s, directly or not', (base, images) => {
    expect(imagesOnBase(config, base).sort()).toEqual(images);
  });

  it('throws a ValidationError naming the declared images for an unknown base', () => {
    let err: unknown;
    try {
      imagesOnBase(config, 'debian:bookworm');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).file).toBe('/project/kiln.yaml');
    expect((err as ValidationError).issues).toEqual([
      {
        path: 'images',
        message: 'no image "debian:bookworm" is declared',
        fix: 'name one of: app, base, tool, mid, side',
      },
    ]);
  });
});
