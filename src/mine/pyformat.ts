/**
 * Python's number formatting, as sentence-transformers' mining printout uses it (REFERENCE §2.6,
 * fixtures/mining/README.md §5.10–11): `{:.4f}`, `{:.2%}`, `{:,}` and `repr(float)`.
 *
 * JS's `toFixed` differs from Python in three places that the printout can reach: it rounds an
 * exact tie away from zero (Python rounds the exact binary value half to even), it switches to
 * exponent notation from 1e21 (the v5.1.2 FAISS bug prints −FLT_MAX as a 39-digit integer), and
 * it drops the sign of −0. So the fixed-point formatter below works on the exact binary value.
 */

const FLOAT64 = new DataView(new ArrayBuffer(8));

/** |x| as mantissa · 2^exponent, exactly (x finite). */
function exactBinary(x: number): { mantissa: bigint; exponent: number } {
  FLOAT64.setFloat64(0, Math.abs(x));
  const high = FLOAT64.getUint32(0);
  const low = FLOAT64.getUint32(4);
  const biased = high >>> 20;
  const fraction = (BigInt(high & 0xfffff) << 32n) | BigInt(low);
  // Subnormals have no implicit leading bit and the exponent of the smallest normal.
  return biased === 0 ? { mantissa: fraction, exponent: -1074 } : { mantissa: fraction | (1n << 52n), exponent: biased - 1075 };
}

/** Python's `format(x, f'.{digits}f')`: exact value rounded half to even; `inf`, `-inf`, `nan`. */
export function formatFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const negative = x < 0 || Object.is(x, -0);
  const { mantissa, exponent } = exactBinary(x);
  const scaled = mantissa * 10n ** BigInt(digits);
  let units: bigint;
  if (exponent >= 0) {
    units = scaled << BigInt(exponent);
  } else {
    const denominator = 1n << BigInt(-exponent);
    units = scaled / denominator;
    const twiceRemainder = 2n * (scaled % denominator);
    if (twiceRemainder > denominator || (twiceRemainder === denominator && units % 2n === 1n)) units += 1n;
  }
  const text = units.toString().padStart(digits + 1, '0');
  const body = digits === 0 ? text : `${text.slice(0, text.length - digits)}.${text.slice(text.length - digits)}`;
  return negative ? `-${body}` : body;
}

/** Python's `format(ratio, f'.{digits}%')`: the ratio times 100 (in float64), fixed, then `%`. */
export function formatPercent(ratio: number, digits: number): string {
  return `${formatFixed(ratio * 100, digits)}%`;
}

/** Python's `format(n, ',')` for an integer. */
export function formatThousands(n: number): string {
  if (!Number.isSafeInteger(n)) throw new Error(`formatThousands: ${n} is not a safe integer`);
  const digits = Math.abs(n).toString();
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return n < 0 ? `-${grouped}` : grouped;
}

export { pythonFloatRepr } from '../formats/python_float.js';
