/**
 * The dashboard's service page: its releases, instances and rollout (each a section that
 * re-fetches itself on server events), and the deploy, rollback, promote and abort controls.
 */
import { NotFoundError } from '../../errors/index.js';
import { hasScope } from '../auth.js';
import type { ControlPlane, RolloutDetailJson } from '../types.js';
import { html, type Html } from './html.js';
import { age, num, page, scroll, shortDigest, type Session } from './layout.js';

/** The sections that refresh themselves, by their fragment name. */
export const SECTIONS = ['releases', 'instances', 'rollout'] as const;
export type SectionName = (typeof SECTIONS)[number];

const base = (service: string) => `/ui/services/${encodeURIComponent(service)}`;

/** The attributes that make a section re-fetch itself when the page hears of a change. */
function live(service: string, section: SectionName): Html {
  return html`id="${section}" hx-get="${base(service)}/fragment/${section}" hx-trigger="kiln-change from:body" hx-swap="outerHTML"`;
}

export async function releasesSection(plane: ControlPlane, service: string): Promise<Html> {
  const releases = await plane.releases(service);
  const rows = releases.map(
    (r) => html`<tr data-release="${r.name}"${r.current ? html` class="current"` : ''}>
<td class="name">${r.name}</td><td class="digest">${shortDigest(r.digest)}</td>
<td class="created-by">${r.createdBy}</td><td class="created-at"><time datetime="${r.createdAt}">${r.createdAt}</time></td>
<td class="reason">${r.reason}</td><td class="current-marker">${r.current ? 'current' : ''}</td>
</tr>`,
  );
  const table = html`<table>
<thead><tr><th>Release</th><th>Digest</th><th>By</th><th>Created</th><th>Reason</th><th></th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
  return html`<section ${live(service, 'releases')}>
<h2>Releases</h2>
${scroll(table)}
</section>`;
}

export async function instancesSection(plane: ControlPlane, service: string): Promise<Html> {
  const instances = await plane.instances(service);
  const rows = instances.map(
    (i) => html`<tr data-instance="${i.id}">
<td class="id"><code>${i.id}</code></td><td class="state ${i.state}">${i.state}</td>
<td class="release">${i.release}</td><td class="digest">${shortDigest(i.digest)}</td>
<td class="age">${age(i.createdAt)}</td><td class="role">${i.role ?? '—'}</td>
<td class="health ${i.health.status}">${i.health.status}${i.health.failures ? ` (${i.health.failures} failures)` : ''}</td>
<td class="port">${i.port ?? '—'}</td>
</tr>`,
  );
  const table = html`<table>
<thead><tr><th>Instance</th><th>State</th><th>Release</th><th>Digest</th><th>Age</th><th>Role</th><th>Health</th><th>Port</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
  return html`<section ${live(service, 'instances')}>
<h2>Instances</h2>
${scroll(table)}
${instances.length === 0 ? html`<p class="muted">No live instances.</p>` : ''}
</section>`;
}

