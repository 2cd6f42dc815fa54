/**
 * Fusing full models of one architecture (`embtune fuse --models A B …`), tensor by tensor:
 * the first model is loaded (float32) and each of its tensors is replaced by the fusion of it
 * with the same tensor of every other model (and the base), read from disk one at a time — so
 * one model is in memory, not N. The result keeps the first model's tensor names, config,
 * tokenizer and sentence-transformers files, and goes through the same export and check as a
 * merge: written with saveModelFolder, reloaded from disk, its embeddings compared with those
 * of the in-memory fused weights (parity.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Embedder } from '../embed/index.js';
import { SafetensorsCheckpoint } from '../formats/checkpoint.js';
import { loadEncoder } from '../models/registry.js';
import { loadTokenizer } from '../tokenizers/index.js';
import { manualSeed, tidy, type Tensor } from '../torch/index.js';
import { saveModelFolder, type SaveDType } from './export.js';
import { checkFuseOptions, describeFusion, fuseTensor, type FuseMethodOptions } from './fuse_method.js';
import { modelCard } from './model_card.js';
import { PARITY_TOLERANCE, compareVectors, embedFolder, embedSamples, parityReport, type ParityReport } from './parity.js';
import { builtInSamples, type Samples } from './samples.js';
import { writeFileAtomic } from '../formats/atomic_write.js';

export interface FuseOutputOptions {
  output: string;
  /** Saved dtype (default float32). */
  dtype?: SaveDType;
  maxShardBytes?: number;
  samples?: Samples;
  tolerance?: number;
  /** DARE's seed (default 42). */
  seed?: number;
  say?: (line: string) => void;
  /** Called after each fused tensor (module, for adapters): done of total. */
  onProgress?: (done: number, total: number) => void;
}

export interface FuseModelsOptions extends FuseMethodOptions, FuseOutputOptions {
  /** Model folders (local; resolve hub ids first). The first gives names, config and tokenizer. */
  models: string[];
  /** Base model folder for the task-vector methods (and optionally multi-model SLERP). */
  base?: string;
  /** The inputs as the user named them, for the model card. */
  names?: string[];
}

export interface FuseResult {
  output: string;
  files: string[];
  parity: ParityReport;
  /** The method line. */
  description: string;
  tensors: number;
}

