/**
 * A model folder's generation defaults: `generation_config.json` (transformers'
 * GenerationConfig file: do_sample, temperature, top_k, top_p, repetition_penalty, eos_token_id,
 * max_new_tokens), else config.json's eos_token_id. The tokenizer's own eos_token
 * (tokenizer_config.json; `<|im_end|>` for Qwen3) is added to the end-of-sequence ids: a chat
 * turn ends there even in a folder whose config.json names only `<|endoftext|>` (the Qwen3 chat
 * checkpoints' generation_config.json lists both, [151645, 151643]).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokenizer } from '../tokenizers/index.js';
import type { SamplingDefaults } from './sampling.js';

export const GENERATION_CONFIG = 'generation_config.json';

export interface GenerationDefaults {
  /** Ids that end a sequence (never empty for a loadable model). */
  eosTokenIds: number[];
  sampling: SamplingDefaults;
  /** generation_config.json `max_new_tokens`, if set. */
  maxNewTokens?: number;
  /** config.json `max_position_embeddings`: prompt + answer must fit in it. */
  maxPositions?: number;
}

type Json = Record<string, unknown>;

function readJson(path: string): Json | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Json;
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

function ids(value: unknown, where: string): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const v of list) if (!Number.isInteger(v) || (v as number) < 0) throw new Error(`${where}: eos_token_id must be a token id or a list of them, got ${JSON.stringify(value)}`);
  return list as number[];
}

function num(json: Json, key: string, where: string): number | undefined {
  const v = json[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}: '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** Reads the generation defaults of a model folder; `tokenizer` resolves tokenizer_config.json's eos_token. */
export function readGenerationDefaults(folder: string, tokenizer: Tokenizer): GenerationDefaults {
  const configPath = join(folder, 'config.json');
  const genPath = join(folder, GENERATION_CONFIG);
  const config = readJson(configPath) ?? {};
  const gen = readJson(genPath);
  const eos = new Set(gen && gen.eos_token_id !== undefined ? ids(gen.eos_token_id, genPath) : ids(config.eos_token_id, configPath));
  const tokConfig = readJson(join(folder, 'tokenizer_config.json'));
  const eosToken = tokConfig?.eos_token;
  const eosName = typeof eosToken === 'string' ? eosToken : typeof eosToken === 'object' && eosToken !== null ? (eosToken as Json).content : undefined;
  if (typeof eosName === 'string') {
    const id = tokenizer.tokenId(eosName);
    if (id !== undefined) eos.add(id);
  }
  if (eos.size === 0) throw new Error(`${folder}: no end-of-sequence token (eos_token_id in ${GENERATION_CONFIG} or config.json, or eos_token in tokenizer_config.json)`);
  const sampling: SamplingDefaults = {};
  if (gen) {
    if (typeof gen.do_sample === 'boolean') sampling.doSample = gen.do_sample;
    const fields: [keyof SamplingDefaults, string][] = [['temperature', 'temperature'], ['topK', 'top_k'], ['topP', 'top_p'], ['repetitionPenalty', 'repetition_penalty']];
    for (const [to, from] of fields) {
      const v = num(gen, from, genPath);
      if (v !== undefined) (sampling as Record<string, number>)[to] = v;
    }
  }
  const out: GenerationDefaults = { eosTokenIds: [...eos], sampling };
  const maxNew = gen ? num(gen, 'max_new_tokens', genPath) : undefined;
  if (maxNew !== undefined) out.maxNewTokens = maxNew;
  const maxPositions = num(config, 'max_position_embeddings', configPath);
  if (maxPositions !== undefined) out.maxPositions = maxPositions;
  return out;
}
