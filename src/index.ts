/**
 * kiln's public API for config files: `import { defineImage, defineStack } from 'kiln'`.
 */
export { defineImage, defineStack, DEFAULT_EXCLUDES, DEFAULT_APP_DEST } from './spec/index.js';
export type { ImageInput, StackInput, ImageSpec, StackSpec } from './spec/index.js';
