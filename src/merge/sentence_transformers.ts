/**
 * The sentence-transformers files of an exported model folder, so that the folder loads unchanged
 * in sentence-transformers and TEI (REFERENCE §5.3):
 *
 *   modules.json                     Transformer ("") → Pooling (1_Pooling) → Normalize (2_Normalize, always)
 *   1_Pooling/config.json            the Pooling module's constructor arguments
 *                                    (Qwen3: pooling_mode_lasttoken, include_prompt true; BERT/m3e: mean)
 *   config_sentence_transformers.json prompts (the Qwen3 query instruction), similarity_fn_name "cosine"
 *   sentence_bert_config.json        max_seq_length (TEI requires it), do_lower_case false
 *
 * A base folder that has its own files keeps them (copied as they are, with the module folders
 * that modules.json lists); only the missing ones are written from what embtune loads the base
 * as (registry.ts `describeModel`). The Normalize module has no files: sentence-transformers
 * builds it from its type alone, as the published Qwen3-Embedding folder has it.
 *
 * What the readers take (checked key by key in test/merge/export.test.ts):
 *   TEI `router/src/lib.rs`: PoolConfig {pooling_mode_cls_token, pooling_mode_mean_tokens (both
 *   required), pooling_mode_lasttoken}, STConfig {max_seq_length}, NewSTConfig {prompts}.
 *   sentence-transformers `models/Pooling.py`: `Pooling(**config)`; `SentenceTransformer`:
 *   modules.json entries {idx, name, path, type}, config's prompts / default_prompt_name /
 *   similarity_fn_name.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';
import type { EmbeddingModelInfo } from '../models/registry.js';

export const MODULES_JSON = 'modules.json';
export const ST_CONFIG = 'config_sentence_transformers.json';
export const SBERT_CONFIG = 'sentence_bert_config.json';
export const POOLING_FOLDER = '1_Pooling';

export interface StModuleEntry {
  idx: number;
  name: string;
  path: string;
  type: string;
}

/**
 * The module list of an exported embedding model: Transformer → Pooling → Normalize. Normalize
 * is always there: the similarity is cosine, and unit vectors let TEI, vLLM and vector stores
 * score by dot product (a BERT base without these files becomes a normalising model; its cosine
 * scores are unchanged).
 */
export function stModules(): StModuleEntry[] {
  return [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: POOLING_FOLDER, type: 'sentence_transformers.models.Pooling' },
    { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
  ];
}

/** `Pooling.get_config_dict()` of sentence-transformers for one pooling mode, in its key order. */
export function poolingConfig(info: EmbeddingModelInfo, dimension: number): Record<string, number | boolean> {
  return {
    word_embedding_dimension: dimension,
    pooling_mode_cls_token: info.pooling === 'cls',
    pooling_mode_mean_tokens: info.pooling === 'mean',
    pooling_mode_max_tokens: false,
    pooling_mode_mean_sqrt_len_tokens: false,
    pooling_mode_weightedmean_tokens: false,
    pooling_mode_lasttoken: info.pooling === 'lasttoken',
    include_prompt: true,
  };
}

/** config_sentence_transformers.json as the published Qwen3-Embedding folder has it. */
export function stConfig(info: EmbeddingModelInfo): Record<string, unknown> {
  return { prompts: info.prompts, default_prompt_name: null, similarity_fn_name: 'cosine' };
}

function writeJson(path: string, value: unknown): void {
  const bytes = Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8');
  writeFileAtomic(path, (write) => write(bytes));
}

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

/** Module folders listed by a modules.json (1_Pooling, 2_Dense, …), never outside the folder. */
function moduleFolders(modulesPath: string): string[] {
  let modules: unknown;
  try {
    modules = JSON.parse(readFileSync(modulesPath, 'utf8'));
  } catch (err) {
    throw new Error(`${modulesPath}: not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(modules)) throw new Error(`${modulesPath}: expected a JSON array of modules`);
  return modules
    .map((m: { path?: unknown }) => m?.path)
    .filter((p): p is string => typeof p === 'string' && p !== '' && !p.includes('..') && !p.startsWith('/'));
}

/**
 * Writes (or copies from `sourceFolder`) the sentence-transformers files into `outFolder`;
 * `dimension` is the embedding width (hidden_size). Returns the files written, relative.
 */
export function writeSentenceTransformersFiles(sourceFolder: string, outFolder: string, info: EmbeddingModelInfo, dimension: number, maxPositions: number | undefined): string[] {
  const written: string[] = [];
  const sourceModules = join(sourceFolder, MODULES_JSON);
  if (isFile(sourceModules)) {
    cpSync(sourceModules, join(outFolder, MODULES_JSON));
    written.push(MODULES_JSON);
    for (const folder of moduleFolders(sourceModules)) {
      const from = join(sourceFolder, folder);
      if (existsSync(from) && statSync(from).isDirectory()) {
        cpSync(from, join(outFolder, folder), { recursive: true });
        written.push(`${folder}/`);
      }
    }
  } else {
    writeJson(join(outFolder, MODULES_JSON), stModules());
    mkdirSync(join(outFolder, POOLING_FOLDER), { recursive: true });
    writeJson(join(outFolder, POOLING_FOLDER, 'config.json'), poolingConfig(info, dimension));
    written.push(MODULES_JSON, `${POOLING_FOLDER}/config.json`);
  }
  for (const [name, make] of [
    [ST_CONFIG, () => stConfig(info)],
    [SBERT_CONFIG, () => ({ max_seq_length: Math.min(info.maxLength, maxPositions ?? info.maxLength), do_lower_case: false })],
  ] as const) {
    const from = join(sourceFolder, name);
    if (isFile(from)) cpSync(from, join(outFolder, name));
    else writeJson(join(outFolder, name), make());
    written.push(name);
  }
  return written;
}
