// The baking benchmarks: kiln's bakes of a Node.js image beside mmdebstrap's minbase + nodejs, from
// the same Debian archive (the one this machine's apt sources name).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { envInt, fmt, kiln, median, timed } from './lib.js';

function settings() {
  return {
    runs: envInt('BENCH_RUNS', 5),
    coldRuns: envInt('BENCH_COLD_RUNS', 3),
    suite: process.env.BENCH_SUITE ?? 'bookworm',
    sources: process.env.BENCH_APT_SOURCES ?? '/etc/apt/sources.list.d/debian.sources',
  };
}

function makeProject(suite) {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-bench-'));
  mkdirSync(path.join(dir, 'app'));
  writeFileSync(path.join(dir, 'app', 'server.js'), "console.log('bench app v0');\n");
  writeFileSync(
    path.join(dir, 'kiln.yaml'),
    [
      'images:',
      '  - name: node',
      `    from: debian:${suite}`,
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

function imageBytes(config, home, name) {
  const out = JSON.parse(kiln(config, home, ['images', '--json']).stdout);
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

/** Runs the baking benchmarks; returns their settings and figures. */
export function bakeBench() {
  const { runs, coldRuns, suite, sources } = settings();
  const dir = makeProject(suite);
  const config = path.join(dir, 'kiln.yaml');
  const cache = mkdtempSync(path.join(tmpdir(), 'kiln-bench-home-'));
  try {
    console.error(`bench: cold bakes (${coldRuns}, empty state each time)`);
    const cold = [];
    for (let i = 0; i < coldRuns; i++) {
      const home = path.join(cache, `cold-${i}`);
      rmSync(path.join(dir, 'kiln.lock'), { force: true });
      cold.push(kiln(config, home, ['bake', '--all']).seconds);
    }
    const home = path.join(cache, `cold-${coldRuns - 1}`);

    console.error(`bench: layer-cold bakes (${coldRuns}, .debs and indexes cached, layers not)`);
    const layerCold = [];
    for (let i = 0; i < coldRuns; i++) {
      rmSync(path.join(home, 'cache', 'layers'), { recursive: true, force: true });
      rmSync(path.join(home, 'store'), { recursive: true, force: true });
      layerCold.push(kiln(config, home, ['bake', '--all']).seconds);
    }

    console.error(`bench: warm no-op bakes (${runs})`);
    const warm = [];
    for (let i = 0; i < runs; i++) warm.push(kiln(config, home, ['bake', '--all']).seconds);

    console.error(`bench: app-only rebakes (${runs})`);
    const appOnly = [];
    for (let i = 0; i < runs; i++) {
      writeFileSync(path.join(dir, 'app', 'server.js'), `console.log('bench app v${i + 1}');\n`);
      const r = JSON.parse(kiln(config, home, ['bake', 'app', '--json']).stdout);
      appOnly.push(r.reduce((s, x) => s + x.durationMs, 0) / 1000);
      const rebuilt = r.flatMap((x) => x.layers.filter((l) => !l.cached).map((l) => `${x.name}:${l.kind}`));
      if (rebuilt.join(',') !== 'app:app') throw new Error(`app-only rebake rebuilt ${rebuilt.join(',')}`);
    }
    const appOnlyCli = [];
    for (let i = 0; i < runs; i++) {
      writeFileSync(path.join(dir, 'app', 'server.js'), `console.log('bench app w${i + 1}');\n`);
      appOnlyCli.push(kiln(config, home, ['bake', 'app']).seconds);
    }

    const size = imageBytes(config, home, 'node');

    console.error(`bench: mmdebstrap --variant=minbase --include=nodejs (${coldRuns})`);
    const mm = [];
    let mmBytes = 0;
    for (let i = 0; i < coldRuns; i++) {
      const out = path.join(cache, `mm-${i}.tar`);
      mm.push(
        timed('mmdebstrap', ['--quiet', '--variant=minbase', '--include=nodejs', suite, out, sources])
          .seconds,
      );
      mmBytes = statSync(out).size;
      rmSync(out, { force: true });
    }

    return {
      suite,
      runs,
      coldRuns,
      figures: {
        coldBakeSeconds: { median: median(cold), samples: cold },
        layerColdBakeSeconds: { median: median(layerCold), samples: layerCold },
        warmNoopBakeSeconds: {
          median: median(warm),
          samples: warm,
          note: 'whole CLI process, node start-up included',
        },
        appOnlyRebakeSeconds: {
          median: median(appOnly),
          samples: appOnly,
          note: 'bake time reported by kiln',
        },
        appOnlyRebakeCliSeconds: { median: median(appOnlyCli), samples: appOnlyCli },
        mmdebstrapSeconds: { median: median(mm), samples: mm },
        nodeImageBytes: size,
        mmdebstrapTarBytes: mmBytes,
        ratios: {
          coldBakeVsMmdebstrap: median(cold) / median(mm),
          layerColdBakeVsMmdebstrap: median(layerCold) / median(mm),
          warmNoopVsMmdebstrap: median(warm) / median(mm),
          imageSizeVsMmdebstrap: size.uncompressed / mmBytes,
        },
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  }
}

/** The baking figures as a markdown section. */
export function bakeMarkdown(bake) {
  const f = bake.figures;
  const s = (x) => fmt.s(x.median);
  const mib = fmt.mib;
  return [
    '## Baking',
    '',
    `Suite: ${bake.suite}. Medians of ${bake.runs} runs (${bake.coldRuns} for cold bakes and mmdebstrap).`,
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
