#!/usr/bin/env node
// The canary judge's benchmark: simulated analyses (false failures of A/A comparisons, power curves
// for latency and 5xx regressions) and the judge's speed on 100k samples per side. Pure computation,
// seeded: the same knobs give the same rates on every machine; only the timings vary.
//
//   npm run build && node bench/analysis.js     # writes bench/results/analysis-<stamp>.json
//   BENCH_ANALYSIS_AA_RUNS=1000 BENCH_ANALYSIS_POWER_RUNS=200 node bench/analysis.js   # a quick run
//
// bench/run.js can import analysisBench() and analysisMarkdown() like the other parts.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  hodgesLehmann,
  judge,
  mannWhitney,
  mergeTallies,
  mulberry32,
  normalDeviate,
  referenceConfig,
  referenceScenario,
  REFERENCE_LATENCY,
  sampleTally,
  simulateAnalyses,
  tally,
  tallyOf,
} from '../dist/analysis/index.js';
import { envInt, load1, machine, median, nowMs, ROOT } from './lib.js';

const list = (name, fallback) =>
  (process.env[name] ?? fallback)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
    .map(Number);

/** The knobs, from the environment. */
export function analysisSettings() {
  return {
    aaRuns: envInt('BENCH_ANALYSIS_AA_RUNS', 10_000),
    aaPerSide: envInt('BENCH_ANALYSIS_PER_SIDE', 800),
    powerRuns: envInt('BENCH_ANALYSIS_POWER_RUNS', 1000),
    sizes: list('BENCH_ANALYSIS_SIZES', '200,400,800,1600'),
    latencyRises: list('BENCH_ANALYSIS_LATENCY_RISES', '0.1,0.2,0.5'),
    errorRates: list('BENCH_ANALYSIS_ERROR_RATES', '0.005,0.01,0.02,0.05'),
    timingPerSide: envInt('BENCH_ANALYSIS_TIMING_N', 100_000),
    timingReps: envInt('BENCH_ANALYSIS_TIMING_REPS', 5),
    seed: envInt('BENCH_ANALYSIS_SEED', 2024),
  };
}

/**
 * A/A analyses judged naively: every look tested at the full per-metric level (α / metrics), as
 * if it were the only one. The same samples as `simulateAnalyses` would draw; shows what alpha
 * spending prevents.
 */
function naiveAnalyses(config, scenario, runs, seed) {
  const rng = mulberry32(seed);
  const single = { ...config, looks: 1 };
  let failed = 0;
  for (let r = 0; r < runs; r++) {
    const sides = { baseline: new Map(), canary: new Map() };
    let seen = 0;
    for (let look = 1; look <= config.looks; look++) {
      const target = Math.round((scenario.perSide * look) / config.looks);
      for (const m of config.metrics) {
        for (const side of ['baseline', 'canary']) {
          const grown = mergeTallies(
            sides[side].get(m.name) ?? tallyOf([]),
            sampleTally(scenario[side][m.name], target - seen, rng),
          );
          sides[side].set(m.name, grown);
        }
      }
      seen = target;
      const samples = config.metrics.map((m) => ({
        name: m.name,
        baseline: sides.baseline.get(m.name),
        canary: sides.canary.get(m.name),
      }));
      if (judge(single, samples, 1).decision === 'fail') {
        failed++;
        break;
      }
    }
  }
  return { runs, failed, failureRate: failed / runs };
}

function timedMs(fn, reps) {
  const samples = [];
  let out;
  for (let i = 0; i < reps; i++) {
    const t0 = nowMs();
    out = fn();
    samples.push(nowMs() - t0);
  }
  return { medianMs: median(samples), samples, out };
}

