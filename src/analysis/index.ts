/**
 * The analysis context: the canary judge and the statistics under it, as pure functions (no I/O,
 * no clock, no randomness outside the seeded simulations). See docs/analysis.md.
 */
export {
  EMPTY_TALLY,
  mapTally,
  mergeTallies,
  orderStatistic,
  tally,
  tallyMean,
  tallyOf,
  tallyQuantile,
  tallySize,
  type Tally,
} from './tally.js';
export { normalCdf, normalQuantile } from './normal.js';
export { wilcoxonCdf, wilcoxonQuantile } from './wilcoxon-exact.js';
export {
  EXACT_LIMIT,
  mannWhitney,
  pooledRanks,
  type Alternative,
  type MannWhitneyResult,
  type PooledRanks,
} from './mann-whitney.js';
export { hodgesLehmann, type ShiftEstimate } from './hodges-lehmann.js';
export { lookAlpha, spentAlpha } from './spending.js';
export {
  detectableChange,
  logSpread,
  powerAt,
  requiredSamples,
  superiority,
  type Baseline,
  type Change,
  type PowerTarget,
} from './power.js';
export { groupWeight } from './judge-config.js';
export {
  judge,
  SHIFT_CONFIDENCE,
  validateJudgeConfig,
  WARNING_POWER,
  type Classification,
  type Decision,
  type Direction,
  type JudgeConfig,
  type LookResult,
  type MetricConfig,
  type MetricSamples,
  type MetricVerdict,
  type SideSummary,
} from './judge.js';
export {
  mulberry32,
  normalDeviate,
  REFERENCE_LATENCY,
  referenceConfig,
  referenceScenario,
  sampleTally,
  simulateAnalyses,
  simulateAnalysis,
  type MetricModel,
  type Rng,
  type Scenario,
  type SimulatedAnalysis,
  type SimulationSummary,
} from './simulate.js';
