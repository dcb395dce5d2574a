// The fleet figures as markdown tables (bench/results/<stamp>.md, latest.md and the README).
import { fmt } from './lib.js';

const row = (cells) => `| ${cells.join(' | ')} |`;
const header = (cells) => [row(cells), row(cells.map(() => '---'))];

function startSection(st) {
  const f = st.figures;
  const label = (name) =>
    name === 'podman'
      ? `podman run -d --network host (${st.podmanRuntime})`
      : `kiln LocalRuntimeDriver.start (${name.replace('kiln-', '')})`;
  const lines = [
    `### Start to healthy, one instance at a time (${st.samples} samples each)`,
    '',
    ...header(['what', 'median', 'p99', 'start call returned (median)', 'ratio to podman (median, p99)']),
  ];
  for (const name of Object.keys(f)) {
    const r = st.ratios[`${name}/podman`];
    lines.push(
      row([
        label(name),
        fmt.ms(f[name].startToHealthyMs.median),
        fmt.ms(f[name].startToHealthyMs.p99),
        fmt.ms(f[name].startCallMs.median),
        r === undefined ? '' : `${fmt.ratio(r.median)}, ${fmt.ratio(r.p99)}`,
      ]),
    );
  }
  return [...lines, '', `Method: ${st.method}.`, ''];
}

function routerSection(rt) {
  const lines = [];
  for (const connections of rt.connectionCounts) {
    const f = rt.figures[`c${connections}`];
    lines.push(
      `### Router, ${connections} keep-alive connection${connections === 1 ? '' : 's'} (medians of ${rt.repetitions} runs of ${rt.durationMs / 1000} s)`,
      '',
      ...header(['path', 'requests/s', 'p50', 'p99', 'added p50 (− direct)', 'router CPU (cores)']),
    );
    const names = { direct: 'direct to the backend', kiln: 'kiln router (own process)', haproxy: 'HAProxy' };
    for (const [key, label] of Object.entries(names)) {
      const x = f[key];
      lines.push(
        row([
          label,
          fmt.rps(x.rps),
          fmt.ms(x.p50Ms),
          fmt.ms(x.p99Ms),
          key === 'direct' ? '' : fmt.ms(x.addedP50Ms),
          key === 'direct' ? '' : fmt.ratio(x.routerCpuCores, 2),
        ]),
      );
    }
    const r = f.ratios;
    lines.push(
      '',
      `Ratios kiln / HAProxy: requests/s ${fmt.ratio(r.rpsKilnVsHaproxy)}, p50 ${fmt.ratio(r.p50KilnVsHaproxy)}, p99 ${fmt.ratio(r.p99KilnVsHaproxy)}, added p50 ${fmt.ratio(r.addedP50KilnVsHaproxy)}. ` +
        `kiln / direct: requests/s ${fmt.ratio(r.rpsKilnVsDirect)}, p50 ${fmt.ratio(r.p50KilnVsDirect)}, p99 ${fmt.ratio(r.p99KilnVsDirect)}.`,
      '',
    );
  }
  return [...lines, `Method: ${rt.method} ${rt.haproxyVersion}.`, ''];
}

/** A bring-up time, saying how many did not answer when some did not. */
const withFailed = (up, text) =>
  up.failed?.length ? `${text} (${up.failed.length} did not answer in 2 min; see the JSON)` : text;

function scaleSection(sc) {
  const counts = Object.keys(sc.counts);
  const cell = (n, pick, format) => {
    const e = sc.counts[n];
    if (e.skipped !== undefined) return `skipped: ${e.skipped}`;
    const v = pick(e);
    return v === undefined ? '' : typeof v === 'string' ? v : format(v);
  };
  const rows = [
    ['kiln: all answer HTTP', (e) => withFailed(e.kiln, fmt.s(e.kiln.allHealthyMs / 1000)), fmt.s],
    ['kiln: all start calls returned', (e) => e.kiln.allStartedMs / 1000, fmt.s],
    ['kiln: stop all', (e) => e.kiln.stopAllMs / 1000, fmt.s],
    ["kiln: instances' RSS (sum of VmRSS)", (e) => e.kiln.memory.instancesRssBytes, fmt.mib],
    [
      "kiln: instances' PSS (sum, shared pages counted once)",
      (e) => e.kiln.memory.instancesPssBytes,
      fmt.mib,
    ],
    ["kiln: instances' memory cgroups (sum)", (e) => e.kiln.memory.instancesCgroupBytes, fmt.mib],
    [
      'kiln: host MemAvailable drop (noisy: moves with other work)',
      (e) => e.kiln.memory.memAvailableDropBytes,
      fmt.mib,
    ],
    ['router RSS, no route', (e) => e.kiln.router.idleBytes, fmt.mib],
    ['router RSS, route to all N', (e) => e.kiln.router.withRouteBytes, fmt.mib],
    ['router RSS, after 2 requests to each', (e) => e.kiln.router.afterTrafficBytes, fmt.mib],
    ['router setRoute of N backends', (e) => e.kiln.router.setRouteMs, fmt.ms],
    [
      'control plane RSS (kiln server, N replicas healthy)',
      (e) => (e.controlPlane.measured ? e.controlPlane.rssBytes : e.controlPlane.reason),
      fmt.mib,
    ],
    [
      'control plane: deploy of N replicas until the rollout succeeded',
      (e) => (e.controlPlane.measured ? e.controlPlane.deployUntilSucceededMs / 1000 : undefined),
      fmt.s,
    ],
    [
      'podman: all answer HTTP',
      (e) => (e.podman ? withFailed(e.podman, fmt.s(e.podman.allHealthyMs / 1000)) : undefined),
      fmt.s,
    ],
    ['podman: conmon + instances RSS (sum)', (e) => e.podman?.memory.conmonAndInstancesRssBytes, fmt.mib],
    ['podman: conmon + instances PSS (sum)', (e) => e.podman?.memory.conmonAndInstancesPssBytes, fmt.mib],
    ['podman: host MemAvailable drop (noisy)', (e) => e.podman?.memory.memAvailableDropBytes, fmt.mib],
    ['ratio kiln / podman, all answer HTTP', (e) => e.ratios?.allHealthyKilnVsPodman, fmt.ratio],
    ['ratio kiln / podman, PSS', (e) => e.ratios?.pssKilnVsPodman, fmt.ratio],
  ];
  return [
    `### Bring up N instances (${sc.runtime}, ${sc.startConcurrency} starts at a time)`,
    '',
    ...header(['what', ...counts.map((n) => `N = ${n}`)]),
    ...rows.map(([label, pick, format]) => row([label, ...counts.map((n) => cell(n, pick, format))])),
    '',
  ];
}

