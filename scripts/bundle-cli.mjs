#!/usr/bin/env node
// Bundles the compiled CLI (dist/cli/main.js and everything it imports) into one file,
// dist/cli/kiln.mjs, which bin/kiln.js runs. Node's ES module loader resolves, reads and links
// every file of a module graph one by one: about 900 files for kiln's CLI (580 of kiln's own,
// through the contexts' index.ts barrels, and kysely's 265), which cost 0.3 s at every start.
// One file starts in a third of the time (bench/results: `kiln --version`, bundled and not).
//
// Left out, and loaded from node_modules as usual: native addons (better-sqlite3, @napi-rs/lzma),
// jiti (which loads kiln.config.ts), and @kubernetes/client-node (imported only by `kiln render k8s
// --apply`, and large). The bundle lives in dist/cli/, the depth of the files it was made from, so
// paths kiln finds from its own location (package.json, dist/index.js, the router's entry) hold.
import { build } from 'esbuild';
import { rename } from 'node:fs/promises';
import path from 'node:path';

const outfile = path.join(import.meta.dirname, '../dist/cli/kiln.mjs');
const partial = `${outfile}.partial-${process.pid}`;
await build({
  entryPoints: [path.join(import.meta.dirname, '../dist/cli/main.js')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: partial,
  external: ['better-sqlite3', '@napi-rs/lzma', 'jiti', '@kubernetes/client-node'],
  // The CommonJS packages bundled (commander, yaml's parts) call require() for node: builtins.
  banner: {
    js: "import { createRequire as __kilnRequire } from 'node:module'; const require = __kilnRequire(import.meta.url);",
  },
  legalComments: 'eof',
  logLevel: 'warning',
});
// Written beside, then renamed: a build that fails midway leaves the last good bundle.
await rename(partial, outfile);
