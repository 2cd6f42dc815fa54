/**
 * `mergeAndVerify`: fold a PEFT LoRA adapter into its base (PEFT `merge_and_unload`,
 * REFERENCE §7: W' = W + scaling·B·A in float32, `mergeAdapter` in src/models/lora), write the
 * complete model folder (export.ts), then prove it: reload the folder from disk and compare its
 * embeddings with base + adapter (parity.ts), and compare them with the base alone to catch an
 * adapter that changes nothing (adapter_effect.ts).
 *
 * `verifyMerge` runs the same proof on a folder merged elsewhere (e.g. by `swift export
 * --merge_lora`).
 */
import { join } from 'node:path';
import { Embedder } from '../embed/index.js';
import { loadEncoder } from '../models/registry.js';
import { LoraAdapter, mergeAdapter } from '../models/lora/index.js';
import { SafetensorsCheckpoint } from '../formats/checkpoint.js';
import { checkDevice, tidy } from '../torch/index.js';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { saveModelFolder, type SaveDType, type SaveModelOptions, type SavedModelFolder } from './export.js';
import { modelCard } from './model_card.js';
import { NO_EFFECT_THRESHOLD, PARITY_TOLERANCE, compareVectors, embedFolder, embedSamples, parityReport, type ParityReport } from './parity.js';
import { adapterEffect, noEffectWarning, type AdapterEffect } from './adapter_effect.js';
import { heldOutSpec, readRunInfo, type RunInfo } from './run_info.js';
import { builtInSamples, heldOutSamples, type Samples } from './samples.js';

export interface MergeOptions {
  /** The base model folder (a local folder; resolve hub ids first). */
  base: string;
  /** The base as the user named it (a hub id), for the model card; default `base`. */
  baseName?: string;
  /** The PEFT adapter folder. */
  adapter: string;
  /** Where the merged model folder goes (not the base folder). */
  output: string;
  /** Saved dtype (default float32). */
  dtype?: SaveDType;
  maxShardBytes?: number;
  /** Texts to verify on (default: the adapter run's held-out rows, else built-in samples). */
  samples?: Samples;
  /** max |Δ| allowed (default PARITY_TOLERANCE[dtype]). */
  tolerance?: number;
  /** Progress lines for people. */
  say?: (line: string) => void;
  /**
   * Where the merge and the parity check run: `cpu` (default), `cuda` or `cuda:N` (checked before
   * anything is loaded). The saved weights are copied back to the CPU as they are written.
   */
  device?: string;
}

export interface MergeCheck {
  parity: ParityReport;
  effect: AdapterEffect;
  /** max |Δ| between the base's and the merged model's unit vectors. */
  changeFromBase: number;
  /** Adapted weights that differ from the base's in the saved folder. */
  changedWeights: number;
  /** The loud no-effect warning, when the adapter changes nothing. */
  warning?: string;
}

export interface MergeResult extends MergeCheck {
  output: string;
  /** Files written, relative to `output`. */
  files: string[];
  run: RunInfo;
}

/** The texts to verify on: given, else the run's held-out rows, else the built-in samples. */
export async function verificationSamples(adapterFolder: string, run: RunInfo = readRunInfo(adapterFolder), given?: Samples): Promise<Samples> {
  if (given) return given;
  const spec = heldOutSpec(run);
  if (spec) {
    try {
      const samples = await heldOutSamples(spec);
      if (samples.texts.length > 0) return samples;
    } catch {
      // The run's data may have moved since training; the built-in texts still prove the merge.
    }
  }
  return builtInSamples();
}

interface Reference {
  base: Float32Array[];
  adapted: Float32Array[];
  pooling: string;
  effect: AdapterEffect;
  /** Adapted modules and their weights' names in the base checkpoint. */
  weights: { module: string; stored: string }[];
}

function reference(embedder: Embedder, adapter: LoraAdapter, samples: Samples): Reference {
  const base = embedSamples(embedder, samples.texts);
  embedder.attachAdapter(adapter);
  const adapted = embedSamples(embedder, samples.texts);
  embedder.attachAdapter(undefined);
  const weights = [...adapter.layers.keys()].map((module) => ({ module, stored: embedder.encoder.weights.checkpointName(`${module}.weight`) }));
  return { base, adapted, pooling: embedder.info.pooling, effect: adapterEffect(adapter), weights };
}

/** The name `name` has in `checkpoint`: as the base stores it, flat, or with a `model.`/`bert.` prefix (swift export writes `model.`). */
function findTensor(checkpoint: SafetensorsCheckpoint, candidates: string[]): string | undefined {
  return candidates.find((n) => checkpoint.has(n));
}

/**
 * How many of the adapted weights differ between the base checkpoint and the merged one, both
 * read as float32, one tensor at a time from disk.
 */
function countChangedWeights(baseFolder: string, mergedFolder: string, weights: { module: string; stored: string }[]): number {
  const base = SafetensorsCheckpoint.open(baseFolder);
  const merged = SafetensorsCheckpoint.open(mergedFolder);
  try {
    let changed = 0;
    for (const { module, stored } of weights) {
      const flat = `${module}.weight`;
      const name = findTensor(merged, [stored, flat, `model.${flat}`, `bert.${flat}`]);
      if (name === undefined) throw new Error(`${mergedFolder} has no tensor '${stored}'`);
      const differs = tidy(() => Boolean(base.tensor(stored).to('float32').ne(merged.tensor(name).to('float32')).any().item()));
      if (differs) changed++;
    }
    return changed;
  } finally {
    base.close();
    merged.close();
  }
}

