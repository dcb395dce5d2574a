/**
 * The dashboard's static files under `/ui/assets/`: htmx and uPlot from node_modules (resolved
 * from this module, so it works from src/ and dist/ alike, read once) and the dashboard's own.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { DASHBOARD_CSS, DASHBOARD_JS } from './client.js';

/** One static file and how long browsers may keep it. */
export interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly cacheControl: string;
}

/** Vendored files are pinned in package.json: their content never changes under a name. */
const VENDOR_CACHE = 'public, max-age=31536000, immutable';
/** The dashboard's own files change with kiln upgrades. */
const OWN_CACHE = 'public, max-age=86400';

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

const VENDOR: Readonly<Record<string, { readonly module: string; readonly type: string }>> = {
  'htmx.min.js': { module: 'htmx.org/dist/htmx.min.js', type: JS },
  'uPlot.iife.min.js': { module: 'uplot/dist/uPlot.iife.min.js', type: JS },
  'uPlot.min.css': { module: 'uplot/dist/uPlot.min.css', type: CSS },
};

const cache = new Map<string, Asset>();

/** The asset named `name` (such as `htmx.min.js`), or undefined when there is none. */
export function asset(name: string): Asset | undefined {
  const known = cache.get(name);
  if (known) return known;
  let found: Asset | undefined;
  if (name === 'dashboard.js') found = { type: JS, body: Buffer.from(DASHBOARD_JS), cacheControl: OWN_CACHE };
  else if (name === 'dashboard.css')
    found = { type: CSS, body: Buffer.from(DASHBOARD_CSS), cacheControl: OWN_CACHE };
  else if (Object.hasOwn(VENDOR, name)) {
    const vendor = VENDOR[name]!;
    const file = createRequire(import.meta.url).resolve(vendor.module);
    found = { type: vendor.type, body: readFileSync(file), cacheControl: VENDOR_CACHE };
  }
  if (found) cache.set(name, found);
  return found;
}