/** config.json keys that must agree for two checkpoints to be one architecture. */
const ARCH_KEYS = ['model_type', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim', 'intermediate_size', 'vocab_size'];

function checkSameArchitecture(first: string, other: string): void {
  const read = (f: string) => JSON.parse(readFileSync(join(f, 'config.json'), 'utf8')) as Record<string, unknown>;
  const a = read(first);
  const b = read(other);
  for (const key of ARCH_KEYS) {
    if (a[key] !== b[key]) throw new Error(`${other} is not the architecture of ${first}: config.json ${key} is ${JSON.stringify(b[key])}, not ${JSON.stringify(a[key])}; fusion needs models of one architecture`);
  }
}

/** The name `name` (stored as `stored` in the first model) has in `checkpoint`, if any. */
export function findName(checkpoint: SafetensorsCheckpoint, stored: string, name: string): string | undefined {
  return [stored, name, `model.${name}`, `bert.${name}`].find((n) => checkpoint.has(n));
}

/** Tensor names of `checkpoint` the loader ignores (BERT pre-training heads, a tied LM head). */
const IGNORED = /^(bert\.)?cls\.|^lm_head\.weight$/;

interface Input {
  folder: string;
  checkpoint: SafetensorsCheckpoint;
}

function openInputs(folders: readonly string[]): Input[] {
  const out: Input[] = [];
  try {
    for (const folder of folders) out.push({ folder, checkpoint: SafetensorsCheckpoint.open(folder) });
  } catch (err) {
    for (const i of out) i.checkpoint.close();
    throw err;
  }
  return out;
}

/** Every input holds every tensor of the first model, with its shape, and no other tensor. */
function checkTensors(names: { name: string; stored: string; shape: number[] }[], first: string, inputs: readonly Input[]): void {
  for (const input of inputs) {
    const matched = new Set<string>();
    for (const { name, stored, shape } of names) {
      const found = findName(input.checkpoint, stored, name);
      if (found === undefined) throw new Error(`${input.folder} has no tensor '${stored}' (${first} has it): fusion needs models with the same tensors`);
      const other = input.checkpoint.entry(found).shape;
      if (other.join() !== shape.join()) throw new Error(`${input.folder}: tensor '${found}' has shape [${other.join(', ')}], ${first} has [${shape.join(', ')}]`);
      matched.add(found);
    }
    const extra = input.checkpoint.keys().filter((k) => !matched.has(k) && !IGNORED.test(k));
    if (extra.length > 0) throw new Error(`${input.folder} has ${extra.length} tensor(s) ${first} lacks (first: '${extra[0]}'): fusion needs models with the same tensors`);
  }
}

/** Fuses full models (see the module comment). */
export async function fuseModels(opts: FuseModelsOptions): Promise<FuseResult> {
  const say = opts.say ?? (() => {});
  const dtype = opts.dtype ?? 'float32';
  const weights = checkFuseOptions(opts, opts.models.length, opts.base !== undefined);
  const [first, ...rest] = opts.models as [string, ...string[]];
  for (const other of [...rest, ...(opts.base ? [opts.base] : [])]) checkSameArchitecture(first, other);
  const description = describeFusion(opts, weights, opts.models.length);
  const samples = opts.samples ?? builtInSamples();
  const { encoder, info } = loadEncoder(first, 'float32');
  let reference: Float32Array[];
  let files: string[];
  let count = 0;
  try {
    const names = encoder.weights.keys().map((name) => {
      const t = encoder.weights.get(name);
      return { name, stored: encoder.weights.checkpointName(name), shape: [...t.shape], floating: t.dtype === 'float32' };
    });
    const inputs = openInputs(rest);
    const base = opts.base ? openInputs([opts.base])[0] : undefined;
    try {
      checkTensors(names, first, [...inputs, ...(base ? [base] : [])]);
      if (opts.method === 'dare_ties' || opts.method === 'dare_linear') manualSeed(opts.seed ?? 42);
      say(`fusing ${opts.models.length} models (${description}), ${names.length} tensors`);
      for (const [i, { name, stored, floating }] of names.entries()) {
        opts.onProgress?.(i, names.length);
        if (!floating) continue;
        const fused = tidy(() => {
          const read = (input: Input): Tensor => input.checkpoint.tensor(findName(input.checkpoint, stored, name)!).to('float32');
          const tensors = [encoder.weights.get(name), ...inputs.map(read)];
          return fuseTensor(opts, weights, tensors, base ? read(base) : undefined).contiguous();
        });
        encoder.weights.set(name, fused);
        count++;
      }
      opts.onProgress?.(names.length, names.length);
    } finally {
      for (const i of [...inputs, ...(base ? [base] : [])]) i.checkpoint.close();
    }
    const embedder = new Embedder(encoder, await loadTokenizer(first), info, first);
    reference = embedSamples(embedder, samples.texts);
    say(`writing ${opts.output} (${dtype})`);
    files = saveModelFolder(encoder, first, opts.output, { dtype, ...(opts.maxShardBytes === undefined ? {} : { maxShardBytes: opts.maxShardBytes }) }).files;
  } finally {
    encoder.dispose();
  }
  say(`reloading ${opts.output} from disk to verify it`);
  const written = await embedFolder(opts.output, samples.texts, info.pooling);
  const parity = parityReport(compareVectors(written, reference), samples, opts.tolerance ?? PARITY_TOLERANCE[dtype], dtype);
  const named = opts.names ?? opts.models;
  const card = modelCard({ base: named[0]!, method: `fusion of ${named.map((n) => `\`${n}\``).join(', ')}${opts.base ? ` over the base \`${opts.base}\`` : ''}: ${description} (mergekit's definitions), saved as ${dtype}`, parity: parity.line, queryPrompt: info.prompts.query });
  const bytes = Buffer.from(card, 'utf8');
  writeFileAtomic(join(opts.output, 'README.md'), (write) => write(bytes));
  return { output: opts.output, files: [...files, 'README.md'], parity, description, tensors: count };
}
