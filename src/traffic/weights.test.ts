import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors/index.js';
import { SmoothWeightedPicker, smoothWeightedOrder, splitWeights, spreadWeight } from './weights.js';

describe('smoothWeightedOrder', () => {
  it.each([
    { weights: [5, 1, 1], n: 7, order: 'aabacaa' }, // nginx's documented example
    { weights: [1, 1, 1], n: 6, order: 'abcabc' },
    { weights: [2, 1], n: 6, order: 'abaaba' },
    { weights: [1, 0, 1], n: 4, order: 'acac' },
    { weights: [0, 0], n: 2, order: '--' },
    { weights: [], n: 1, order: '-' },
    { weights: [3], n: 3, order: 'aaa' },
  ])('weights $weights → $order', ({ weights, n, order }) => {
    const letters = smoothWeightedOrder(weights, n)
      .map((i) => (i === -1 ? '-' : String.fromCharCode(97 + i)))
      .join('');
    expect(letters).toBe(order);
  });

  it.each([
    { weights: [1, 3], n: 1000, counts: [250, 750] },
    { weights: [256, 1], n: 257, counts: [256, 1] },
    { weights: [10, 20, 70], n: 100, counts: [10, 20, 70] },
  ])('gives exact shares over a full cycle: $weights', ({ weights, n, counts }) => {
    const got = weights.map(() => 0);
    for (const i of smoothWeightedOrder(weights, n)) got[i]!++;
    expect(got).toEqual(counts);
  });
});

describe('SmoothWeightedPicker.pick with skip', () => {
  it.each([
    { weights: [1, 1, 1], skipped: [0], picks: [1, 2, 1, 2] },
    { weights: [1, 1], skipped: [0, 1], picks: [-1] },
    { weights: [5, 1], skipped: [0], picks: [1, 1] },
  ])('skips $skipped of $weights', ({ weights, skipped, picks }) => {
    const picker = new SmoothWeightedPicker(weights);
    const skip = (i: number): boolean => skipped.includes(i);
    expect(picks.map(() => picker.pick(skip))).toEqual(picks);
  });
});

describe('splitWeights', () => {
  it.each([
    { total: 256, percent: 10, canary: 26, stable: 230 },
    { total: 100, percent: 25, canary: 25, stable: 75 },
    { total: 100, percent: 0, canary: 0, stable: 100 },
    { total: 100, percent: 100, canary: 100, stable: 0 },
    { total: 100, percent: 0.1, canary: 1, stable: 99 },
    { total: 100, percent: 99.9, canary: 99, stable: 1 },
    { total: 1, percent: 50, canary: 1, stable: 0 },
    { total: 0, percent: 50, canary: 0, stable: 0 },
  ])('$percent % of $total → canary $canary, stable $stable', ({ total, percent, canary, stable }) => {
    expect(splitWeights(total, percent)).toEqual({ canary, stable });
  });

  it.each([
    { total: -1, percent: 10 },
    { total: 1.5, percent: 10 },
    { total: 100, percent: 101 },
    { total: 100, percent: Number.NaN },
  ])('rejects total $total, percent $percent', ({ total, percent }) => {
    expect(() => splitWeights(total, percent)).toThrow(ValidationError);
  });
});

describe('spreadWeight', () => {
  it.each([
    { total: 230, count: 3, shares: [77, 77, 76] },
    { total: 26, count: 1, shares: [26] },
    { total: 10, count: 4, shares: [3, 3, 2, 2] },
    { total: 5, count: 0, shares: [] },
    { total: 600, count: 2, shares: [256, 256] },
  ])('$total over $count → $shares', ({ total, count, shares }) => {
    expect(spreadWeight(total, count)).toEqual(shares);
  });

  it('rejects a negative count', () => {
    expect(() => spreadWeight(10, -1)).toThrow(ValidationError);
  });
});
