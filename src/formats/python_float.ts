/**
 * Python's `repr(float)`, which `json.dumps`, `str.format('{}')` and the reference libraries'
 * printed messages use: the shortest digits that round-trip (JS's `toExponential()` finds the same
 * ones), positional for 1e-4 ≤ |x| < 1e16 with at least one decimal (`1.0`, `1000000.0`), else
 * exponent form with a signed two-digit exponent (`1e-05`, `1.5e+16`); `nan`, `inf`, `-inf`.
 */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissaText, exponentText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissaText.replace('.', '');
  const exponent = Number(exponentText);
  const sign = x < 0 ? '-' : '';
  if (exponent < -4 || exponent >= 16) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  // The decimal point goes into the shortest digits by hand: toFixed would round a second time.
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
  const fraction = digits.slice(exponent + 1);
  return `${sign}${whole}.${fraction || '0'}`;
}
