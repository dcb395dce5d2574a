// The registry benchmarks, on 127.0.0.1 only, with Debian's docker-registry (CNCF distribution
// 2.8) and skopeo as the peers, in one run:
//   - push: `kiln replicate` of one baked image into an empty docker-registry (cold), and again
//     when everything is there (warm), beside `skopeo copy oci:<layout> docker://…` of the same
//     image (`kiln bake --out oci:DIR`), cold and warm, interleaved, a fresh registry each sample;
//     and, to tell kiln's copy from its CLI's start-up, the same `replicateImage` called in this
//     process, and `kiln --version` beside `skopeo --version`;
//   - pull: `skopeo copy docker://… oci:DIR` of that image from `kiln server`'s registry (a read
//     token) beside the same copy from docker-registry: same client, same image, two servers.
// The image is baked by kiln from this machine's apt sources: Debian's nodejs and ca-certificates
// plus a layer of incompressible assets, with its SBOM and signature.
// Every process started here is ended by its PID, also on Ctrl-C.
import { createCipheriv } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stats } from './dev-peers.js';
import { envInt, fmt, freePorts, KILN, load1, LOOPBACK, nowMs, ratio } from './lib.js';
import {
  DOCKER_REGISTRY,
  kilnRun,
  layoutDigests,
  manifestDigest,
  skopeo,
  startDockerRegistry,
  startKilnRegistry,
  timedRun,
} from './registry-servers.js';

/** The knobs, from the environment. */
export function registrySettings() {
  return {
    suite: process.env.BENCH_SUITE ?? 'bookworm',
    runs: envInt('BENCH_RUNS', 5),
    assetsMiB: envInt('BENCH_REGISTRY_ASSETS_MIB', 32),
    runtime: process.env.BENCH_SCALE_RUNTIME ?? 'crun',
  };
}

/** The repository both peers push to in docker-registry (kiln's: region prefix `bench`, image `app`). */
const REPOSITORY = 'bench/app';

/** `mib` MiB that no compressor shrinks, the same every run: AES-256-CTR's keystream of a fixed key. */
function incompressible(mib) {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 0));
  return Buffer.concat([cipher.update(Buffer.alloc(mib * 2 ** 20)), cipher.final()]);
}

/** The project: image `app` and region `bench`, whose registry is docker-registry on `port`. */
function writeProject(project, { suite, assetsMiB }, port) {
  mkdirSync(project, { recursive: true });
  writeFileSync(path.join(project, 'assets.bin'), incompressible(assetsMiB));
  writeFileSync(
    path.join(project, 'kiln.yaml'),
    [
      'images:',
      '  - name: app',
      `    from: debian:${suite}`,
      '    packages: [nodejs, ca-certificates]',
      '    files:',
      '      - { src: ./assets.bin, dest: /srv/assets.bin, mode: "0644" }',
      '    cmd: [node, --version]',
      'targets: { bench: { driver: local } }',
      `regions: { bench: { target: bench, registry: "${LOOPBACK}:${port}/bench" } }`,
      '',
    ].join('\n'),
  );
}

/** What the image is: its digest, blobs (config and layers) and bytes, and its referrers. */
async function describeImage(home) {
  const { OciStore } = await import('../dist/oci/index.js');
  const store = await OciStore.open(path.join(home, 'store'));
  const desc = await store.resolve('app');
  const manifest = await store.getManifest(desc.digest);
  const blobs = [manifest.config, ...manifest.layers];
  return {
    digest: desc.digest,
    layers: manifest.layers.map((l) => l.size),
    blobs: blobs.length,
    bytes: blobs.reduce((n, b) => n + b.size, 0),
    referrers: (await store.referrers(desc.digest)).map((r) => r.artifactType ?? r.mediaType),
  };
}

/** Ratios of the medians and of the p90s, kiln over the peer. */
const ratios = (kiln, peer) => ({
  median: ratio(kiln?.median, peer?.median),
  p90: ratio(kiln?.p90, peer?.p90),
});

/** Checks a replication into an empty registry (every blob uploaded) or a full one (none sent). */
function checkReplication(r, image, host, cold) {
  if (r.digest !== image.digest)
    throw new Error(`kiln replicated ${r.digest} into ${host}, not ${image.digest}`);
  const wrong = r.blobs.filter((b) => b.how !== (cold ? 'uploaded' : 'present'));
  if (wrong.length > 0 || (!cold && r.bytesSent !== 0))
    throw new Error(
      `kiln's ${cold ? 'cold' : 'warm'} replication into ${host}: ${JSON.stringify(r.blobs)} (${r.bytesSent} bytes sent)`,
    );
  return {
    bytesSent: r.bytesSent,
    blobs: r.blobs.length,
    manifests: r.manifests.length,
    fallbackTags: r.fallbackTags.length,
  };
}

