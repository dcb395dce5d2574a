/**
 * Simulated canary analyses with a seeded random number generator: the evidence behind the judge's
 * documented error rates. A/A runs (canary = baseline) measure how often a good canary fails; runs
 * with a real regression measure how often it is caught. Used by the tests and bench/analysis.js;
 * the judge itself never draws a random number.
 */
import { ValidationError } from '../errors/index.js';
import type { Decision, JudgeConfig } from './judge.js';
import { judge } from './judge.js';
import { mergeTallies, tally, tallyOf, type Tally } from './tally.js';

/** A source of uniform numbers in [0, 1). */
export type Rng = () => number;

/**
 * mulberry32, a 32-bit generator by Tommy Ettinger: tiny, fast and good enough for simulations
 * (it passes gjrand's and PractRand's quick tests). The same seed gives the same sequence on
 * every machine, so simulation results are reproducible to the last digit.
 */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal deviate by the Box-Muller transform (one of the pair; simple over fast). */
export function normalDeviate(rng: Rng): number {
  const u = 1 - rng(); // (0, 1]: log(0) never happens
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** How one side's samples of a metric are drawn. */
export type MetricModel =
  | { readonly kind: 'lognormal'; readonly median: number; readonly sigma: number }
  | { readonly kind: 'bernoulli'; readonly rate: number };

/** `n` samples of a model as a tally: lognormal values, or 0/1 with P(1) = rate. */
export function sampleTally(model: MetricModel, n: number, rng: Rng): Tally {
  if (model.kind === 'bernoulli') {
    let ones = 0;
    for (let i = 0; i < n; i++) if (rng() < model.rate) ones++;
    return tallyOf([
      [0, n - ones],
      [1, ones],
    ]);
  }
  const values = new Array<number>(n);
  for (let i = 0; i < n; i++) values[i] = model.median * Math.exp(model.sigma * normalDeviate(rng));
  return tally(values);
}

/** One simulated analysis: the metrics' models per side and the samples per side by the final look. */
export interface Scenario {
  /** Samples per side by the final look; the looks see equal shares of it, cumulatively. */
  readonly perSide: number;
  readonly baseline: Readonly<Record<string, MetricModel>>;
  readonly canary: Readonly<Record<string, MetricModel>>;
}

/** How one simulated analysis went. */
export interface SimulatedAnalysis {
  /** The decision at each look taken, in order; the analysis stops at the first fail or pass. */
  readonly decisions: readonly Decision[];
  /** The look (1-based) that failed, if any. */
  readonly failedAt: number | undefined;
}

/**
 * Runs one analysis: at look k each side has seen round(perSide·k/K) samples of every metric
 * (new samples merged into the cumulative tallies), the judge decides, and the analysis stops at
 * the first 'fail' (or at 'pass').
 */
export function simulateAnalysis(config: JudgeConfig, scenario: Scenario, rng: Rng): SimulatedAnalysis {
  const sides = { baseline: new Map<string, Tally>(), canary: new Map<string, Tally>() };
  const decisions: Decision[] = [];
  let seen = 0;
  for (let look = 1; look <= config.looks; look++) {
    const target = Math.round((scenario.perSide * look) / config.looks);
    const batch = target - seen;
    seen = target;
    for (const m of config.metrics) {
      for (const side of ['baseline', 'canary'] as const) {
        const model = scenario[side][m.name];
        if (model === undefined) throw missingModel(side, m.name);
        const grown = mergeTallies(sides[side].get(m.name) ?? tallyOf([]), sampleTally(model, batch, rng));
        sides[side].set(m.name, grown);
      }
    }
    const samples = config.metrics.map((m) => ({
      name: m.name,
      baseline: sides.baseline.get(m.name)!,
      canary: sides.canary.get(m.name)!,
    }));
    const result = judge(config, samples, look);
    decisions.push(result.decision);
    if (result.decision === 'fail') return { decisions, failedAt: look };
    if (result.decision === 'pass') break;
  }
  return { decisions, failedAt: undefined };
}

/** The outcome of many simulated analyses of one scenario. */
export interface SimulationSummary {
  readonly runs: number;
  readonly perSide: number;
  readonly looks: number;
  /** Analyses that failed at some look. */
  readonly failed: number;
  readonly failureRate: number;
  /** Analyses that passed at the final look. */
  readonly passed: number;
  /** failedAtLook[k − 1]: analyses that failed at look k. */
  readonly failedAtLook: readonly number[];
}

/** Runs `runs` analyses of a scenario from one seed. */
export function simulateAnalyses(
  config: JudgeConfig,
  scenario: Scenario,
  runs: number,
  seed: number,
): SimulationSummary {
  const rng = mulberry32(seed);
  const failedAtLook = new Array<number>(config.looks).fill(0);
  let failed = 0;
  let passed = 0;
  for (let r = 0; r < runs; r++) {
    const a = simulateAnalysis(config, scenario, rng);
    if (a.failedAt !== undefined) {
      failed++;
      failedAtLook[a.failedAt - 1]!++;
    } else if (a.decisions[a.decisions.length - 1] === 'pass') passed++;
  }
  return {
    runs,
    perSide: scenario.perSide,
    looks: config.looks,
    failed,
    failureRate: failed / runs,
    passed,
    failedAtLook,
  };
}

/**
 * The configuration docs/analysis.md documents and the simulations check: latency (continuous, a
 * rise beyond 10% is bad) and the 5xx rate (proportion, critical, a rise beyond 0.5 points is
 * bad), one group each of equal weight, pass 95 / marginal 75, α = 0.05 over 4 looks, at least 50
 * samples per side.
 */
export function referenceConfig(overrides: Partial<JudgeConfig> = {}): JudgeConfig {
  return {
    metrics: [
      {
        name: 'latency',
        kind: 'continuous',
        direction: 'increase',
        tolerance: 0.1,
        critical: false,
        group: 'latency',
      },
      {
        name: 'errors',
        kind: 'proportion',
        direction: 'increase',
        tolerance: 0.005,
        critical: true,
        group: 'errors',
      },
    ],
    groups: { latency: 1, errors: 1 },
    thresholds: { pass: 95, marginal: 75 },
    alpha: 0.05,
    looks: 4,
    minSamples: 50,
    ...overrides,
  };
}

/** The documented latency model: lognormal, median 100 ms, σ of the log 0.6 (p99 ≈ 4× the median). */
export const REFERENCE_LATENCY = { median: 100, sigma: 0.6 } as const;

/**
 * A scenario for {@link referenceConfig}: baseline latency {@link REFERENCE_LATENCY} and a 0.1%
 * error rate; the canary's latency multiplied by 1 + latencyRise and its error rate canaryErrorRate.
 */
export function referenceScenario(options: {
  readonly perSide: number;
  readonly latencyRise?: number;
  readonly baselineErrorRate?: number;
  readonly canaryErrorRate?: number;
}): Scenario {
  const { perSide, latencyRise = 0, baselineErrorRate = 0.001 } = options;
  const canaryErrorRate = options.canaryErrorRate ?? baselineErrorRate;
  const { median, sigma } = REFERENCE_LATENCY;
  return {
    perSide,
    baseline: {
      latency: { kind: 'lognormal', median, sigma },
      errors: { kind: 'bernoulli', rate: baselineErrorRate },
    },
    canary: {
      latency: { kind: 'lognormal', median: median * (1 + latencyRise), sigma },
      errors: { kind: 'bernoulli', rate: canaryErrorRate },
    },
  };
}

function missingModel(side: string, name: string): ValidationError {
  return new ValidationError(undefined, [
    {
      path: `${side}.${name}`,
      message: `the scenario has no ${side} model for metric '${name}'`,
      fix: 'add one',
    },
  ]);
}
