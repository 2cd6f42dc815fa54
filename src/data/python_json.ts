/**
 * JSON text as Python's `json.dumps(value, ensure_ascii=False)` writes it, so that files written here
 * are byte-identical to the ones the reference scripts write (the tutorial's ms-swift conversion,
 * ../shared/fixtures/mining/swift/*.jsonl, is `json.dumps(record, ensure_ascii=False)` per line):
 * separators `", "` and `": "`, non-ASCII text as is, floats in Python's repr.
 *
 * Strings: Python escapes `"`, `\`, \b \f \n \r \t and the other control characters as \u00XX —
 * the same set as JSON.stringify — so JSON.stringify's string escaping is used. (A lone surrogate,
 * which Python could not encode to UTF-8 at all, comes out as a \uXXXX escape.)
 *
 * Numbers: JS cannot tell 1 from 1.0, so an integral number is written as an int; other numbers
 * take Python's float repr (`1e-05`, `0.0001`, `1.5e+16`). NaN and ±Infinity are refused: Python
 * would write the non-JSON tokens NaN/Infinity, which no JSON reader (ours included) accepts.
 */

import { pythonFloatRepr } from '../formats/python_float.js';

export { pythonFloatRepr };

/** A number as Python's json module writes it (ints as ints, see the file comment). */
function pythonNumber(value: number, where: string): string {
  if (!Number.isFinite(value)) throw new TypeError(`${where}: ${value} cannot be written as JSON`);
  if (Number.isSafeInteger(value)) return String(value);
  return pythonFloatRepr(value);
}

/** `json.dumps(value, ensure_ascii=False)`. `where` names the value in errors. */
export function pythonJsonDumps(value: unknown, where = 'value'): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return pythonNumber(value, where);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'object': {
      if (value instanceof Date) return JSON.stringify(value.toISOString());
      if (Array.isArray(value) || ArrayBuffer.isView(value)) {
        const items = Array.from(value as ArrayLike<unknown>, (item, i) => pythonJsonDumps(item, `${where}[${i}]`));
        return `[${items.join(', ')}]`;
      }
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${JSON.stringify(k)}: ${pythonJsonDumps(v, `${where}.${k}`)}`);
      return `{${entries.join(', ')}}`;
    }
    default:
      throw new TypeError(`${where}: a ${typeof value} cannot be written as JSON`);
  }
}

/** JSON.stringify, but refusing NaN/Infinity (which it would silently write as null) and writing BigInts. */
export function compactJson(value: unknown, where = 'value'): string {
  return JSON.stringify(value, (key, v: unknown) => {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new TypeError(`${where}${key ? `.${key}` : ''}: ${v} cannot be written as JSON`);
    if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
    return v;
  });
}
