/**
 * Merging a LoRA adapter into its base model and exporting the result as a Hugging Face model
 * folder (PEFT `merge_and_unload`, REFERENCE §7; fixtures/README.md §9):
 *
 *   W' = W + scaling · (B · A)
 *
 * PEFT's `get_delta_weight` computes (B·A)·scaling in the adapter's dtype (float32), and
 * `merge` adds it to the weight in place — PyTorch computes `bf16 += f32` in float32 and rounds
 * the result to the weight's dtype. So here: in float32 (float64 for a float64 model), then cast
 * to the base dtype. The exported folder is what `save_pretrained` writes for the merged model:
 * config.json (the base's, `torch_dtype` set to the saved dtype), model.safetensors (sharded
 * beyond 5 GB) with the base checkpoint's own tensor names, and the tokenizer and
 * sentence-transformers files copied from the base folder.
 */
import { cpSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { keep, noGrad, tidy, type DType, type Tensor } from '../../torch/index.js';
import { saveSharded } from '../../formats/checkpoint.js';
import { writeFileAtomic } from '../../formats/atomic_write.js';
import { isJsonObject, parseStrictJson } from '../../formats/strict_json.js';
import { loadEncoder, type AdaptableModel } from '../registry.js';
import { LoraAdapter } from './adapter.js';
import { dumpsPython } from '../../formats/python_json.js';

/**
 * Adds the adapter's delta to the model's weights (in place) and detaches the adapter from the
 * model if it was attached, so that the delta is not applied twice. The adapter itself is left
 * as it was.
 */
export function mergeAdapter(model: AdaptableModel, adapter: LoraAdapter): void {
  adapter.checkFits(model.linearModules(), model.weights.source);
  if (model.adapter === adapter) model.attachAdapter(undefined);
  noGrad(() => {
    for (const layer of adapter.layers.values()) {
      const name = `${layer.module}.weight`;
      const weight = model.weights.get(name);
      const merged = tidy(() => {
        const compute: DType = weight.dtype === 'float64' ? 'float64' : 'float32';
        const delta = layer.B.to(compute).matmul(layer.A.to(compute)).mul(layer.scaling);
        return weight.to(compute).add(delta).to(weight.dtype).contiguous();
      });
      model.weights.set(name, keep(merged));
    }
  });
}

/** The files besides the weights that a model folder carries and a merged export keeps. */
const COPIED_FILES = [
  'tokenizer.json',
  'tokenizer.json.gz',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'vocab.txt',
  'generation_config.json',
  'modules.json',
  'config_sentence_transformers.json',
  'sentence_bert_config.json',
];

export interface SaveModelOptions {
  /** Dtype of the saved floating-point weights (default: the model's, as `save_pretrained` keeps it). */
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** Shard size limit in bytes (default huggingface_hub's 5 GB). */
  maxShardBytes?: number;
}

/**
 * Writes `model`'s weights (under the names of `sourceFolder`'s checkpoint), `sourceFolder`'s
 * config.json with `torch_dtype` updated, and its tokenizer and sentence-transformers files
 * (including module folders such as `1_Pooling/` listed in modules.json) into `outFolder`.
 */
export function saveModelFolder(model: AdaptableModel, sourceFolder: string, outFolder: string, opts: SaveModelOptions = {}): void {
  if (resolve(sourceFolder) === resolve(outFolder)) throw new Error(`${outFolder}: the export would overwrite the base model folder it reads from; choose another folder`);
  const tensors = new Map<string, Tensor>();
  const dtype: DType = opts.dtype ?? model.dtype;
  const made: Tensor[] = [];
  try {
    for (const name of model.weights.keys()) {
      const t = model.weights.get(name);
      const out = isFloating(t.dtype) && t.dtype !== dtype ? noGrad(() => keep(t.to(dtype))) : t;
      if (out !== t) made.push(out);
      tensors.set(model.weights.checkpointName(name), out);
    }
    saveSharded(outFolder, tensors, opts.maxShardBytes === undefined ? {} : { maxShardBytes: opts.maxShardBytes });
  } finally {
    for (const t of made) t.dispose();
  }
  writeConfig(sourceFolder, outFolder, dtype);
  copyModelFiles(sourceFolder, outFolder);
}

function isFloating(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'bfloat16' || dtype === 'float16' || dtype === 'float64';
}

/** config.json as transformers writes it (`json.dumps(indent=2, sort_keys=True) + "\n"`), numbers kept as written. */
function writeConfig(sourceFolder: string, outFolder: string, dtype: DType): void {
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
}

function copyModelFiles(sourceFolder: string, outFolder: string): void {
  for (const name of COPIED_FILES) {
    const from = join(sourceFolder, name);
    if (existsSync(from) && statSync(from).isFile()) cpSync(from, join(outFolder, name));
  }
  // sentence-transformers modules other than the Transformer itself (1_Pooling, 2_Normalize, …).
  const modulesPath = join(sourceFolder, 'modules.json');
  if (!existsSync(modulesPath)) return;
  const modules = JSON.parse(readFileSync(modulesPath, 'utf8')) as { path?: string }[];
  for (const m of Array.isArray(modules) ? modules : []) {
    if (typeof m.path !== 'string' || m.path === '' || m.path.includes('..')) continue;
    const from = join(sourceFolder, m.path);
    if (existsSync(from) && statSync(from).isDirectory()) cpSync(from, join(outFolder, m.path), { recursive: true });
  }
}

/**
 * Loads the base model folder and the adapter folder, merges, and writes the merged model folder
 * (what `swift export --merge_lora` / PEFT `merge_and_unload().save_pretrained()` produce). The
 * merge runs on float32 weights; `dtype` picks the saved dtype (default float32).
 */
export function mergeAdapterFolder(baseFolder: string, adapterFolder: string, outFolder: string, opts: SaveModelOptions = {}): void {
  const { encoder } = loadEncoder(baseFolder, 'float32');
  try {
    const adapter = LoraAdapter.load(adapterFolder, encoder);
    try {
      mergeAdapter(encoder, adapter);
    } finally {
      adapter.dispose();
    }
    saveModelFolder(encoder, baseFolder, outFolder, opts);
  } finally {
    encoder.dispose();
  }
}