function recoverySection(rc) {
  const k = rc.kiln;
  const p = rc.podman;
  const lines = [
    `### Recovery after kill -9 (${rc.kills} kills)`,
    '',
    ...header(['what', 'median', 'p90', 'p99', 'min', 'max']),
  ];
  const stat = (label, s) =>
    row([label, fmt.ms(s.median), fmt.ms(s.p90), fmt.ms(s.p99), fmt.ms(s.min), fmt.ms(s.max)]);
  if (k.measured) {
    const what = `kiln server, ${k.replicas} replicas (${k.runtime})`;
    lines.push(
      stat(`${what}: killed instance out of the route`, k.victimUnroutedMs),
      stat(`${what}: replacement healthy in the API`, k.healthyInApiMs),
      stat(`${what}: replacement healthy in the API and routed`, k.recoveredMs),
    );
  } else {
    lines.push(row(['kiln server', k.reason, '', '', '', '']));
  }
  const peer = 'podman run -d --restart=always --network host: port answers HTTP 200 again';
  lines.push(p.measured ? stat(peer, p.answeredMs) : row([peer, p.reason, '', '', '', '']));
  lines.push('');
  if (rc.ratios) {
    lines.push(
      `Ratio kiln (healthy and routed) / podman (port answers): median ${fmt.ratio(rc.ratios.median)}, p99 ${fmt.ratio(rc.ratios.p99)}.`,
      '',
    );
  }
  if (k.measured) {
    lines.push(
      `kiln's poll round trip (API and router together): median ${fmt.ms(k.pollRoundTripMs.median)}; the longest in a kill's polls: median ${fmt.ms(k.pollRoundTripMaxMs.median)}, max ${fmt.ms(k.pollRoundTripMaxMs.max)}.`,
      '',
    );
  }
  return [...lines, `Method: ${rc.method}.`, ''];
}

function chaosSection(c, recovery) {
  if (!c.measured) return ['### Chaos under load', '', `Not measured: ${c.reason}.`, ''];
  const r = c.report;
  const l = c.loadgen;
  const pct = (x) => (x === null ? '–' : `${(x * 100).toFixed(3)}%`);
  const lines = [
    `### Chaos under load (${c.kills} kills, one every ${c.intervalMs / 1000} s, ${c.rate} req/s, ${c.replicas} replicas, ${c.runtime})`,
    '',
    ...header(['what', 'kiln chaos report', 'load generator']),
    row(['terminated / recovered', `${r.kills} / ${r.recovered}`, '']),
    row(['MTTR (kill → healthy replacement), median', fmt.ms(r.mttrMs.median), '']),
    row(['MTTR, p99 (nearest rank)', fmt.ms(r.mttrMs.p99), '']),
    row(['detection, median', fmt.ms(r.detectMs.median), '']),
    row(['requests', String(r.requests), `${l.sent} (over ${l.seconds} s)`]),
    row(['failed', String(r.failed), String(l.failed)]),
    row(['availability', pct(r.availability), pct(l.availability)]),
    '',
  ];
  const podman = recovery?.podman;
  if (podman?.measured && r.mttrMs.median !== null) {
    lines.push(
      `Ratio of kiln's MTTR under load to podman --restart=always's recovery (recovery part, same run, no load): median ${fmt.ratio(r.mttrMs.median / podman.answeredMs.median)}.`,
      '',
    );
  }
  return lines;
}

/** The fleet part of a results file as markdown. */
export function fleetMarkdown(fleet) {
  const img = fleet.image;
  const lines = [
    '## Fleet',
    '',
    `Image: busybox-static serving /www with \`busybox httpd\` on 127.0.0.1:$PORT, baked by kiln (${img.digest}); ` +
      (img.podmanImageId === undefined
        ? 'podman not run.'
        : `imported into podman ${img.podmanVersion} with skopeo (image id = kiln's config digest: ${img.sameImageInPodman ? 'yes' : 'NO'}).`),
    `Load average (1 min): ${Object.entries(fleet.load1)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
    '',
  ];
  if (fleet.startToHealthy) lines.push(...startSection(fleet.startToHealthy));
  if (fleet.router) lines.push(...routerSection(fleet.router));
  if (fleet.scale) lines.push(...scaleSection(fleet.scale));
  if (fleet.recovery) lines.push(...recoverySection(fleet.recovery));
  if (fleet.chaos) lines.push(...chaosSection(fleet.chaos, fleet.recovery));
  if (fleet.cleanupFailures) lines.push(`Cleanup failures: ${fleet.cleanupFailures.join('; ')}`, '');
  return lines.join('\n');
}
