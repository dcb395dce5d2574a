/** The `spec` context: the typed config API, its schemas, and loading `kiln.config.ts` / `kiln.yaml`. */
export * from './schema.js';
export * from './define.js';
export * from './load.js';
export * from './service.js';
export * from './chaos.js';
export * from './trust.js';
export * from './units.js';
export * from './targets.js';
