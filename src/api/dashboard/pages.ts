/** The dashboard's fleet-wide pages: Overview, Images, Chaos and Audit. */
import { NotFoundError } from '../../errors/index.js';
import type { ChaosReportJson, ControlPlane, ImageJson, ServiceStatusJson } from '../types.js';
import { html, type Html } from './html.js';
import { age, humanBytes, num, page, scroll, shortDigest, type Session } from './layout.js';

/** `#services`: one row per service; refreshes itself on every server event. */
export async function servicesTable(plane: ControlPlane): Promise<Html> {
  const services = await plane.status();
  const row = (s: ServiceStatusJson) => {
    const href = `/ui/services/${encodeURIComponent(s.name)}`;
    const phase = s.rollout?.phase;
    const healthy = s.healthy === s.instances && s.instances > 0;
    return html`<tr data-service="${s.name}">
<td class="name"><a href="${href}">${s.name}</a></td>
<td class="release">${s.release ?? '—'} ${s.release ? shortDigest(s.digest) : ''}</td>
<td class="health ${healthy ? 'healthy' : 'unhealthy'}">${s.healthy}/${s.instances}</td>
<td class="rollout ${phase ?? ''}">${phase ?? '—'}</td>
<td class="strategy">${s.strategy}</td>
<td class="tier">${s.tier}</td>
<td class="region">local</td>
<td><a href="${href}">details</a></td>
</tr>`;
  };
  return html`<table id="services" hx-get="/ui/fragment/services" hx-trigger="kiln-change from:body" hx-swap="outerHTML">
<thead><tr><th>Service</th><th>Release</th><th>Healthy</th><th>Rollout</th><th>Strategy</th><th>Tier</th><th>Region</th><th></th></tr></thead>
<tbody>${services.map(row)}</tbody>
</table>`;
}

export async function overviewPage(plane: ControlPlane, session: Session): Promise<string> {
  const table = await servicesTable(plane);
  return page('Overview', session, '/ui/', html`<h1>Fleet</h1>${scroll(table)}`);
}

function signer(i: ImageJson): Html {
  if (!i.signature) return html`<span class="bad">unsigned</span>`;
  const { keyid, verified } = i.signature;
  return html`<code title="${keyid}">${keyid.replace(/^sha256:/, '').slice(0, 16)}</code>
${verified ? html`<span class="ok">verified</span>` : html`<span class="bad">unverified</span>`}`;
}

function packages(i: ImageJson): Html {
  if (!i.sbom) return html`<span class="muted">no SBOM</span>`;
  const items = i.sbom.packages.map(
    (p) => html`<li data-package="${p.name}">${p.name} <span class="muted">${p.version}</span></li>`,
  );
  return html`<details><summary>${i.sbom.packages.length} packages</summary><ul>${items}</ul></details>`;
}