async function check(ref: Reference, mergedFolder: string, samples: Samples, dtype: SaveDType, tolerance: number, changedWeights: number, device: string): Promise<MergeCheck> {
  // On the device the reference ran on, so the comparison measures the merge, not CPU-vs-GPU kernels.
  const merged = await embedFolder(mergedFolder, samples.texts, ref.pooling, device);
  const parity = parityReport(compareVectors(merged, ref.adapted), samples, tolerance, dtype);
  const changeFromBase = compareVectors(merged, ref.base).maxAbsDiff;
  const warning = noEffectWarning(ref.effect, changeFromBase, changedWeights, NO_EFFECT_THRESHOLD);
  return { parity, effect: ref.effect, changeFromBase, changedWeights, ...(warning ? { warning } : {}) };
}

/** Merges, writes, reloads and verifies (see the module comment). */
export async function mergeAndVerify(opts: MergeOptions): Promise<MergeResult> {
  const dtype = opts.dtype ?? 'float32';
  const device = checkDevice(opts.device ?? 'cpu');
  const say = opts.say ?? (() => {});
  const run = readRunInfo(opts.adapter);
  const samples = await verificationSamples(opts.adapter, run, opts.samples);
  const embedder = await Embedder.load(opts.base, { dtype: 'float32', device });
  let ref: Reference;
  let files: string[];
  try {
    const adapter = LoraAdapter.load(opts.adapter, embedder.encoder);
    try {
      say(`embedding ${samples.texts.length} texts with the base and with base + adapter (${adapter.layers.size} adapted layers)`);
      ref = reference(embedder, adapter, samples);
      mergeAdapter(embedder.encoder, adapter);
    } finally {
      adapter.dispose();
    }
    say(`writing ${opts.output} (${dtype})`);
    files = saveModelFolder(embedder.encoder, opts.base, opts.output, { dtype, ...(opts.maxShardBytes === undefined ? {} : { maxShardBytes: opts.maxShardBytes }) }).files;
  } finally {
    embedder.dispose();
  }
  // What the saved folder really changed (bfloat16 rounding can swallow a delta).
  const changedWeights = countChangedWeights(opts.base, opts.output, ref.weights);
  say(`reloading ${opts.output} from disk to verify it`);
  const result = await check(ref, opts.output, samples, dtype, opts.tolerance ?? PARITY_TOLERANCE[dtype], changedWeights, device);
  const card = modelCard({ base: opts.baseName ?? opts.base, method: `LoRA adapter \`${opts.adapter}\` merged (W + scaling·B·A, PEFT merge_and_unload), saved as ${dtype}`, run, parity: result.parity.line, queryPrompt: ref.pooling === 'lasttoken' ? 'query' : undefined });
  const bytes = Buffer.from(card, 'utf8');
  writeFileAtomic(join(opts.output, 'README.md'), (write) => write(bytes));
  return { ...result, output: opts.output, files: [...files, 'README.md'], run };
}

export interface VerifyOptions {
  base: string;
  adapter: string;
  /** The merged folder to check. */
  merged: string;
  /** Its dtype, for the tolerance (default float32). */
  dtype?: SaveDType;
  samples?: Samples;
  tolerance?: number;
  /** Where the check runs (default `cpu`). */
  device?: string;
}

/** The proof of `mergeAndVerify` for a folder merged elsewhere. */
export async function verifyMerge(opts: VerifyOptions): Promise<MergeCheck> {
  const dtype = opts.dtype ?? 'float32';
  const device = checkDevice(opts.device ?? 'cpu');
  const samples = await verificationSamples(opts.adapter, undefined, opts.samples);
  const embedder = await Embedder.load(opts.base, { dtype: 'float32', device });
  try {
    const adapter = LoraAdapter.load(opts.adapter, embedder.encoder);
    let ref: Reference;
    try {
      ref = reference(embedder, adapter, samples);
    } finally {
      adapter.dispose();
    }
    const changed = countChangedWeights(opts.base, opts.merged, ref.weights);
    return await check(ref, opts.merged, samples, dtype, opts.tolerance ?? PARITY_TOLERANCE[dtype], changed, device);
  } finally {
    embedder.dispose();
  }
}

/**
 * The merge alone, without the proof: loads the base (float32) and the adapter, merges, and
 * writes the folder (what `swift export --merge_lora` / PEFT `merge_and_unload().save_pretrained()`
 * produce, plus the files export.ts adds).
 */
export function mergeAdapterFolder(baseFolder: string, adapterFolder: string, outFolder: string, opts: SaveModelOptions = {}): SavedModelFolder {
  const { encoder } = loadEncoder(baseFolder, 'float32');
  try {
    const adapter = LoraAdapter.load(adapterFolder, encoder);
    try {
      mergeAdapter(encoder, adapter);
    } finally {
      adapter.dispose();
    }
    return saveModelFolder(encoder, baseFolder, outFolder, opts);
  } finally {
    encoder.dispose();
  }
}
