import { describe, expect, it } from 'vitest';
import { ConflictError } from '../errors/index.js';
import { imageSchema } from '../spec/index.js';
import { bakeOrder, suiteOf } from './order.js';

const img = (name: string, from: string) => imageSchema.parse({ name, from });

describe('bakeOrder', () => {
  const images = [
    img('app', 'base'),
    img('base', 'debian:bookworm'),
    img('tool', 'scratch'),
    img('web', 'app'),
  ];

  it.each([
    [[], ['base', 'app', 'tool', 'web']],
    [['web'], ['base', 'app', 'web']],
    [['tool'], ['tool']],
    [
      ['app', 'base'],
      ['base', 'app'],
    ],
  ])('orders %j as %j, bases first', (names, expected) => {
    expect(bakeOrder(images, names).map((i) => i.name)).toEqual(expected);
  });

  it('names the cycle', () => {
    const cyclic = [img('a', 'b'), img('b', 'c'), img('c', 'a')];
    expect(() => bakeOrder(cyclic, ['a'])).toThrow(ConflictError);
    expect(() => bakeOrder(cyclic, ['a'])).toThrow('a → b → c → a');
  });

  it('refuses an unknown name', () => {
    expect(() => bakeOrder(images, ['nope'])).toThrow(
      /no image named "nope".*declared: app, base, tool, web/,
    );
  });

  it('finds the suite through bases', () => {
    expect(suiteOf(images, images[3]!)).toBe('bookworm');
    expect(suiteOf(images, images[2]!)).toBeUndefined();
  });
});