export async function imagesPage(plane: ControlPlane, session: Session): Promise<string> {
  const images = await plane.images();
  const rows = images.map(
    (i) => html`<tr data-image="${i.name}">
<td class="name">${i.name}</td>
<td class="digest">${shortDigest(i.digest)}</td>
<td class="base">${i.base ?? '—'} ${i.baseDigest ? shortDigest(i.baseDigest) : ''}</td>
<td class="size">${humanBytes(i.size)}</td>
<td class="signer">${signer(i)}</td>
<td class="packages">${packages(i)}</td>
<td class="outdated muted">run <code>kiln outdated</code></td>
</tr>`,
  );
  const table = html`<table id="images">
<thead><tr><th>Image</th><th>Digest</th><th>Base</th><th>Size</th><th>Signer</th><th>SBOM</th><th>Outdated security packages</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
  return page(
    'Images',
    session,
    '/ui/images',
    html`<h1>Images</h1>
${scroll(table)}
${images.length === 0 ? html`<p class="muted" id="no-images">The control plane's store has no images: kiln bake.</p>` : ''}
<p class="muted" id="outdated-note">The control plane does not record which packages are outdated (that needs the Debian archive): run <code>kiln outdated</code> in the project to compare every locked package with the archive.</p>`,
  );
}

async function latestReport(plane: ControlPlane): Promise<ChaosReportJson | undefined> {
  try {
    return await plane.chaosReport();
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

function chaosSummary(report: ChaosReportJson | undefined): Html {
  const availability =
    report === undefined || report.availability === null
      ? '—'
      : `${num(report.availability * 100, 3)} % (${report.failed} of ${report.requests} requests failed)`;
  return html`<dl class="summary" id="chaos-summary">
<dt>Kills</dt><dd class="kills">${report?.kills ?? 0} (${report?.recovered ?? 0} recovered)</dd>
<dt>MTTR median</dt><dd class="mttr-median">${num(report?.mttrMs.median ?? null, 0)} ms</dd>
<dt>MTTR p99</dt><dd class="mttr-p99">${num(report?.mttrMs.p99 ?? null, 0)} ms</dd>
<dt>Availability</dt><dd class="availability">${availability}</dd>
</dl>`;
}

export async function chaosPage(plane: ControlPlane, session: Session): Promise<string> {
  const report = await latestReport(plane);
  const terminations = report?.terminations ?? [];
  const recovery = terminations.flatMap((t) => (t.recoveryMs === undefined ? [] : [t.recoveryMs]));
  const rows = terminations.map(
    (t) => html`<tr data-termination="${t.id}">
<td>${t.service}</td><td><code>${t.instance}</code></td><td>${t.mode}</td>
<td class="outcome">${t.outcome}</td><td>${age(t.startedAt)}</td>
<td class="detection">${num(t.detectionMs ?? null, 0)}</td><td class="recovery">${num(t.recoveryMs ?? null, 0)}</td>
<td>${t.replacement ?? '—'}</td><td>${t.failedRequests ?? '—'}</td><td class="reason">${t.reason}</td>
</tr>`,
  );
  const run = report?.run;
  const heading =
    report === undefined || (run === undefined && terminations.length === 0)
      ? html`<p class="muted" id="no-chaos">No chaos run yet: kiln chaos run, or opt services in to the schedule.</p>`
      : run
        ? html`<p id="chaos-run">Run <code>${run.id}</code> by ${run.createdBy}, ${run.phase}: ${run.message}</p>`
        : html`<p id="chaos-run">Terminations of the last 24 hours.</p>`;
  const table = html`<table id="terminations">
<thead><tr><th>Service</th><th>Instance</th><th>Mode</th><th>Outcome</th><th>When</th><th>Detected (ms)</th><th>Recovered (ms)</th><th>Replacement</th><th>Failed requests</th><th>Reason</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
  return page(
    'Chaos',
    session,
    '/ui/chaos',
    html`<h1>Chaos</h1>
${heading}
${chaosSummary(report)}
<h2>Time to recover</h2>
<div id="mttr-chart" class="chart" data-mttr="${JSON.stringify(recovery)}"></div>
<h2>Terminations</h2>
${scroll(table)}`,
  );
}

export async function auditPage(plane: ControlPlane, session: Session): Promise<string> {
  const records = await plane.audit(200);
  const rows = records.map(
    (r) => html`<tr data-seq="${r.seq}">
<td class="at"><time datetime="${r.at}">${r.at}</time></td><td class="actor">${r.actor}</td>
<td class="action">${r.action}</td><td class="target">${r.target}</td>
<td class="result ${r.result === 'ok' ? 'ok' : 'bad'}">${r.result}</td><td class="detail">${r.detail}</td>
</tr>`,
  );
  const table = html`<table id="audit">
<thead><tr><th>When</th><th>Actor</th><th>Action</th><th>Target</th><th>Result</th><th>Detail</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
  return page(
    'Audit',
    session,
    '/ui/audit',
    html`<h1>Audit log</h1>
<p class="muted">The last ${records.length} changes, newest first.</p>
${scroll(table)}`,
  );
}
