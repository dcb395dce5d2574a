/**
 * The judge's documented error rates, by simulation with a seeded generator (docs/analysis.md,
 * "What the simulations show"). Each analysis has 4 looks at 200, 400, 600 and 800 samples per
 * side of two metrics (lognormal latency, median 100 ms, σ 0.6; 0/1 error samples), judged with
 * `referenceConfig()`; an analysis "fails" when any look decides 'fail'. Nothing here is fixed in
 * advance: a judge that spent alpha wrongly or lost power would fail these tests.
 */
import { describe, expect, it } from 'vitest';
import { referenceConfig, referenceScenario, simulateAnalyses } from './simulate.js';

/** The documented sample size: per side, by the final look. */
const PER_SIDE = 800;
const RUNS = 1000;

describe('simulated canary analyses (1,000 each, 4 looks, 800 samples per side)', () => {
  const config = referenceConfig();

  it('fails at most 5% of A/A analyses (canary = baseline)', () => {
    const s = simulateAnalyses(config, referenceScenario({ perSide: PER_SIDE }), RUNS, 1);
    expect(s.runs).toBe(RUNS);
    expect(s.failed + s.passed).toBe(RUNS); // every analysis reached a decision
    expect(s.failureRate).toBeLessThanOrEqual(0.05);
  });

  it('fails at most 5% of A/A analyses on the statistics alone (no tolerance band)', () => {
    const strict = referenceConfig({ metrics: config.metrics.map((m) => ({ ...m, tolerance: 0 })) });
    const s = simulateAnalyses(strict, referenceScenario({ perSide: PER_SIDE }), RUNS, 2);
    expect(s.failureRate).toBeLessThanOrEqual(0.05);
    // The bound is not met by never failing: without the band, chance differences do fail.
    expect(s.failed).toBeGreaterThan(0);
  });

  it('catches a 20% rise in latency in at least 95% of analyses', () => {
    const s = simulateAnalyses(config, referenceScenario({ perSide: PER_SIDE, latencyRise: 0.2 }), RUNS, 3);
    expect(s.failureRate).toBeGreaterThanOrEqual(0.95);
  });

  it('catches a rise of the 5xx rate from 0.1% to 2% in at least 95% of analyses', () => {
    const s = simulateAnalyses(
      config,
      referenceScenario({ perSide: PER_SIDE, canaryErrorRate: 0.02 }),
      RUNS,
      4,
    );
    expect(s.failureRate).toBeGreaterThanOrEqual(0.95);
  });
});
