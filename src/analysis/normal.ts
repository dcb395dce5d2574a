/**
 * The standard normal distribution function and its inverse, to double precision. The judge's
 * levels are small (1e-6 at an early look), so both must stay accurate far into the tails, where
 * `1 - Φ(z)` computed naively is all rounding error.
 */

const SQRT_2PI_INV = 0.3989422804014327; // 1 / sqrt(2π)

// W. J. Cody, "Rational Chebyshev approximations for the error function" (Math. Comp. 1969) and
// SPECFUN's ANORM (1993): |z| ≤ 0.66291, 0.66291 < |z| ≤ √32, and |z| > √32. The published
// coefficients, written as the doubles they round to.
const A = [
  2.2352520354606837, 161.02823106855587, 1067.6894854603709, 18154.98125334356, 0.06568233791820745,
];
const B = [47.202581904688245, 976.0985517377767, 10260.932208618979, 45507.78933502673];
const C = [
  0.39894151208813466, 8.883149794388377, 93.50665613217785, 597.2702763948002, 2494.5375852903726,
  6848.190450536283, 11602.65143764735, 9842.714838383978, 1.0765576773720192e-8,
];
const D = [
  22.266688044328117, 235.387901782625, 1519.3775994075547, 6485.558298266761, 18615.571640885097,
  34900.95272114598, 38912.00328609327, 19685.429676859992,
];
const P = [
  0.215898534057957, 0.12740116116024736, 0.022235277870649807, 0.0014216191932278934,
  0.000029112874951168793, 0.023073441764940174,
];
const Q = [
  1.284260096144911, 0.4682382124808651, 0.06598813786892856, 0.0037823963320275824, 0.00007297515550839662,
];

/**
 * Φ(z) = P(Z ≤ z) for a standard normal Z, with Cody's rational approximations (relative error
 * about 1e-15 over the whole range, tails included). Use `normalCdf(-z)` for the upper tail: it
 * keeps its precision where `1 - normalCdf(z)` would round to 0.
 *
 * @example
 * normalCdf(1.959963984540054); // 0.975
 */
export function normalCdf(z: number): number {
  if (Number.isNaN(z)) return NaN;
  const y = Math.abs(z);
  if (y <= 0.66291) {
    const s = y > 1.1e-16 ? z * z : 0;
    let num = A[4]! * s;
    let den = s;
    for (let i = 0; i < 3; i++) {
      num = (num + A[i]!) * s;
      den = (den + B[i]!) * s;
    }
    return 0.5 + (z * (num + A[3]!)) / (den + B[3]!);
  }
  let tail: number; // P(Z > y)
  if (y <= Math.sqrt(32)) {
    let num = C[8]! * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + C[i]!) * y;
      den = (den + D[i]!) * y;
    }
    tail = gaussTail(y, (num + C[7]!) / (den + D[7]!));
  } else if (y < 38.5) {
    const s = 1 / (z * z);
    let num = P[5]! * s;
    let den = s;
    for (let i = 0; i < 4; i++) {
      num = (num + P[i]!) * s;
      den = (den + Q[i]!) * s;
    }
    const r = (s * (num + P[4]!)) / (den + Q[4]!);
    tail = gaussTail(y, (SQRT_2PI_INV - r) / y);
  } else {
    tail = 0;
  }
  return z > 0 ? 1 - tail : tail;
}

/** exp(−y²/2)·r with y² split so the exponent loses no digits (Cody's trick). */
function gaussTail(y: number, r: number): number {
  const ys = Math.trunc(y * 16) / 16;
  const del = (y - ys) * (y + ys);
  return Math.exp(-ys * ys * 0.5) * Math.exp(-del * 0.5) * r;
}

// M. J. Wichura, "Algorithm AS 241: The percentage points of the normal distribution" (Applied
// Statistics 37, 1988), PPND16: about 1e-16 relative accuracy. Coefficients lowest degree first,
// written as the doubles they round to.
const A241 = [
  3.3871328727963665, 133.14166789178438, 1971.5909503065513, 13731.69376550946, 45921.95393154987,
  67265.7709270087, 33430.57558358813, 2509.0809287301227,
];
const B241 = [
  1, 42.31333070160091, 687.1870074920579, 5394.196021424751, 21213.794301586597, 39307.89580009271,
  28729.085735721943, 5226.495278852854,
];
const C241 = [
  1.4234371107496835, 4.630337846156546, 5.769497221460691, 3.6478483247632045, 1.2704582524523684,
  0.2417807251774506, 0.022723844989269184, 0.0007745450142783414,
];
const D241 = [
  1, 2.053191626637759, 1.6763848301838038, 0.6897673349851, 0.14810397642748008, 0.015198666563616457,
  0.0005475938084995345, 1.0507500716444169e-9,
];
const E241 = [
  6.657904643501103, 5.463784911164114, 1.7848265399172913, 0.29656057182850487, 0.026532189526576124,
  0.0012426609473880784, 0.000027115555687434876, 2.0103343992922881e-7,
];
const F241 = [
  1, 0.599832206555888, 0.1369298809227358, 0.014875361290850615, 0.0007868691311456133,
  0.000018463183175100548, 1.421511758316446e-7, 2.0442631033899397e-15,
];

/**
 * Φ⁻¹(p): the z with P(Z ≤ z) = p, by Wichura's AS 241 (PPND16), accurate to about 1e-16
 * relative. ±Infinity at 0 and 1, NaN outside [0, 1].
 *
 * @example
 * normalQuantile(0.975); // 1.959963984540054
 */
export function normalQuantile(p: number): number {
  if (Number.isNaN(p) || p < 0 || p > 1) return NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (q * poly(A241, r)) / poly(B241, r);
  }
  let r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p));
  let z: number;
  if (r <= 5) {
    r -= 1.6;
    z = poly(C241, r) / poly(D241, r);
  } else {
    r -= 5;
    z = poly(E241, r) / poly(F241, r);
  }
  return q < 0 ? -z : z;
}

/** Σ c[i]·x^i by Horner's rule. */
function poly(c: readonly number[], x: number): number {
  let v = 0;
  for (let i = c.length - 1; i >= 0; i--) v = v * x + c[i]!;
  return v;
}
