#!/usr/bin/env node
// kiln's executable: runs the compiled CLI, bundled into one file (scripts/bundle-cli.mjs says why).
// `npm run build` (part of `npm test` and the quick start) makes dist/.
import { main } from '../dist/cli/kiln.mjs';

process.exitCode = await main(process.argv);
