/**
 * kiln's public API for config files: `import { defineImage, defineStack } from 'kiln'`.
 */
export { defineImage, defineService, defineStack, DEFAULT_EXCLUDES, DEFAULT_APP_DEST } from './spec/index.js';
export type {
  ImageInput,
  ServiceInput,
  StackInput,
  ImageSpec,
  ServiceSpec,
  StackSpec,
} from './spec/index.js';
