/**
 * The rank-sum test and the Hodges-Lehmann shift against R 4.2.2's `wilcox.test` (stats package,
 * defaults: exact below 50 a side without ties, else normal approximation with tie correction and
 * continuity correction). Each value was printed by the R expression in the comment next to it,
 * with `options(digits = 17)`; R is not needed to run these tests.
 */
import { describe, expect, it } from 'vitest';
import { hodgesLehmann } from './hodges-lehmann.js';
import { mannWhitney, type Alternative } from './mann-whitney.js';
import { tally, tallyOf } from './tally.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);
const rep = (values: number[], times: number[]): number[] =>
  values.flatMap((v, i) => Array<number>(times[i]!).fill(v));

// R: x1 <- c(0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46); y1 <- c(1.15, 0.88, 0.90, 0.74, 1.21)
const x1 = [0.8, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
const y1 = [1.15, 0.88, 0.9, 0.74, 1.21];
// R: x2 <- c(1,2,2,3,3,3,4,5); y2 <- c(2,3,4,4,5,5,6,7,7)
const x2 = [1, 2, 2, 3, 3, 3, 4, 5];
const y2 = [2, 3, 4, 4, 5, 5, 6, 7, 7];
// R: x4 <- (((1:60)*7919) %% 1000)/10; y4 <- (((1:70)*104729) %% 997)/10 + 5   (one tie)
const x4 = range(60).map((i) => ((i * 7919) % 1000) / 10);
const y4 = range(70).map((j) => ((j * 104729) % 997) / 10 + 5);
// R: x8 <- x4 + 30.05; y8 <- y4   (no ties: any(duplicated(c(x8, y8))) is FALSE)
const x8 = x4.map((v) => v + 30.05);
// R: v <- c(5,10,25,50,100,250); x5 <- rep(v, c(40,80,60,30,10,2)); y5 <- rep(v, c(35,70,70,35,15,5))
const buckets = [5, 10, 25, 50, 100, 250];
const x5 = [40, 80, 60, 30, 10, 2];
const y5 = [35, 70, 70, 35, 15, 5];
// R: x6 <- c(rep(1,7), rep(0,993)); y6 <- c(rep(1,1), rep(0,999))
const x6 = rep([1, 0], [7, 993]);
const y6 = rep([1, 0], [1, 999]);
// R: x7 <- (((1:40)*37) %% 101) + 0.25; y7 <- ((1:45)*53) %% 103   (no ties)
const x7 = range(40).map((i) => ((i * 37) % 101) + 0.25);
const y7 = range(45).map((j) => (j * 53) % 103);

interface TestCase {
  readonly name: string;
  readonly x: number[];
  readonly y: number[];
  readonly alternative: Alternative;
  readonly w: number;
  readonly p: number;
  readonly exact: boolean;
}

// w: wilcox.test(x, y, alternative = a)$statistic;  p: wilcox.test(x, y, alternative = a)$p.value
const TESTS: TestCase[] = [
  // small, untied: exact distribution
  { name: 'small untied', x: x1, y: y1, alternative: 'two-sided', w: 35, p: 0.2544122544122544, exact: true },
  { name: 'small untied', x: x1, y: y1, alternative: 'greater', w: 35, p: 0.1272061272061272, exact: true },
  { name: 'small untied', x: x1, y: y1, alternative: 'less', w: 35, p: 0.89676989676989671, exact: true },
  { name: 'tiny', x: [1, 2], y: [3, 4, 5], alternative: 'two-sided', w: 0, p: 0.2, exact: true },
  {
    name: '40 vs 45 untied',
    x: x7,
    y: y7,
    alternative: 'two-sided',
    w: 990,
    p: 0.43266099875273467,
    exact: true,
  },
  {
    name: '40 vs 45 untied',
    x: x7,
    y: y7,
    alternative: 'greater',
    w: 990,
    p: 0.21633049937636734,
    exact: true,
  },
  { name: '40 vs 45 untied', x: x7, y: y7, alternative: 'less', w: 990, p: 0.78623716193629001, exact: true },
  {
    name: '40 vs 45 swapped',
    x: y7,
    y: x7,
    alternative: 'greater',
    w: 810,
    p: 0.78623716193629001,
    exact: true,
  }, // 40*45 - 990
  // small, tied: normal approximation with tie correction and continuity correction
  {
    name: 'small tied',
    x: x2,
    y: y2,
    alternative: 'two-sided',
    w: 13.5,
    p: 0.031758957148063732,
    exact: false,
  },
  { name: 'small tied', x: x2, y: y2, alternative: 'greater', w: 13.5, p: 0.98761727744481165, exact: false },
  { name: 'small tied', x: x2, y: y2, alternative: 'less', w: 13.5, p: 0.015879478574031866, exact: false },
  // 60 vs 70: normal approximation
  {
    name: '60 vs 70, one tie',
    x: x4,
    y: y4,
    alternative: 'two-sided',
    w: 1966.5,
    p: 0.53451292099226366,
    exact: false,
  },
  {
    name: '60 vs 70, one tie',
    x: x4,
    y: y4,
    alternative: 'greater',
    w: 1966.5,
    p: 0.73427757153635997,
    exact: false,
  },
  {
    name: '60 vs 70, one tie',
    x: x4,
    y: y4,
    alternative: 'less',
    w: 1966.5,
    p: 0.26725646049613183,
    exact: false,
  },
  {
    name: '60 vs 70 shifted',
    x: x8,
    y: y4,
    alternative: 'two-sided',
    w: 3079,
    p: 4.883377764010775e-6,
    exact: false,
  },
  {
    name: '60 vs 70 shifted',
    x: x8,
    y: y4,
    alternative: 'greater',
    w: 3079,
    p: 2.4416888820053875e-6,
    exact: false,
  },
  {
    name: '60 vs 70 shifted',
    x: x8,
    y: y4,
    alternative: 'less',
    w: 3079,
    p: 0.99999761214272853,
    exact: false,
  },
  // histogram-like: 222 vs 230 values on 6 buckets
  {
    name: 'histogram',
    x: rep(buckets, x5),
    y: rep(buckets, y5),
    alternative: 'two-sided',
    w: 23105,
    p: 0.070458584552156076,
    exact: false,
  },
  {
    name: 'histogram',
    x: rep(buckets, x5),
    y: rep(buckets, y5),
    alternative: 'greater',
    w: 23105,
    p: 0.96482863055197254,
    exact: false,
  },
  {
    name: 'histogram',
    x: rep(buckets, x5),
    y: rep(buckets, y5),
    alternative: 'less',
    w: 23105,
    p: 0.035229292276078038,
    exact: false,
  },
  // 0/1 samples: 7 errors in 1,000 against 1 in 1,000
  {
    name: 'binary',
    x: x6,
    y: y6,
    alternative: 'two-sided',
    w: 503000,
    p: 0.033612478383170719,
    exact: false,
  },
  { name: 'binary', x: x6, y: y6, alternative: 'greater', w: 503000, p: 0.016806239191585359, exact: false },
];

function closeRelative(actual: number, expected: number, tolerance: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(tolerance * Math.abs(expected));
}

describe('mannWhitney against R wilcox.test', () => {
  it.each(TESTS)('$name, $alternative: W=$w, p=$p', ({ x, y, alternative, w, p, exact }) => {
    const r = mannWhitney(tally(x), tally(y), alternative);
    expect(r.u).toBe(w);
    expect(r.exact).toBe(exact);
    expect(r.n).toBe(x.length);
    expect(r.m).toBe(y.length);
    expect(r.rankSumX).toBe(w + (x.length * (x.length + 1)) / 2);
    closeRelative(r.pValue, p, 1e-9);
  });

  it('gives the same answer from a histogram as from its raw samples', () => {
    const raw = mannWhitney(tally(rep(buckets, x5)), tally(rep(buckets, y5)), 'less');
    const hist = mannWhitney(
      tallyOf(buckets.map((b, i) => [b, x5[i]!] as const)),
      tallyOf(buckets.map((b, i) => [b, y5[i]!] as const).reverse()),
      'less',
    );
    expect(hist).toEqual(raw);
  });

  it('reports the continuity-corrected z', () => {
    // qnorm(wilcox.test(x2, y2, alternative = "less")$p.value)
    expect(mannWhitney(tally(x2), tally(y2), 'less').z).toBeCloseTo(-2.1474313489251862, 12);
  });

  it('gives p = 1, not NaN, when every value is tied', () => {
    for (const n of [500, 3_000_001]) {
      const zeros = tallyOf([[0, n]]);
      for (const alt of ['two-sided', 'greater', 'less'] as const) {
        expect(mannWhitney(zeros, zeros, alt)).toMatchObject({ pValue: 1, z: 0, u: (n * n) / 2 });
      }
    }
  });

  it('refuses an empty side', () => {
    expect(() => mannWhitney(tally([]), tally([1]), 'greater')).toThrow(/at least one value/);
  });
});

interface ShiftCase {
  readonly name: string;
  readonly x: number[];
  readonly y: number[];
  readonly confidence: number;
  /** median(outer(x, y, "-")) */
  readonly estimate: number;
  readonly lower: number;
  readonly upper: number;
  /** wilcox.test(x, y, conf.int = TRUE)$conf.int when it is asymptotic (found by uniroot, tol 1e-4) */
  readonly r?: readonly [number, number];
}

// Untied under 50 a side: estimate and interval are R's exact ones,
//   wilcox.test(x, y, conf.int = TRUE, conf.level = c)$estimate and $conf.int.
// Otherwise: estimate = median(outer(x, y, "-")) and interval = c(d[k], d[n*m+1-k]) with
//   d <- sort(outer(x, y, "-")); r <- rank(c(x, y)); tt <- table(r)
//   sig <- sqrt((n*m/12)*((n+m+1) - sum(tt^3-tt)/((n+m)*(n+m-1)))); k <- floor(n*m/2 + 0.5 - qnorm(0.975)*sig)
// and R's asymptotic interval (r) agrees with it to uniroot's tolerance.
const SHIFTS: ShiftCase[] = [
  {
    name: 'small untied',
    x: x1,
    y: y1,
    confidence: 0.95,
    estimate: 0.30500000000000005,
    lower: -0.15000000000000002,
    upper: 0.7599999999999999,
  },
  {
    name: 'small untied 90%',
    x: x1,
    y: y1,
    confidence: 0.9,
    estimate: 0.30500000000000005,
    lower: -0.07999999999999996,
    upper: 0.71999999999999997,
  },
  {
    name: 'small untied 99%',
    x: x1,
    y: y1,
    confidence: 0.99,
    estimate: 0.30500000000000005,
    lower: -0.34999999999999987,
    upper: 1.0099999999999998,
  },
  {
    name: 'tiny (qwilcox gives 0, R uses 1)',
    x: [1, 2],
    y: [3, 4, 5],
    confidence: 0.95,
    estimate: -2.5,
    lower: -4,
    upper: -1,
  },
  { name: '40 vs 45 untied', x: x7, y: y7, confidence: 0.95, estimate: 4.75, lower: -8.75, upper: 18.25 },
  {
    name: 'small tied',
    x: x2,
    y: y2,
    confidence: 0.95,
    estimate: -2,
    lower: -4,
    upper: 0,
    r: [-3.9999539026902626, -3.1499393554218976e-5],
  },
  {
    name: '60 vs 70, one tie',
    x: x4,
    y: y4,
    confidence: 0.95,
    estimate: -3.2999999999999972,
    lower: -13.700000000000001,
    upper: 7.2999999999999972,
    r: [-13.699988885561687, 7.3000369475080715],
  },
  {
    name: '60 vs 70 shifted, untied',
    x: x8,
    y: y4,
    confidence: 0.95,
    estimate: 26.75,
    lower: 16.349999999999998,
    upper: 37.350000000000001,
    r: [16.350059002192921, 37.35000476697045],
  },
  {
    name: 'histogram',
    x: rep(buckets, x5),
    y: rep(buckets, y5),
    confidence: 0.95,
    estimate: 0,
    lower: 0,
    upper: 0,
    r: [-5.8407932937086022e-5, 1.9515566590219056e-5],
  },
  {
    name: 'binary',
    x: x6,
    y: y6,
    confidence: 0.95,
    estimate: 0,
    lower: 0,
    upper: 0,
    r: [-9.6279317375727103e-6, 3.8175025472607557e-5],
  },
];

describe('hodgesLehmann against R', () => {
  it.each(SHIFTS)('$name', ({ x, y, confidence, estimate, lower, upper, r }) => {
    const s = hodgesLehmann(tally(x), tally(y), confidence);
    expect(s.confidence).toBe(confidence);
    expect(s.estimate).toBeCloseTo(estimate, 12);
    expect(s.lower).toBeCloseTo(lower, 12);
    expect(s.upper).toBeCloseTo(upper, 12);
    if (r) {
      expect(Math.abs(s.lower - r[0])).toBeLessThan(1e-4);
      expect(Math.abs(s.upper - r[1])).toBeLessThan(1e-4);
    }
  });
});
