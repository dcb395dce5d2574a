import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    setupFiles: ['./test/support/loopback-only.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Two cores: run test files two at a time, never more, so heavy bakes do not starve each other.
    maxWorkers: 2,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
