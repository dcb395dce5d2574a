/** The dashboard's page frame (head, nav, who is logged in) and small formatting helpers. */
import type { TokenScope } from '../../state/index.js';
import { html, type Html, type Interpolation } from './html.js';

/** The logged-in token behind a dashboard request. */
export interface Session {
  readonly name: string;
  readonly scopes: readonly TokenScope[];
}

const NAV: readonly (readonly [string, string])[] = [
  ['/ui/', 'Overview'],
  ['/ui/images', 'Images'],
  ['/ui/chaos', 'Chaos'],
  ['/ui/audit', 'Audit'],
];

function head(title: string): Html {
  return html`<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${title} · kiln</title>
<link rel="stylesheet" href="/ui/assets/uPlot.min.css">
<link rel="stylesheet" href="/ui/assets/dashboard.css">
<script src="/ui/assets/htmx.min.js" defer></script>
<script src="/ui/assets/uPlot.iife.min.js" defer></script>
<script src="/ui/assets/dashboard.js" defer></script>
</head>`;
}

/** A whole page for a logged-in session: nav, `#whoami`, and `body` in `<main>`. */
export function page(title: string, session: Session, current: string, body: Interpolation): string {
  const links = NAV.map(
    ([href, label]) =>
      html`<a href="${href}"${current === href ? html` aria-current="page"` : ''}>${label}</a>`,
  );
  return html`<!doctype html>
<html lang="en">
${head(title)}
<body data-live>
<header class="top">
<span class="brand">kiln</span>
<nav>${links}</nav>
<span id="whoami">${session.name} (${session.scopes.join(', ') || 'no scopes'})</span>
<form class="inline" id="logout" method="post" action="/ui/logout"><button type="submit">Log out</button></form>
</header>
<main>
${body}
</main>
</body>
</html>
`.value;
}

/** The login page, with why the last attempt failed. */
export function loginPage(error?: string): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Log in · kiln</title>
<link rel="stylesheet" href="/ui/assets/dashboard.css">
</head>
<body>
<main class="login">
<h1>kiln</h1>
<form id="login" method="post" action="/ui/login">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required placeholder="kiln_…">
${error === undefined ? '' : html`<p id="login-error" class="error">${error}</p>`}
<button type="submit">Log in</button>
</form>
<p class="muted">Use a token of this control plane (the admin token is in .kiln/admin-token; make others with kiln token create).</p>
</main>
</body>
</html>
`.value;
}

/** An error page for a logged-in session (404 service, refused request …). */
export function errorPage(session: Session, status: number, message: string): string {
  return page(`Error ${status}`, session, '', html`<h1>Error ${status}</h1><p class="error">${message}</p>`);
}

/** `sha256:0123456789ab` — the first 12 hex digits, the whole digest in a tooltip. */
export function shortDigest(digest: string | null | undefined): Html {
  if (!digest) return html`—`;
  const hex = digest.startsWith('sha256:') ? digest.slice(7, 19) : digest.slice(0, 12);
  return html`<code class="digest" title="${digest}">${hex}</code>`;
}

/** 1.2 MiB. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** How long ago `iso` was, such as `3m` or `2h`, with the time in a tooltip. */
export function age(iso: string, now = Date.now()): Html {
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return html`${iso}`;
  const s = Math.max(0, Math.round(ms / 1000));
  const text =
    s < 60
      ? `${s}s`
      : s < 3600
        ? `${Math.floor(s / 60)}m`
        : s < 86400
          ? `${Math.floor(s / 3600)}h`
          : `${Math.floor(s / 86400)}d`;
  return html`<time datetime="${iso}" title="${iso}">${text}</time>`;
}

/** A number with at most `digits` decimals, or — for null. */
export function num(n: number | null | undefined, digits = 3): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return String(Number(n.toFixed(digits)));
}

/** A table in a horizontally scrolling box, for narrow screens. */
export function scroll(table: Html): Html {
  return html`<div class="scroll">${table}</div>`;
}
