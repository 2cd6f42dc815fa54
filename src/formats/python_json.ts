/**
 * JSON text as Python's `json.dumps(value, indent=2, sort_keys=True)` writes it — the form of the
 * `adapter_config.json` PEFT saves (`PeftConfigMixin.save_pretrained`) and of the `config.json`
 * transformers saves (`PretrainedConfig.to_json_string`). Writing the same bytes keeps files that
 * went through embtune diffable against the ones the Python tools wrote.
 *
 * Values are strict_json's (`Map` objects, `JsonDecimal` for numbers written with a fraction or an
 * exponent), so a config read and written back keeps `1e-06` and `1000000.0` as written; a JS
 * number becomes an integer literal when it is an integer, else Python's float repr. Use
 * `pyFloat` for a value that Python holds as a float (`lora_dropout` 0 is written `0.0`).
 */
import { JsonDecimal, type JsonValue } from './strict_json.js';
import { pythonFloatRepr as pythonRepr } from './python_float.js';

/**
 * A float as Python's json module writes it: its repr (`pythonFloatRepr`, which prints `nan`,
 * `inf`), except NaN and ±Infinity, which json writes as the tokens NaN / Infinity.
 */
export function pythonJsonFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  return pythonRepr(x);
}

/** A number that Python holds as a float, for `dumpsPython`. */
export function pyFloat(x: number): JsonDecimal {
  return new JsonDecimal(pythonJsonFloat(x), x);
}

/** A string with `ensure_ascii`: everything outside printable ASCII escaped as \uXXXX. */
function pyString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Python's string order (by code point), which differs from JS `<` only beyond the BMP: `sort_keys`, sorted ids. */
export function comparePythonStrings(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(j)!;
    if (ca !== cb) return ca < cb ? -1 : 1;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  return i < a.length ? 1 : j < b.length ? -1 : 0;
}

function dump(value: JsonValue, depth: number): string {
  const pad = (d: number) => '  '.repeat(d);
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : pythonJsonFloat(value);
  if (value instanceof JsonDecimal) return value.text;
  if (typeof value === 'string') return pyString(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => pad(depth + 1) + dump(v, depth + 1)).join(',\n')}\n${pad(depth)}]`;
  }
  if (value.size === 0) return '{}';
  const keys = [...value.keys()].sort(comparePythonStrings);
  return `{\n${keys.map((k) => `${pad(depth + 1)}${pyString(k)}: ${dump(value.get(k)!, depth + 1)}`).join(',\n')}\n${pad(depth)}}`;
}

/** `json.dumps(value, indent=2, sort_keys=True)` (no trailing newline). */
export function dumpsPython(value: JsonValue): string {
  return dump(value, 0);
}
