import { ConflictError, NotFoundError } from '../errors/index.js';
import type { ImageSpec } from '../spec/index.js';

/** True when `from` names another kiln image rather than scratch or a Debian suite. */
export function isImageBase(from: string): boolean {
  return from !== 'scratch' && !from.startsWith('debian:');
}

/**
 * The images to bake, bases first: the requested ones (all when `names` is empty) and every image
 * they are built on. A cycle of `from` references is a ConflictError naming the cycle.
 */
export function bakeOrder(images: readonly ImageSpec[], names: readonly string[]): ImageSpec[] {
  const byName = new Map(images.map((i) => [i.name, i]));
  for (const n of names) {
    if (!byName.has(n)) {
      throw new NotFoundError(
        `no image named "${n}" in the config; declared: ${[...byName.keys()].join(', ') || 'none'}`,
      );
    }
  }
  const wanted = names.length ? names : images.map((i) => i.name);
  const order: ImageSpec[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, trail: string[]): void => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(name)), name];
      throw new ConflictError(
        `images are built on each other in a cycle: ${cycle.join(' → ')}; break it by changing one "from"`,
      );
    }
    const img = byName.get(name)!;
    state.set(name, 'visiting');
    if (isImageBase(img.from)) {
      if (!byName.has(img.from))
        throw new NotFoundError(`image "${name}" is built on "${img.from}", which is not declared`);
      visit(img.from, [...trail, name]);
    }
    state.set(name, 'done');
    order.push(img);
  };
  for (const n of [...wanted].sort()) visit(n, []);
  return order;
}

/** The Debian suite an image's packages come from, following `from` through its bases. */
export function suiteOf(images: readonly ImageSpec[], image: ImageSpec): string | undefined {
  const seen = new Set<string>();
  for (let img: ImageSpec | undefined = image; img && !seen.has(img.name);) {
    if (img.from.startsWith('debian:')) return img.from.slice('debian:'.length);
    seen.add(img.name);
    const from: string = img.from;
    img = images.find((i) => i.name === from);
  }
  return undefined;
}
