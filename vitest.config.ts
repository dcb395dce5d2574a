import { defineConfig } from 'vitest/config';

/**
 * The tests that put a fleet under load and judge what its clients saw (failed requests, a canary's
 * latency). They run one at a time, after everything else, so no other test's bakes and loads take
 * the 2 cores from under them: on a machine shared with them, a judge sees the neighbours' load.
 */
const UNDER_LOAD = [
  'test/e2e/dashboard.test.ts',
  'test/e2e/fleet-canary.test.ts',
  'test/e2e/fleet-chaos.test.ts',
  'test/e2e/fleet-crash.test.ts',
  'test/e2e/fleet-load.test.ts',
  'test/e2e/fleet-rings.test.ts',
  'test/e2e/fleet-scale.test.ts',
  'test/e2e/fleet-stateful.test.ts',
  'test/e2e/fleet-swarm.test.ts',
  'test/e2e/regions.test.ts',
];

export default defineConfig({
  test: {
    setupFiles: ['./test/support/loopback-only.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: UNDER_LOAD,
          // Two cores: test files two at a time, never more, so heavy bakes do not starve each other.
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'under-load',
          include: UNDER_LOAD,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
