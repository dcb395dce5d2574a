import type { ImageInput, StackInput } from './schema.js';
import type { ServiceInput } from './service.js';

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

/**
 * Declares a service: replicas of an image behind the router, released only by replacement.
 *
 * @example
 * defineService({ name: 'web', image: 'hello', replicas: 3, port: 8080, health: { http: '/healthz' } });
 */
export function defineService<const T extends ServiceInput>(service: T): T {
  return service;
}
