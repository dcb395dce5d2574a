#!/usr/bin/env node
// kiln's executable: runs the compiled CLI. `npm run build` (part of `npm test` and the quick start) makes dist/.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