/**
 * The ways to push the image, each `cold(host)` into an empty registry and then `warm(host)`:
 * `kiln replicate` (the whole CLI run), the same `replicateImage` called in the bench's own process
 * (kiln's code without the CLI's start-up; its uploads remembered in a file journal as the CLI's
 * are), and `skopeo copy` of the exported layout.
 */
async function pushPeers({ config, home, dir, layout, image }) {
  const { fileJournal, OciStore, RegistryClient, replicateImage, storeSource } =
    await import('../dist/oci/index.js');
  const store = await OciStore.open(path.join(home, 'store'));
  const desc = await store.resolve('app');
  const journal = fileJournal(path.join(dir, 'library-uploads'));
  const cli = async (host, cold) => {
    const args = ['replicate', 'app', '--regions', 'bench', '--json'];
    const { seconds, stdout } = await kilnRun(config, home, args);
    return { seconds, detail: checkReplication(JSON.parse(stdout).regions[0], image, host, cold) };
  };
  const library = async (host, cold) => {
    const client = new RegistryClient({ registry: host });
    try {
      const t0 = nowMs();
      const r = await replicateImage(
        storeSource(store),
        desc,
        { client, repository: REPOSITORY },
        { journal },
      );
      const seconds = (nowMs() - t0) / 1000;
      return { seconds, detail: checkReplication(r, image, host, cold) };
    } finally {
      client.close();
    }
  };
  const copy = (host) =>
    skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:app`, `docker://${host}/${REPOSITORY}:latest`]);
  return {
    'kiln replicate': { cold: (host) => cli(host, true), warm: (host) => cli(host, false) },
    'replicateImage (in-process)': {
      cold: (host) => library(host, true),
      warm: (host) => library(host, false),
    },
    'skopeo copy': {
      async cold(host) {
        const { seconds } = await copy(host);
        const digest = await manifestDigest(host, REPOSITORY, 'latest');
        if (digest !== image.digest)
          throw new Error(`skopeo's copy in ${host} is ${digest}, kiln's image ${image.digest}`);
        return { seconds };
      },
      warm: copy,
    },
  };
}

/** The push samples: each way cold into a fresh docker-registry, then warm; interleaved. */
async function pushBench({ registry, runs, ...ctx }) {
  const peers = await pushPeers(ctx);
  const names = Object.keys(peers);
  const samples = Object.fromEntries(names.map((n) => [n, { cold: [], warm: [] }]));
  let kilnDetail;
  // Round 0 warms the page cache and both CLIs' files; it is not counted.
  for (let round = 0; round <= runs; round++) {
    for (const name of round % 2 === 0 ? names : [...names].reverse()) {
      const reg = await registry.fresh();
      const cold = await peers[name].cold(reg.host);
      const warm = await peers[name].warm(reg.host);
      if (round === 0) continue;
      samples[name].cold.push(cold.seconds);
      samples[name].warm.push(warm.seconds);
      if (name === 'kiln replicate') kilnDetail = cold.detail;
    }
    console.error(`bench: registry, push round ${round}/${runs}${round === 0 ? ' (warm-up)' : ''}`);
  }
  const out = { kilnSent: kilnDetail };
  for (const n of names) out[n] = { cold: stats(samples[n].cold), warm: stats(samples[n].warm) };
  const peer = out['skopeo copy'];
  out.ratios = {
    cold: ratios(out['kiln replicate'].cold, peer.cold),
    warm: ratios(out['kiln replicate'].warm, peer.warm),
    libraryCold: ratios(out['replicateImage (in-process)'].cold, peer.cold),
    libraryWarm: ratios(out['replicateImage (in-process)'].warm, peer.warm),
  };
  return out;
}

/** Start-up alone, the floor under every whole CLI run: `kiln --version` and `skopeo --version`. */
async function startupBench(runs) {
  const kiln = [];
  const peer = [];
  for (let i = 0; i <= runs; i++) {
    const a = await timedRun(process.execPath, [KILN, '--version']);
    const b = await skopeo(['--version']);
    if (i === 0) continue;
    kiln.push(a.seconds);
    peer.push(b.seconds);
  }
  return { kiln: stats(kiln), skopeo: stats(peer) };
}

