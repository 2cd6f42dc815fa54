/**
 * Writes a model as a complete Hugging Face model folder — what transformers'
 * `save_pretrained` writes for the model, plus what sentence-transformers, TEI and vLLM need to
 * load it unchanged:
 *
 *   config.json          the base's, `torch_dtype` (and `dtype`, where the base has it) set to
 *                        the saved dtype, written as transformers writes it (sorted keys, indent 2)
 *   model.safetensors    the weights under the base checkpoint's own names, sharded past 5 GB
 *                        (model-0000i-of-0000n.safetensors + index, src/formats/checkpoint.ts)
 *   tokenizer.json …     uncompressed, plus the tokenizer configs (tokenizer_files.ts)
 *   modules.json …       the sentence-transformers files (sentence_transformers.ts)
 *   README.md            a model card, when one is given (model_card.ts)
 *
 * Merging LoRA adapters (merge.ts), fusing models (fuse.ts) and full fine-tuning checkpoints
 * (src/train) all export through `saveModelFolder`.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { keep, noGrad, type DType, type Tensor } from '../torch/index.js';
import { saveSharded, type SavedCheckpoint } from '../formats/checkpoint.js';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { dumpsPython } from '../formats/python_json.js';
import { isJsonObject, parseStrictJson } from '../formats/strict_json.js';
import { describeModel, type AdaptableModel } from '../models/registry.js';
import { writeSentenceTransformersFiles } from './sentence_transformers.js';
import { writeTokenizerFiles } from './tokenizer_files.js';

export type SaveDType = 'float32' | 'bfloat16' | 'float16';

export interface SaveModelOptions {
  /** Dtype of the saved floating-point weights (default: the model's, as `save_pretrained` keeps it). */
  dtype?: SaveDType;
  /** Shard size limit in bytes (default huggingface_hub's 5 GB). */
  maxShardBytes?: number;
  /** README.md model card text (none is written without it). */
  modelCard?: string;
}

export interface SavedModelFolder {
  folder: string;
  weights: SavedCheckpoint;
  /** Every file written, relative to the folder (folders end in `/`). */
  files: string[];
}

/**
 * Writes `model`'s weights (under the names of `sourceFolder`'s checkpoint), config, tokenizer
 * and sentence-transformers files into `outFolder` (see the module comment).
 */
export function saveModelFolder(model: AdaptableModel, sourceFolder: string, outFolder: string, opts: SaveModelOptions = {}): SavedModelFolder {
  if (resolve(sourceFolder) === resolve(outFolder)) throw new Error(`${outFolder}: the export would overwrite the base model folder it reads from; choose another folder`);
  mkdirSync(outFolder, { recursive: true });
  const dtype: DType = opts.dtype ?? model.dtype;
  const weights = saveWeights(model, outFolder, dtype, opts.maxShardBytes);
  const config = writeConfig(sourceFolder, outFolder, dtype);
  const info = describeModel(sourceFolder);
  const files = [
    ...weights.files,
    ...(weights.index ? ['model.safetensors.index.json'] : []),
    'config.json',
    ...writeTokenizerFiles(sourceFolder, outFolder),
    ...writeSentenceTransformersFiles(sourceFolder, outFolder, info, config.hiddenSize, config.maxPositions),
  ];
  if (opts.modelCard !== undefined) {
    const bytes = Buffer.from(opts.modelCard, 'utf8');
    writeFileAtomic(join(outFolder, 'README.md'), (write) => write(bytes));
    files.push('README.md');
  }
  return { folder: outFolder, weights, files };
}

function isFloating(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'bfloat16' || dtype === 'float16' || dtype === 'float64';
}

/** The weights in `dtype` under their checkpoint names; converted copies are freed once written. */
function saveWeights(model: AdaptableModel, outFolder: string, dtype: DType, maxShardBytes: number | undefined): SavedCheckpoint {
  const tensors = new Map<string, Tensor>();
  const made: Tensor[] = [];
  try {
    for (const name of model.weights.keys()) {
      const t = model.weights.get(name);
      const out = isFloating(t.dtype) && t.dtype !== dtype ? noGrad(() => keep(t.to(dtype))) : t;
      if (out !== t) made.push(out);
      tensors.set(model.weights.checkpointName(name), out);
    }
    return saveSharded(outFolder, tensors, maxShardBytes === undefined ? {} : { maxShardBytes });
  } finally {
    for (const t of made) t.dispose();
  }
}

/** config.json as transformers writes it (`json.dumps(indent=2, sort_keys=True) + "\n"`), numbers kept as written. */
function writeConfig(sourceFolder: string, outFolder: string, dtype: DType): { hiddenSize: number; maxPositions?: number } {
  const path = join(sourceFolder, 'config.json');
  let config;
  try {
    config = parseStrictJson(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: cannot read the base config (${(err as Error).message})`);
  }
  if (!isJsonObject(config)) throw new Error(`${path}: expected a JSON object`);
  config.set('torch_dtype', dtype);
  // transformers ≥ 4.56 writes `dtype` instead; keep both in step where the base has it.
  if (config.has('dtype')) config.set('dtype', dtype);
  const text = Buffer.from(`${dumpsPython(config)}\n`, 'utf8');
  writeFileAtomic(join(outFolder, 'config.json'), (write) => write(text));
  const hidden = Number(config.get('hidden_size'));
  const positions = Number(config.get('max_position_embeddings'));
  if (!Number.isInteger(hidden) || hidden <= 0) throw new Error(`${path}: no integer hidden_size`);
  return { hiddenSize: hidden, maxPositions: Number.isInteger(positions) && positions > 0 ? positions : undefined };
}