function timing(n, reps, seed) {
  const rng = mulberry32(seed);
  const draw = (factor) => {
    const values = new Array(n);
    for (let i = 0; i < n; i++) values[i] = 100 * factor * Math.exp(0.6 * normalDeviate(rng));
    return values;
  };
  const rawBaseline = draw(1);
  const rawCanary = draw(1.05);
  const tallyMs = timedMs(() => tally(rawBaseline), reps);
  const baseline = tally(rawBaseline);
  const canary = tally(rawCanary);
  // The same samples as a histogram on the router's kind of buckets (upper bounds, ms).
  const bounds = [
    1,
    2,
    5,
    10,
    20,
    30,
    50,
    75,
    100,
    150,
    200,
    300,
    500,
    750,
    1000,
    2000,
    5000,
    10000,
    Infinity,
  ];
  const bucket = (raw) => {
    const counts = new Map();
    for (const v of raw) {
      const b = bounds.find((u) => v <= u);
      const key = b === Infinity ? 20000 : b;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return tallyOf(counts);
  };
  const errors = (rate) =>
    tallyOf([
      [0, n - Math.round(n * rate)],
      [1, Math.round(n * rate)],
    ]);
  const config = referenceConfig();
  const rawSamples = [
    { name: 'latency', baseline, canary },
    { name: 'errors', baseline: errors(0.001), canary: errors(0.0012) },
  ];
  const histSamples = [
    { name: 'latency', baseline: bucket(rawBaseline), canary: bucket(rawCanary) },
    { name: 'errors', baseline: errors(0.001), canary: errors(0.0012) },
  ];
  const judged = timedMs(() => judge(config, rawSamples, 4), reps);
  return {
    perSide: n,
    reps,
    tallyOf100kRawMs: tallyMs.medianMs,
    mannWhitneyMs: timedMs(() => mannWhitney(canary, baseline, 'greater'), reps).medianMs,
    hodgesLehmannMs: timedMs(() => hodgesLehmann(canary, baseline), reps).medianMs,
    judgeRawMs: judged.medianMs,
    judgeRawSamplesMs: judged.samples,
    judgeHistogramMs: timedMs(() => judge(config, histSamples, 4), reps).medianMs,
    verdict: {
      decision: judged.out.decision,
      latency: judged.out.metrics[0].reason,
      errors: judged.out.metrics[1].reason,
    },
  };
}

/** Runs the analysis benchmark; returns its settings and figures. */
export function analysisBench() {
  const s = analysisSettings();
  const config = referenceConfig();
  const strict = referenceConfig({ metrics: config.metrics.map((m) => ({ ...m, tolerance: 0 })) });
  const t0 = nowMs();
  console.error(`bench: analysis A/A, ${s.aaRuns} analyses of ${s.aaPerSide} samples per side`);
  const aa = {
    perSide: s.aaPerSide,
    reference: simulateAnalyses(config, referenceScenario({ perSide: s.aaPerSide }), s.aaRuns, s.seed),
    noBand: simulateAnalyses(strict, referenceScenario({ perSide: s.aaPerSide }), s.aaRuns, s.seed + 1),
    noBandNoSpending: naiveAnalyses(
      strict,
      referenceScenario({ perSide: s.aaPerSide }),
      s.aaRuns,
      s.seed + 1,
    ),
  };
  console.error(`bench: analysis power, ${s.powerRuns} analyses per cell`);
  const power = { latency: [], errors: [] };
  for (const rise of s.latencyRises) {
    const row = { rise, detected: [] };
    for (const perSide of s.sizes) {
      const r = simulateAnalyses(
        config,
        referenceScenario({ perSide, latencyRise: rise }),
        s.powerRuns,
        s.seed + 10,
      );
      row.detected.push({ perSide, rate: r.failureRate, failedAtLook: r.failedAtLook });
    }
    power.latency.push(row);
  }
  for (const rate of s.errorRates) {
    const row = { rate, detected: [] };
    for (const perSide of s.sizes) {
      const r = simulateAnalyses(
        config,
        referenceScenario({ perSide, canaryErrorRate: rate }),
        s.powerRuns,
        s.seed + 20,
      );
      row.detected.push({ perSide, rate: r.failureRate, failedAtLook: r.failedAtLook });
    }
    power.errors.push(row);
  }
  const simulationSeconds = (nowMs() - t0) / 1000;
  console.error(`bench: analysis timing, ${s.timingPerSide} samples per side`);
  return {
    settings: s,
    config,
    latencyModel: REFERENCE_LATENCY,
    baselineErrorRate: 0.001,
    aa,
    power,
    simulationSeconds,
    timing: timing(s.timingPerSide, s.timingReps, s.seed + 30),
  };
}

const pct = (x) => `${(x * 100).toFixed(1)}%`;

/** The analysis figures as a markdown section. */
export function analysisMarkdown(a) {
  const { aa, power, timing: t, settings: s } = a;
  const sizes = s.sizes.map((n) => `${n.toLocaleString('en-US')} per side`);
  const header = (first) => [
    `| ${first} | ${sizes.join(' | ')} |`,
    `|---|${sizes.map(() => '---|').join('')}`,
  ];
  return [
    '## Canary analysis',
    '',
    `Reference configuration (docs/analysis.md): latency (lognormal, median ${a.latencyModel.median} ms, σ ${a.latencyModel.sigma}, 10% band) and 5xx rate (0/1, baseline ${pct(a.baselineErrorRate)}, 0.5-point band, critical); α = 0.05 over ${a.config.looks} looks; seed ${s.seed}. Simulations took ${a.simulationSeconds.toFixed(1)} s.`,
    '',
    `A/A analyses (canary = baseline), ${aa.reference.runs.toLocaleString('en-US')} each, ${aa.perSide} samples per side by the final look; "failed" = any look decided fail:`,
    '',
    '| judge | failed | by look |',
    '|---|---|---|',
    `| reference (spending, Bonferroni, bands) | ${pct(aa.reference.failureRate)} | ${aa.reference.failedAtLook.join(' / ')} |`,
    `| no tolerance bands | ${pct(aa.noBand.failureRate)} | ${aa.noBand.failedAtLook.join(' / ')} |`,
    `| no bands, no spending (each look at α / metrics) | ${pct(aa.noBandNoSpending.failureRate)} | |`,
    '',
    `Latency regressions caught (${s.powerRuns.toLocaleString('en-US')} analyses per cell):`,
    '',
    ...header('latency rise'),
    ...power.latency.map(
      (r) => `| +${Math.round(r.rise * 100)}% | ${r.detected.map((d) => pct(d.rate)).join(' | ')} |`,
    ),
    '',
    `5xx regressions from ${pct(a.baselineErrorRate)} caught:`,
    '',
    ...header('canary 5xx rate'),
    ...power.errors.map((r) => `| ${pct(r.rate)} | ${r.detected.map((d) => pct(d.rate)).join(' | ')} |`),
    '',
    `Speed, ${t.perSide.toLocaleString('en-US')} samples per side (medians of ${t.reps}):`,
    '',
    '| what | time |',
    '|---|---|',
    `| tally() of ${t.perSide.toLocaleString('en-US')} raw latencies | ${t.tallyOf100kRawMs.toFixed(1)} ms |`,
    `| mannWhitney, raw latencies | ${t.mannWhitneyMs.toFixed(1)} ms |`,
    `| hodgesLehmann (estimate and 95% CI), raw latencies | ${t.hodgesLehmannMs.toFixed(1)} ms |`,
    `| judge, latency (raw) + 5xx, one look | ${t.judgeRawMs.toFixed(1)} ms |`,
    `| judge, latency as a 19-bucket histogram + 5xx | ${t.judgeHistogramMs.toFixed(2)} ms |`,
    '',
  ].join('\n');
}

/** Writes `file` through a temporary file and a rename, so a reader never sees half of it. */
function writeAtomic(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const results = { machine: machine(), date: new Date().toISOString(), load1AtStart: load1() };
  results.analysis = analysisBench();
  results.load1AtEnd = load1();
  const outDir = process.env.BENCH_RESULTS_DIR ?? path.join(ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `analysis-${results.date.replace(/[:.]/g, '-')}.json`);
  writeAtomic(file, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(analysisMarkdown(results.analysis));
  console.error(`bench: wrote ${path.relative(process.cwd(), file)}`);
}
