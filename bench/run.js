#!/usr/bin/env node
// kiln's benchmarks. Runs kiln and its peers in the same run on the same machine and writes
// bench/results/<stamp>.json and .md with medians and ratios. Packages come from the Debian
// archive this machine's apt sources name (the same archive for kiln and mmdebstrap).
//
//   npm run bench                 # everything
//   BENCH_RUNS=3 npm run bench    # fewer repetitions
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, totalmem, release, tmpdir } from 'node:os';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KILN = path.join(ROOT, 'bin', 'kiln.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 3);
const SUITE = process.env.BENCH_SUITE ?? 'bookworm';
const SOURCES = process.env.BENCH_APT_SOURCES ?? '/etc/apt/sources.list.d/debian.sources';

/** Median of numbers. */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs a command, returns wall seconds; throws with its output when it fails. */
function timed(cmd, args, options = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { seconds, stdout: r.stdout };
}

function machine() {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    os: readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]+)/m)?.[1] ?? 'unknown',
  };
}

function makeProject() {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-bench-'));
  mkdirSync(path.join(dir, 'app'));
  writeFileSync(path.join(dir, 'app', 'server.js'), "console.log('bench app v0');\n");
  writeFileSync(
    path.join(dir, 'kiln.yaml'),
    [
      'images:',
      '  - name: node',
      `    from: debian:${SUITE}`,
      '    packages: [nodejs]',
      '  - name: app',
      '    from: node',
      '    app: { src: ./app }',
      '    cmd: [node, /app/server.js]',
      '',
    ].join('\n'),
  );
  return dir;
}

function kiln(dir, home, args) {
  return timed('node', [KILN, '-c', path.join(dir, 'kiln.yaml'), ...args], {
    env: { ...process.env, KILN_HOME: home },
  });
}

function imageBytes(dir, home, name) {
  const out = JSON.parse(kiln(dir, home, ['images', '--json']).stdout);
  const img = out.find((i) => i.name === name);
  // Uncompressed size: sum of the layers' tar sizes, comparable with mmdebstrap's tar.
  const store = path.join(home, 'store');
  const manifest = JSON.parse(readFileSync(path.join(store, 'blobs', 'sha256', img.digest.slice(7))));
  let tarBytes = 0;
  for (const layer of manifest.layers) {
    const gz = readFileSync(path.join(store, 'blobs', 'sha256', layer.digest.slice(7)));
    tarBytes += Number(execFileSync('sh', ['-c', 'gzip -dc | wc -c'], { input: gz }).toString().trim());
  }
  return { compressed: img.size, uncompressed: tarBytes };
}