async function rolloutOf(plane: ControlPlane, service: string): Promise<RolloutDetailJson | undefined> {
  try {
    return await plane.serviceRollout(service);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** True while a canary rollout can still be promoted or aborted. */
function canaryInProgress(r: RolloutDetailJson | undefined): boolean {
  return r !== undefined && r.strategy === 'canary' && !r.done;
}

/** Requests per backend (the router's counters) and, for a canary, its configured weight. */
async function weights(
  plane: ControlPlane,
  service: string,
  r: RolloutDetailJson | undefined,
): Promise<Html> {
  const [metrics, instances] = await Promise.all([plane.metrics(service), plane.instances(service)]);
  const byId = new Map(instances.map((i) => [i.id, i]));
  const total = metrics.reduce((n, m) => n + m.requests, 0);
  const rows = metrics.map((m) => {
    const i = byId.get(m.backendId);
    const share = total === 0 ? '—' : `${num((100 * m.requests) / total, 1)} %`;
    return html`<tr data-backend="${m.backendId}">
<td><code>${m.backendId}</code></td><td>${i?.release ?? '—'}</td><td class="role">${i?.role ?? '—'}</td>
<td class="requests">${m.requests}</td><td class="share">${share}</td>
<td class="errors">${m.responses['5xx']} / ${m.errors}</td><td>${m.inFlight}</td>
</tr>`;
  });
  const table = html`<table class="weights">
<thead><tr><th>Backend</th><th>Release</th><th>Role</th><th>Requests</th><th>Share</th><th>5xx / errors</th><th>In flight</th></tr></thead>
<tbody>${rows}</tbody>
</table>`;
  const c = r?.canary;
  return html`${c ? html`<p class="canary-weight">Canary weight: <strong>${c.weight} %</strong> (step ${c.step} of ${c.steps.length})</p>` : ''}
${scroll(table)}`;
}

function canaryAnalysis(r: RolloutDetailJson): Html {
  const looks = r.canary?.looks ?? [];
  const latest = looks.at(-1);
  const verdicts = (latest?.metrics ?? []).map(
    (m) => html`<tr data-metric="${m.name}">
<td class="name">${m.name}${m.critical ? html` <span class="muted">(critical)</span>` : ''}</td>
<td class="classification ${m.classification}">${m.classification}</td>
<td class="p">${num(m.pValue, 4)}</td><td class="alpha">${num(m.alpha, 4)}</td>
<td class="effect">${num(m.effect, 4)}</td>
<td class="band">±${num(m.tolerance, 4)} [${num(m.shift.lower, 3)}, ${num(m.shift.upper, 3)}]</td>
<td class="reason">${m.reason}</td>
</tr>`,
  );
  const look = latest
    ? html`<p class="look">Look ${latest.look}/${latest.looks} of step ${latest.step} (${latest.weight} %): score ${num(latest.score, 1)}, <span class="${latest.decision}">${latest.decision}</span> — ${latest.reason}</p>`
    : html`<p class="muted">No look yet.</p>`;
  const table = html`<table id="verdicts">
<thead><tr><th>Metric</th><th>Verdict</th><th>p</th><th>α</th><th>Effect</th><th>Band (tolerance, shift CI)</th><th>Reason</th></tr></thead>
<tbody>${verdicts}</tbody>
</table>`;
  return html`<h3>Canary score per look</h3>
<div id="score-chart" class="chart" data-scores="${JSON.stringify(looks.map((l) => l.score))}"></div>
${look}
${scroll(table)}`;
}

/** `#rollout`: the phase, traffic per backend, the canary's analysis and its controls. */
export async function rolloutSection(
  plane: ControlPlane,
  service: string,
  session: Session,
  error?: string,
): Promise<Html> {
  const r = await rolloutOf(plane, service);
  const controls =
    hasScope(session.scopes, 'deploy') && canaryInProgress(r)
      ? html`<div class="actions">
<button type="button" data-action="promote" hx-post="${base(service)}/rollout/promote" hx-target="#rollout" hx-swap="outerHTML">Promote</button>
<button type="button" data-action="abort" hx-post="${base(service)}/rollout/abort" hx-target="#rollout" hx-swap="outerHTML">Abort</button>
</div>`
      : '';
  const summary =
    r === undefined
      ? html`<p class="muted">No rollout yet.</p>`
      : html`<p><span class="phase ${r.phase}">${r.phase}</span> ${r.strategy} ${r.from ?? '∅'} → ${r.to}
<span class="muted">(${r.id}, updated ${age(r.updatedAt)})</span></p>
${r.message ? html`<p class="message">${r.message}</p>` : ''}`;
  return html`<section ${live(service, 'rollout')}>
<h2>Rollout</h2>
${error === undefined ? '' : html`<p class="error">${error}</p>`}
${summary}
${controls}
${await weights(plane, service, r)}
${r?.strategy === 'canary' ? canaryAnalysis(r) : ''}
</section>`;
}

/** The deploy form and the rollback button, for sessions that may deploy. */
async function actions(plane: ControlPlane, service: string, session: Session): Promise<Html> {
  if (!hasScope(session.scopes, 'deploy')) {
    return html`<p class="muted" id="read-only">Read-only session: deploying and rolling back need a token with the deploy scope.</p>`;
  }
  const images = await plane.images();
  const options = images.map(
    (i) => html`<option value="${i.name}">${i.name} (${i.digest.slice(7, 19)})</option>`,
  );
  return html`<section id="actions">
<h2>Change</h2>
<div class="actions">
<button type="button" data-action="rollback" hx-post="${base(service)}/rollback" hx-target="#rollout" hx-swap="outerHTML">Roll back to the previous release</button>
</div>
<form id="deploy" class="actions" hx-post="${base(service)}/deploy" hx-target="#rollout" hx-swap="outerHTML">
<label for="deploy-image">Image</label>
<select id="deploy-image" name="image">
<option value="">the service's own image</option>
${options}
</select>
<input name="reason" placeholder="reason" maxlength="1000">
<button type="submit">Deploy</button>
</form>
</section>`;
}

export async function servicePage(plane: ControlPlane, service: string, session: Session): Promise<string> {
  const [status] = await plane.status(service);
  const [releases, instances, rollout, controls] = await Promise.all([
    releasesSection(plane, service),
    instancesSection(plane, service),
    rolloutSection(plane, service, session),
    actions(plane, service, session),
  ]);
  const about = status
    ? html`<p class="muted"><a href="${status.url}">${status.url}</a> · ${status.replicas} replicas · ${status.strategy} · tier ${status.tier} · region local${status.standby ? ` · standby ${status.standby.release}` : ''}</p>`
    : '';
  return page(
    service,
    session,
    '',
    html`<h1>${service}</h1>
${about}
${controls}
${rollout}
${releases}
${instances}`,
  );
}
