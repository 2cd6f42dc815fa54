/**
 * Typed access to the two Hugging Face tokenizer files: `tokenizer.json` (the `tokenizers`
 * serialisation) and `tokenizer_config.json` (transformers' settings). Both are parsed as
 * `unknown` and narrowed field by field, so a malformed file is an Error naming the file.
 */

export type JsonObject = { [key: string]: unknown };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses `text` as a JSON object; `file` names it in the error. */
export function parseJsonObject(text: string, file: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(value)) throw new Error(`${file}: expected a JSON object at the top level`);
  return value;
}

/** A special-token setting: transformers writes either the token string or an AddedToken object `{content, …}`. */
export function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  return undefined;
}

/** The settings embtune reads from `tokenizer_config.json`; every field optional. */
export interface TokenizerConfig {
  padToken?: string;
  eosToken?: string;
  unkToken?: string;
  clsToken?: string;
  sepToken?: string;
  maskToken?: string;
  additionalSpecialTokens: string[];
  /** `added_tokens_decoder`: id → content and whether it is special. */
  addedTokens: { id: number; content: string; special: boolean }[];
  doLowerCase?: boolean;
  tokenizeChineseChars?: boolean;
  /** null = follow lowercase (BERT's default); REFERENCE §9.2 step 1. */
  stripAccents?: boolean | null;
  modelMaxLength?: number;
  paddingSide?: 'left' | 'right';
  cleanUpTokenizationSpaces?: boolean;
}

/** transformers writes `int(1e30)` for "no limit". */
const NO_LIMIT = 1e15;

export function readTokenizerConfig(json: JsonObject | undefined, file: string): TokenizerConfig {
  const config: TokenizerConfig = { additionalSpecialTokens: [], addedTokens: [] };
  if (!json) return config;
  const bool = (key: string): boolean | undefined => {
    const v = json[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw new Error(`${file}: ${key} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  config.padToken = tokenContent(json.pad_token);
  config.eosToken = tokenContent(json.eos_token);
  config.unkToken = tokenContent(json.unk_token);
  config.clsToken = tokenContent(json.cls_token);
  config.sepToken = tokenContent(json.sep_token);
  config.maskToken = tokenContent(json.mask_token);
  if (Array.isArray(json.additional_special_tokens)) {
    for (const t of json.additional_special_tokens) {
      const content = tokenContent(t);
      if (content !== undefined) config.additionalSpecialTokens.push(content);
    }
  }
  if (isObject(json.added_tokens_decoder)) {
    for (const [key, value] of Object.entries(json.added_tokens_decoder)) {
      const id = Number(key);
      const content = tokenContent(value);
      if (!Number.isInteger(id) || content === undefined) throw new Error(`${file}: added_tokens_decoder entry ${JSON.stringify(key)} is malformed`);
      config.addedTokens.push({ id, content, special: isObject(value) && value.special === true });
    }
  }
  config.doLowerCase = bool('do_lower_case');
  config.tokenizeChineseChars = bool('tokenize_chinese_chars');
  config.cleanUpTokenizationSpaces = bool('clean_up_tokenization_spaces');
  if ('strip_accents' in json) {
    const v = json.strip_accents;
    if (v !== null && typeof v !== 'boolean') throw new Error(`${file}: strip_accents must be true, false or null`);
    config.stripAccents = v;
  }
  const maxLength = json.model_max_length;
  if (typeof maxLength === 'number' && Number.isInteger(maxLength) && maxLength > 0 && maxLength < NO_LIMIT) config.modelMaxLength = maxLength;
  const side = json.padding_side;
  if (side === 'left' || side === 'right') config.paddingSide = side;
  else if (side !== undefined && side !== null) throw new Error(`${file}: padding_side must be "left" or "right", got ${JSON.stringify(side)}`);
  return config;
}

/** One entry of `tokenizer.json`'s `added_tokens`. */
export interface AddedTokenEntry {
  id: number;
  content: string;
  special: boolean;
}

export function readAddedTokens(json: JsonObject, file: string): AddedTokenEntry[] {
  const list = json.added_tokens;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new Error(`${file}: added_tokens must be a list`);
  return list.map((entry, i) => {
    if (!isObject(entry) || typeof entry.id !== 'number' || typeof entry.content !== 'string') {
      throw new Error(`${file}: added_tokens[${i}] needs a numeric id and a string content`);
    }
    return { id: entry.id, content: entry.content, special: entry.special === true };
  });
}
