/**
 * A strict JSON parser for the headers of safetensors files and the indexes of sharded
 * checkpoints, where `JSON.parse` is too lenient in three ways that matter:
 *
 *  - Duplicate keys. `JSON.parse` keeps the last of `{"w": A, "w": B}` silently; the safetensors
 *    format disallows duplicate names (REFERENCE §8), and the Rust reader's serde structs refuse
 *    a repeated field. Two readers that pick different duplicates would load different weights
 *    from the same bytes, so a duplicate is an error here — after unescaping, so `"w"` and
 *    `"\u0077"` are the same key.
 *  - Number syntax. A shape or offset must be an integer; `JSON.parse` turns `1.0` and `1e2` into
 *    integers that the Rust reader (serde `usize`) refuses. Numbers written with a fraction or an
 *    exponent therefore come back as `JsonDecimal`, which no integer check accepts.
 *  - Prototype keys. Objects come back as `Map`s, so a key such as `__proto__` or `constructor`
 *    is data, never a property lookup, and keys keep their order in the text.
 *
 * It also refuses strings with unpaired surrogate escapes (they have no UTF-8 form; serde_json
 * refuses them too) and nesting deeper than serde_json's default limit of 128, which keeps the
 * recursion bounded whatever the input. Input is the already-decoded text: UTF-8 validity is the
 * caller's check.
 */

/** A number written with a fraction or an exponent (`1.5`, `1e3`, `2.0`): never an integer here. */
export class JsonDecimal {
  constructor(
    /** The literal as written. */
    readonly text: string,
    readonly value: number,
  ) {}
}

export type JsonValue = null | boolean | number | JsonDecimal | string | JsonValue[] | JsonObject;
/** A JSON object; keys in the order written. */
export type JsonObject = Map<string, JsonValue>;

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    /** Character offset in the text. */
    readonly position: number,
  ) {
    super(`${message} at character ${position}`);
    this.name = 'JsonSyntaxError';
  }
}

/** serde_json's default recursion limit. A safetensors header needs 3 levels. */
export const MAX_JSON_DEPTH = 128;

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function parseStrictJson(text: string): JsonValue {
  let pos = 0;
  const fail = (message: string, at = pos): never => {
    throw new JsonSyntaxError(message, at);
  };
  const describe = (at: number): string => (at >= text.length ? 'the end of the text' : `${JSON.stringify(text[at])}`);

  const skipWhitespace = (): void => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else return;
    }
  };

  const parseString = (): string => {
    const start = pos;
    pos++; // the opening quote
    let escaped = false;
    for (;;) {
      if (pos >= text.length) fail('unterminated string', start);
      const c = text.charCodeAt(pos);
      if (c === 0x22) break;
      if (c < 0x20) fail('a control character inside a string (it must be escaped)');
      if (c === 0x5c) {
        escaped = true;
        const e = text[pos + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) fail('a \\u escape without 4 hex digits');
          pos += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          pos += 2;
        } else {
          fail(`an invalid escape \\${e ?? ''}`);
        }
        continue;
      }
      pos++;
    }
    pos++; // the closing quote
    const literal = text.slice(start, pos);
    // The literal is well-formed by now, so JSON.parse only does the unescaping.
    const value = escaped ? (JSON.parse(literal) as string) : literal.slice(1, -1);
    if (escaped && LONE_SURROGATE.test(value)) fail('an unpaired surrogate escape in a string (it has no UTF-8 form)', start);
    return value;
  };

  const parseNumber = (): number | JsonDecimal => {
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (!m) return fail(`unexpected ${describe(pos)}`);
    pos = NUMBER.lastIndex;
    const value = Number(m[0]);
    return m[1] === undefined && m[2] === undefined ? value : new JsonDecimal(m[0], value);
  };

  const parseLiteral = <T>(word: string, value: T): T => {
    if (text.startsWith(word, pos)) {
      pos += word.length;
      return value;
    }
    return fail(`unexpected ${describe(pos)}`);
  };

  const parseValue = (depth: number): JsonValue => {
    skipWhitespace();
    const c = text[pos];
    if (c === '{' || c === '[') {
      if (depth >= MAX_JSON_DEPTH) fail(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
      return c === '{' ? parseObject(depth + 1) : parseArray(depth + 1);
    }
    if (c === '"') return parseString();
    if (c === 't') return parseLiteral('true', true);
    if (c === 'f') return parseLiteral('false', false);
    if (c === 'n') return parseLiteral('null', null);
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return parseNumber();
    return fail(`unexpected ${describe(pos)}`);
  };

  const parseObject = (depth: number): JsonObject => {
    const object: JsonObject = new Map();
    pos++; // {
    skipWhitespace();
    if (text[pos] === '}') {
      pos++;
      return object;
    }
    for (;;) {
      skipWhitespace();
      if (text[pos] !== '"') fail(`expected a key (a string) but found ${describe(pos)}`);
      const keyAt = pos;
      const key = parseString();
      if (object.has(key)) fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
      skipWhitespace();
      if (text[pos] !== ':') fail(`expected ':' after key ${JSON.stringify(key)} but found ${describe(pos)}`);
      pos++;
      object.set(key, parseValue(depth));
      skipWhitespace();
      const next = text[pos];
      pos++;
      if (next === '}') return object;
      if (next !== ',') fail(`expected ',' or '}' but found ${describe(pos - 1)}`, pos - 1);
    }
  };

  const parseArray = (depth: number): JsonValue[] => {
    const array: JsonValue[] = [];
    pos++; // [
    skipWhitespace();
    if (text[pos] === ']') {
      pos++;
      return array;
    }
    for (;;) {
      array.push(parseValue(depth));
      skipWhitespace();
      const next = text[pos];
      pos++;
      if (next === ']') return array;
      if (next !== ',') fail(`expected ',' or ']' but found ${describe(pos - 1)}`, pos - 1);
    }
  };

  const value = parseValue(0);
  skipWhitespace();
  if (pos < text.length) fail(`unexpected ${describe(pos)} after the JSON value`);
  return value;
}

/** Whether a parsed value is a JSON object. */
export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return value instanceof Map;
}
