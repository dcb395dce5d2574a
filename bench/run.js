#!/usr/bin/env node
// kiln's benchmarks. Runs kiln and its peers in the same run on the same machine and writes
// bench/results/<stamp>.json (every sample) and .md (medians and ratios), and (for a full run)
// results/latest.md.
// Packages come from the Debian archive this machine's apt sources name.
//
//   npm run bench                       # everything
//   BENCH_ONLY=fleet npm run bench      # only the fleet part (or bake, analysis, dev, registry)
//   BENCH_RUNS=3 npm run bench          # fewer repetitions; see bench/README.md for every knob
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Cleanup, load1, machine, ROOT } from './lib.js';

const PARTS = ['bake', 'fleet', 'analysis', 'dev', 'registry'];
const only = process.env.BENCH_ONLY;
if (only !== undefined && only !== '' && !PARTS.includes(only)) {
  console.error(`BENCH_ONLY must be one of ${PARTS.join(', ')}, got '${only}'`);
  process.exit(2);
}
const parts = only ? [only] : PARTS;

const results = {
  machine: machine(),
  date: new Date().toISOString(),
  parts,
  note:
    process.env.BENCH_NOTE ??
    'Shared machine: other work (other engineers’ tests) may run during the bench; see the load averages.',
  load1AtStart: load1(),
};
const sections = [];
const cleanup = new Cleanup();
let interrupted;
process.once('SIGINT', () => {
  console.error('bench: interrupted, ending what it started');
  interrupted = cleanup.run().finally(() => process.exit(130));
});

try {
  if (parts.includes('bake')) {
    const { bakeBench, bakeMarkdown } = await import('./bake.js');
    results.bake = bakeBench();
    sections.push(bakeMarkdown(results.bake));
  }
  if (parts.includes('fleet')) {
    // Imported only when needed: it loads kiln's compiled code from dist/.
    const { fleetBench, fleetMarkdown } = await import('./fleet.js');
    results.fleet = await fleetBench(cleanup);
    sections.push(fleetMarkdown(results.fleet));
  }
  if (parts.includes('analysis')) {
    // The canary judge's simulations: pure computation on kiln's compiled code.
    const { analysisBench, analysisMarkdown } = await import('./analysis.js');
    results.analysis = analysisBench();
    sections.push(analysisMarkdown(results.analysis));
  }
  if (parts.includes('dev')) {
    // The developer loop: kiln dev and kiln deploy --bake on the example app, beside their peers.
    const { devBench, devMarkdown } = await import('./dev.js');
    results.dev = await devBench(cleanup);
    sections.push(devMarkdown(results.dev));
  }
  if (parts.includes('registry')) {
    // Pushing and pulling one image on loopback: kiln replicate and kiln server beside skopeo and
    // Debian's docker-registry.
    const { registryBench, registryMarkdown } = await import('./registry.js');
    results.registry = await registryBench(cleanup);
    sections.push(registryMarkdown(results.registry));
  }
} catch (err) {
  // After Ctrl-C the benchmarks fail as their processes go; the cleanup then decides the exit.
  if (interrupted !== undefined) await interrupted;
  throw err;
}
results.load1AtEnd = load1();

const m = results.machine;
const md = [
  `# kiln benchmarks, ${results.date}`,
  '',
  `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, kernel ${m.kernel}, Node ${m.node}.`,
  `${results.note} Load average (1 min) ${results.load1AtStart} at the start, ${results.load1AtEnd} at the end.`,
  '',
  ...sections,
].join('\n');
const outDir = process.env.BENCH_RESULTS_DIR ?? path.join(ROOT, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const stamp = results.date.replace(/[:.]/g, '-');
writeFileSync(path.join(outDir, `${stamp}.json`), JSON.stringify(results, null, 2) + '\n');
writeFileSync(path.join(outDir, `${stamp}.md`), md);
// latest.md is the latest full run; a BENCH_ONLY run leaves it to its own stamped files.
if (!only) writeFileSync(path.join(outDir, 'latest.md'), md);
process.stdout.write(md);