function main() {
  const results = {
    machine: machine(),
    date: new Date().toISOString(),
    suite: SUITE,
    runs: RUNS,
    coldRuns: COLD_RUNS,
    figures: {},
  };
  const dir = makeProject();
  const cache = mkdtempSync(path.join(tmpdir(), 'kiln-bench-home-'));
  try {
    console.error(`bench: cold bakes (${COLD_RUNS}, empty state each time)`);
    const cold = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      const home = path.join(cache, `cold-${i}`);
      rmSync(path.join(dir, 'kiln.lock'), { force: true });
      cold.push(kiln(dir, home, ['bake', '--all']).seconds);
    }
    const home = path.join(cache, `cold-${COLD_RUNS - 1}`);

    console.error(`bench: layer-cold bakes (${COLD_RUNS}, .debs and indexes cached, layers not)`);
    const layerCold = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      rmSync(path.join(home, 'cache', 'layers'), { recursive: true, force: true });
      rmSync(path.join(home, 'store'), { recursive: true, force: true });
      layerCold.push(kiln(dir, home, ['bake', '--all']).seconds);
    }

    console.error(`bench: warm no-op bakes (${RUNS})`);
    const warm = [];
    for (let i = 0; i < RUNS; i++) warm.push(kiln(dir, home, ['bake', '--all']).seconds);

    console.error(`bench: app-only rebakes (${RUNS})`);
    const appOnly = [];
    for (let i = 0; i < RUNS; i++) {
      writeFileSync(path.join(dir, 'app', 'server.js'), `console.log('bench app v${i + 1}');\n`);
      const r = JSON.parse(kiln(dir, home, ['bake', 'app', '--json']).stdout);
      appOnly.push(r.reduce((s, x) => s + x.durationMs, 0) / 1000);
      const rebuilt = r.flatMap((x) => x.layers.filter((l) => !l.cached).map((l) => `${x.name}:${l.kind}`));
      if (rebuilt.join(',') !== 'app:app') throw new Error(`app-only rebake rebuilt ${rebuilt.join(',')}`);
    }
    const appOnlyCli = [];
    for (let i = 0; i < RUNS; i++) {
      writeFileSync(path.join(dir, 'app', 'server.js'), `console.log('bench app w${i + 1}');\n`);
      appOnlyCli.push(kiln(dir, home, ['bake', 'app']).seconds);
    }

    const size = imageBytes(dir, home, 'node');

    console.error(`bench: mmdebstrap --variant=minbase --include=nodejs (${COLD_RUNS})`);
    const mm = [];
    let mmBytes = 0;
    for (let i = 0; i < COLD_RUNS; i++) {
      const out = path.join(cache, `mm-${i}.tar`);
      mm.push(
        timed('mmdebstrap', ['--quiet', '--variant=minbase', '--include=nodejs', SUITE, out, SOURCES])
          .seconds,
      );
      mmBytes = statSync(out).size;
      rmSync(out, { force: true });
    }

    const f = results.figures;
    f.coldBakeSeconds = { median: median(cold), samples: cold };
    f.layerColdBakeSeconds = { median: median(layerCold), samples: layerCold };
    f.warmNoopBakeSeconds = {
      median: median(warm),
      samples: warm,
      note: 'whole CLI process, node start-up included',
    };
    f.appOnlyRebakeSeconds = {
      median: median(appOnly),
      samples: appOnly,
      note: 'bake time reported by kiln',
    };
    f.appOnlyRebakeCliSeconds = { median: median(appOnlyCli), samples: appOnlyCli };
    f.mmdebstrapSeconds = { median: median(mm), samples: mm };
    f.nodeImageBytes = size;
    f.mmdebstrapTarBytes = mmBytes;
    f.ratios = {
      coldBakeVsMmdebstrap: median(cold) / median(mm),
      layerColdBakeVsMmdebstrap: median(layerCold) / median(mm),
      warmNoopVsMmdebstrap: median(warm) / median(mm),
      imageSizeVsMmdebstrap: size.uncompressed / mmBytes,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  }
  const outDir = path.join(ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const stamp = results.date.replace(/[:.]/g, '-');
  writeFileSync(path.join(outDir, `${stamp}.json`), JSON.stringify(results, null, 2) + '\n');
  const md = markdown(results);
  writeFileSync(path.join(outDir, `${stamp}.md`), md);
  writeFileSync(path.join(outDir, 'latest.md'), md);
  process.stdout.write(md);
}

function markdown(r) {
  const f = r.figures;
  const s = (x) => `${x.median.toFixed(2)} s`;
  const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return [
    `# kiln benchmarks, ${r.date}`,
    '',
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ${r.machine.os}, kernel ${r.machine.kernel}, Node ${r.machine.node}.`,
    `Suite: ${r.suite}. Medians of ${r.runs} runs (${r.coldRuns} for cold bakes and mmdebstrap).`,
    '',
    '| what | kiln | mmdebstrap (minbase + nodejs) | ratio kiln / mmdebstrap |',
    '|---|---|---|---|',
    `| cold bake, empty state (download, verify, resolve, build) | ${s(f.coldBakeSeconds)} | ${s(f.mmdebstrapSeconds)} | ${f.ratios.coldBakeVsMmdebstrap.toFixed(3)} |`,
    `| bake with .debs cached, layers not | ${s(f.layerColdBakeSeconds)} | | ${f.ratios.layerColdBakeVsMmdebstrap.toFixed(3)} |`,
    `| warm no-op bake (whole CLI run) | ${s(f.warmNoopBakeSeconds)} | | ${f.ratios.warmNoopVsMmdebstrap.toFixed(4)} |`,
    `| app-only rebake (kiln's own timing) | ${s(f.appOnlyRebakeSeconds)} | | |`,
    `| app-only rebake (whole CLI run) | ${s(f.appOnlyRebakeCliSeconds)} | | |`,
    `| nodejs root filesystem (uncompressed tar) | ${mib(f.nodeImageBytes.uncompressed)} (${mib(f.nodeImageBytes.compressed)} gzip) | ${mib(f.mmdebstrapTarBytes)} | ${f.ratios.imageSizeVsMmdebstrap.toFixed(3)} |`,
    '',
  ].join('\n');
}

main();
