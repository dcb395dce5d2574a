import type { ImageInput, StackInput } from './schema.js';

/**
 * Declares an image. Returns its argument unchanged; it exists for the types.
 *
 * @example
 * export const base = defineImage({ name: 'base', from: 'debian:bookworm', packages: ['ca-certificates'] });
 */
export function defineImage<const T extends ImageInput>(image: T): T {
  return image;
}

/**
 * Declares the stack: the archive, the images and (later) the services. A `kiln.config.ts` default-exports one.
 *
 * @example
 * export default defineStack({ images: [base, defineImage({ name: 'api', from: 'base', app: { src: './api' } })] });
 */
export function defineStack<const T extends StackInput>(stack: T): T {
  return stack;
}