/** The pull samples: skopeo from kiln server's registry and from docker-registry, interleaved. */
async function pullBench({ dir, image, sources, runs }) {
  const samples = Object.fromEntries(sources.map((s) => [s.name, []]));
  mkdirSync(path.join(dir, 'pulled'), { recursive: true });
  for (let round = 0; round <= runs; round++) {
    const order = round % 2 === 0 ? sources : [...sources].reverse();
    for (const src of order) {
      const dest = path.join(dir, 'pulled', `${src.name.replace(/\W+/g, '-')}-${round}`);
      const { seconds } = await skopeo([
        'copy',
        '--src-tls-verify=false',
        ...(src.token ? ['--src-creds', `kiln:${src.token}`] : []),
        `docker://${src.host}/${src.repository}@${image.digest}`,
        `oci:${dest}:app`,
      ]);
      const got = layoutDigests(dest);
      rmSync(dest, { recursive: true, force: true });
      if (got.length !== 1 || got[0] !== image.digest)
        throw new Error(`skopeo's pull from ${src.name} wrote ${got.join(', ')}, not ${image.digest}`);
      if (round > 0) samples[src.name].push(seconds);
    }
    console.error(`bench: registry, pull round ${round}/${runs}${round === 0 ? ' (warm-up)' : ''}`);
  }
  const out = Object.fromEntries(sources.map((s) => [s.name, stats(samples[s.name])]));
  out.ratio = ratios(out['kiln server'], out['docker-registry']);
  return out;
}

/** `kiln server` and a docker-registry holding the image, then {@link pullBench}; stops the server. */
async function pullPart({ dir, project, home, config, image, registry, settings, cleanup }) {
  const reg = await registry.fresh();
  await kilnRun(config, home, ['replicate', 'app', '--regions', 'bench']);
  const kilnRegistry = await startKilnRegistry(project, home, settings.runtime, cleanup);
  console.error(`bench: registry, pull with skopeo (${settings.runs} rounds after a warm-up)`);
  try {
    return await pullBench({
      dir,
      image,
      runs: settings.runs,
      sources: [
        { name: 'kiln server', host: kilnRegistry.host, repository: 'app', token: kilnRegistry.token },
        { name: 'docker-registry', host: reg.host, repository: REPOSITORY },
      ],
    });
  } finally {
    await kilnRegistry.stop();
  }
}

/** Runs the registry benchmarks; `cleanup` ends what they start. */
export async function registryBench(cleanup) {
  const settings = registrySettings();
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-bench-registry-'));
  cleanup.add(`remove ${dir}`, async () => rmSync(dir, { recursive: true, force: true }));
  const out = { settings, load1AtStart: load1() };
  try {
    const versions = await Promise.all([skopeo(['--version']), timedRun(DOCKER_REGISTRY, ['--version'])]);
    out.versions = { skopeo: versions[0].stdout.trim(), dockerRegistry: versions[1].stdout.trim() };
    const project = path.join(dir, 'project');
    const home = path.join(project, '.kiln');
    const config = path.join(project, 'kiln.yaml');
    const layout = path.join(dir, 'layout');
    const [port] = await freePorts(1);
    writeProject(project, settings, port);
    console.error(
      `bench: registry, baking the image (nodejs, ca-certificates, ${settings.assetsMiB} MiB of assets)`,
    );
    out.bakeSeconds = (await kilnRun(config, home, ['bake', 'app', '--out', `oci:${layout}`])).seconds;
    const image = await describeImage(home);
    out.image = image;

    let current;
    const registry = {
      async fresh() {
        await current?.stop();
        current = await startDockerRegistry(path.join(dir, 'docker-registry'), port, cleanup);
        return current;
      },
    };
    console.error(`bench: registry, push (${settings.runs} rounds after a warm-up)`);
    out.push = await pushBench({ config, home, dir, layout, image, registry, runs: settings.runs });
    out.startup = await startupBench(settings.runs);

    // The pull's docker-registry gets the image from kiln replicate, untimed. A pull that fails is
    // recorded as not measured: the push figures stand without it.
    try {
      out.pull = await pullPart({ dir, project, home, config, image, registry, settings, cleanup });
    } catch (err) {
      console.error(`bench: registry, pull: ${err instanceof Error ? err.stack : String(err)}`);
      out.pull = { measured: false, reason: `not measured: ${err instanceof Error ? err.message : err}` };
    }
    await current.stop();
  } finally {
    const failures = await cleanup.run();
    if (failures.length > 0) out.cleanupFailures = failures;
    out.load1AtEnd = load1();
  }
  return out;
}

