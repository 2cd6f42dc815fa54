/**
 * What a model folder is, read from its files alone — config.json's `model_type`, and the
 * pooling, normalisation, prompts and maximum length from the sentence-transformers files when the
 * folder has them (`modules.json`, `1_Pooling/config.json`, `config_sentence_transformers.json`,
 * `sentence_bert_config.json`). Without them, the reference usage of each family applies:
 * Qwen3-Embedding → last-token pooling, L2-normalised, the `Instruct: …\nQuery:` prompt for
 * queries (REFERENCE §5.1); BERT → mean pooling (sentence-transformers' default for a plain model).
 *
 * Nothing here loads the engine: the server's tokenizer thread reads these without touching
 * libtorch, whose thread settings are process-wide (src/torch/runtime.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PoolingMode } from './pooling.js';

export const DEFAULT_QWEN3_TASK = 'Given a web search query, retrieve relevant passages that answer the query';

export type ModelFamily = 'qwen3' | 'bert';

export class ModelLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelLoadError';
  }
}

export function readConfig<T>(folder: string): T {
  const path = join(folder, 'config.json');
  if (!existsSync(path)) throw new ModelLoadError(`${folder}: no config.json (is this a Hugging Face model folder?)`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    throw new ModelLoadError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

export interface EmbeddingModelInfo {
  family: ModelFamily;
  pooling: PoolingMode;
  normalize: boolean;
  /** sentence-transformers prompts by name (`query`, `document`, …), prepended to the text. */
  prompts: Record<string, string>;
  maxLength: number;
  paddingSide: 'left' | 'right';
}

function readJson<T>(path: string): T | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    throw new ModelLoadError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

interface StModule {
  path?: string;
  type?: string;
}

/** The pooling of a sentence-transformers folder's Pooling module, if it has one. */
function stPooling(folder: string): { pooling?: PoolingMode; normalize?: boolean } {
  const modules = readJson<StModule[]>(join(folder, 'modules.json'));
  if (!modules) return {};
  const normalize = modules.some((m) => m.type?.endsWith('.Normalize'));
  const poolingModule = modules.find((m) => m.type?.endsWith('.Pooling'));
  if (!poolingModule) return { normalize };
  const configPath = join(folder, poolingModule.path ?? '1_Pooling', 'config.json');
  const config = readJson<Record<string, unknown>>(configPath);
  if (!config) throw new ModelLoadError(`${folder}: modules.json names a Pooling module but ${configPath} is missing`);
  const modes: [string, PoolingMode][] = [
    ['pooling_mode_lasttoken', 'lasttoken'],
    ['pooling_mode_mean_tokens', 'mean'],
    ['pooling_mode_cls_token', 'cls'],
  ];
  const on = modes.filter(([key]) => config[key] === true).map(([, mode]) => mode);
  const unsupported = Object.entries(config).filter(([k, v]) => k.startsWith('pooling_mode_') && v === true && !modes.some(([key]) => key === k));
  if (unsupported.length > 0 || on.length !== 1) {
    throw new ModelLoadError(`${configPath}: embtune supports exactly one of lasttoken, mean_tokens or cls_token pooling; this config enables ${[...on, ...unsupported.map(([k]) => k)].join(', ') || 'none'}`);
  }
  return { pooling: on[0], normalize };
}

export function describeModel(folder: string): EmbeddingModelInfo {
  const config = readConfig<{ model_type?: string; max_position_embeddings?: number }>(folder);
  const family = config.model_type === 'qwen3' ? 'qwen3' : config.model_type === 'bert' ? 'bert' : undefined;
  if (!family) throw new ModelLoadError(`${folder}/config.json: model_type '${config.model_type}' is not supported (embtune runs 'qwen3' and 'bert')`);
  const st = stPooling(folder);
  const stConfig = readJson<{ prompts?: Record<string, string> }>(join(folder, 'config_sentence_transformers.json'));
  const bertConfig = readJson<{ max_seq_length?: number }>(join(folder, 'sentence_bert_config.json'));
  const qwen3 = family === 'qwen3';
  return {
    family,
    pooling: st.pooling ?? (qwen3 ? 'lasttoken' : 'mean'),
    normalize: st.normalize ?? qwen3,
    prompts: stConfig?.prompts ?? (qwen3 ? { query: `Instruct: ${DEFAULT_QWEN3_TASK}\nQuery:`, document: '' } : {}),
    maxLength: bertConfig?.max_seq_length ?? (qwen3 ? 8192 : Math.min(512, config.max_position_embeddings ?? 512)),
    paddingSide: qwen3 ? 'left' : 'right',
  };
}