const MiB = 2 ** 20;
/** MiB/s of `bytes` in `seconds`. */
const rate = (bytes, seconds) =>
  typeof seconds === 'number' ? `${(bytes / MiB / seconds).toFixed(1)} MiB/s` : 'n/a';

/** The registry figures as a markdown section. */
export function registryMarkdown(r) {
  const img = r.image ?? {};
  const p = r.push ?? {};
  const l = r.pull ?? {};
  const su = r.startup ?? {};
  const row = (cells) => `| ${cells.join(' | ')} |`;
  const line = (what, x, rr, bytes) =>
    row([
      what,
      fmt.s(x?.median),
      fmt.s(x?.p90),
      bytes ? rate(bytes, x?.median) : '',
      rr === null ? '' : fmt.ratio(rr?.median),
      rr === null ? '' : fmt.ratio(rr?.p90),
    ]);
  const sent = p.kilnSent ?? {};
  const kilnCli = p['kiln replicate'] ?? {};
  const lib = p['replicateImage (in-process)'] ?? {};
  const peer = p['skopeo copy'] ?? {};
  return [
    '## Registry',
    '',
    `On 127.0.0.1 only. ${r.versions?.dockerRegistry ?? 'docker-registry'}; ${r.versions?.skopeo ?? 'skopeo'}. ` +
      `The image: \`app\`, baked by kiln from ${r.settings.suite} through this machine's apt sources (Debian's nodejs and ca-certificates) ` +
      `plus ${r.settings.assetsMiB} MiB of incompressible assets in a layer of their own: ${img.blobs} blobs (config and ${img.layers?.length} layers: ${(img.layers ?? []).map(fmt.mib).join(', ')}), ` +
      `${fmt.mib(img.bytes)} in all, ${img.digest}; with ${img.referrers?.length} referrers (${(img.referrers ?? []).join(', ')}). ` +
      `${r.settings.runs} samples of each after one warm-up round not counted, interleaved (the order alternates by round).`,
    '',
    `### Push one image into docker-registry (a new, empty one for each cold sample)`,
    '',
    row(['what', 'median', 'p90', 'rate', 'ratio to skopeo (median)', 'ratio (p90)']),
    row(Array(6).fill('---')),
    line(
      'cold: `kiln replicate app --regions bench` (whole CLI run)',
      kilnCli.cold,
      p.ratios?.cold,
      img.bytes,
    ),
    line(
      "cold: kiln's `replicateImage` in the bench's process (no CLI start-up)",
      lib.cold,
      p.ratios?.libraryCold,
      img.bytes,
    ),
    line('cold: `skopeo copy oci:LAYOUT:app docker://…/bench/app:latest`', peer.cold, null, img.bytes),
    line('warm (everything there): `kiln replicate` again', kilnCli.warm, p.ratios?.warm),
    line("warm: kiln's `replicateImage` again, in-process", lib.warm, p.ratios?.libraryWarm),
    line('warm: `skopeo copy` again', peer.warm, null),
    line('start-up alone: `kiln --version`', su.kiln, ratios(su.kiln, su.skopeo)),
    line('start-up alone: `skopeo --version`', su.skopeo, null),
    '',
    `kiln's cold replicate sent ${fmt.mib(sent.bytesSent)} in ${sent.blobs} blobs (the image's and its referrers') and put ${sent.manifests} manifests ` +
      `(the image and its referrers; ${sent.fallbackTags} fallback tag, as docker-registry 2.8 has no referrers API), one blob after another in 8 MiB chunks, ` +
      'each blob hashed before it is sent and checked with HEAD after; skopeo copies the image alone (config and layers, each blob streamed in one PATCH, one manifest, by tag). ' +
      "The warm runs send no blob: each asks for every blob with HEAD (kiln's for the referrers' too) and puts the manifests again.",
    '',
    '### Pull one image with skopeo (`skopeo copy docker://…@sha256:… oci:NEW_DIR:app`)',
    '',
    l.measured === false
      ? l.reason
      : [
          row(['from', 'median', 'p90', 'rate', 'ratio to docker-registry (median)', 'ratio (p90)']),
          row(Array(6).fill('---')),
          line('`kiln server` (its store under /v2/, a read token)', l['kiln server'], l.ratio, img.bytes),
          line('docker-registry', l['docker-registry'], null, img.bytes),
        ].join('\n'),
    '',
    `Bake of the image (cold, with the export \`--out oci:DIR\`): ${fmt.s(r.bakeSeconds)}. Load average (1 min) ${r.load1AtStart} at the part's start, ${r.load1AtEnd} at its end.`,
    '',
  ].join('\n');
}
