/**
 * Model weights by checkpoint name, loaded from an HF model folder. Names are normalised the way
 * transformers' `from_pretrained` accepts them (REFERENCE Gotcha 20): a `model.` prefix (Qwen3
 * saved from *ForCausalLM) or `bert.` prefix (BERT saved from *ForPreTraining) is stripped, BERT's
 * legacy LayerNorm `gamma`/`beta` become `weight`/`bias`, and heads the encoder does not use
 * (`cls.*`) are ignored. A missing or misshapen tensor is an error that names it and the folder.
 * Pickle checkpoints (`pytorch_model.bin`) are refused: unpickling runs arbitrary code.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { F, Tensor, checkDevice, dispose, emptyCache, keep, tidy, type DType } from '../torch/index.js';
import { ModelLoadError, readConfig } from './model_info.js';
import { SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, SafetensorsCheckpoint } from '../formats/checkpoint.js';

export { ModelLoadError, readConfig } from './model_info.js';

export interface NameRules {
  /** Prefixes removed from checkpoint names, first match wins (e.g. `model.`, `bert.`). */
  stripPrefixes?: string[];
  /** Names to leave out (e.g. /^cls\./ for BERT pre-training heads). */
  ignore?: RegExp[];
  /** Suffix renames applied after stripping (e.g. LayerNorm.gamma → LayerNorm.weight). */
  renames?: [RegExp, string][];
}

export class WeightStore {
  private readonly used = new Set<string>();

  constructor(
    private readonly tensors: Map<string, Tensor>,
    /** Where the weights came from, for error messages. */
    readonly source: string,
    /** Normalised name → the name in the checkpoint file, where they differ (written back on export). */
    private readonly checkpointNames: ReadonlyMap<string, string> = new Map(),
  ) {}

  /** The name `name` had in the checkpoint file (before prefix stripping and renames). */
  checkpointName(name: string): string {
    return this.checkpointNames.get(name) ?? name;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** The tensor `name`, optionally checked against an expected shape. */
  get(name: string, shape?: number[]): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new ModelLoadError(`${this.source}: the checkpoint has no tensor '${name}'`);
    if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new ModelLoadError(`${this.source}: tensor '${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`);
    }
    this.used.add(name);
    return t;
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  /** Names that the model did not ask for (after a model has been built over the store). */
  unused(): string[] {
    return this.keys().filter((k) => !this.used.has(k));
  }

  /** Replaces a tensor (merging, dtype changes); the old one is disposed, the new one leaves every open scope. */
  set(name: string, t: Tensor): void {
    const old = this.tensors.get(name);
    if (old !== t) old?.dispose();
    this.tensors.set(name, keep(t));
  }

  dispose(): void {
    dispose([...this.tensors.values()]);
    this.tensors.clear();
  }
}

/** Refuses folders whose only weights are pickles, before looking for safetensors. */
function refusePickleOnly(folder: string): void {
  if (existsSync(join(folder, SAFE_WEIGHTS_NAME)) || existsSync(join(folder, SAFE_WEIGHTS_INDEX_NAME))) return;
  for (const pickle of ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'model.pt']) {
    if (existsSync(join(folder, pickle))) {
      throw new ModelLoadError(
        `${folder}: only a pickle checkpoint (${pickle}) is there. embtune does not unpickle (it can run arbitrary code); ` +
          'convert it once with Python: `from transformers import AutoModel; AutoModel.from_pretrained(path).save_pretrained(path, safe_serialization=True)`',
      );
    }
  }
  throw new ModelLoadError(`${folder}: no ${SAFE_WEIGHTS_NAME} or ${SAFE_WEIGHTS_INDEX_NAME}`);
}

function normalise(name: string, rules: NameRules): string | undefined {
  let out = name;
  for (const prefix of rules.stripPrefixes ?? []) {
    if (out.startsWith(prefix)) {
      out = out.slice(prefix.length);
      break;
    }
  }
  if (rules.ignore?.some((re) => re.test(out))) return undefined;
  for (const [re, to] of rules.renames ?? []) out = out.replace(re, to);
  return out;
}

/**
 * Loads every tensor of a folder's checkpoint, renamed by `rules`, as `dtype` (floating tensors
 * only), onto `device` (checked first: a CUDA device this build or machine lacks is refused before
 * anything is read). Each tensor is converted on the CPU, then moved, so the bytes copied to a GPU
 * are the final dtype's and the values are those of a CPU load.
 */
export function loadWeights(folder: string, rules: NameRules, dtype: DType = 'float32', device: string = 'cpu'): WeightStore {
  const target = checkDevice(device);
  refusePickleOnly(folder);
  const tensors = new Map<string, Tensor>();
  const checkpointNames = new Map<string, string>();
  const checkpoint = SafetensorsCheckpoint.open(folder);
  try {
    for (const key of checkpoint.keys()) {
      const name = normalise(key, rules);
      if (name === undefined) continue;
      if (tensors.has(name)) throw new ModelLoadError(`${folder}: '${key}' maps to '${name}', which another tensor already has`);
      if (name !== key) checkpointNames.set(name, key);
      tensors.set(
        name,
        tidy(() => {
          const t = checkpoint.tensor(key);
          const cast = t.dtype === dtype || !isFloat(t.dtype) ? t : t.to(dtype);
          return target === 'cpu' ? cast : cast.to({ device: target });
        }),
      );
    }
  } catch (err) {
    dispose([...tensors.values()]);
    throw err;
  } finally {
    checkpoint.close();
    // Conversions leave one-off blocks (the float32 originals of bfloat16 weights) in the CPU
    // allocator's cache that no later tensor fits: give them back now.
    emptyCache();
  }
  return new WeightStore(tensors, folder, checkpointNames);
}

function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'bfloat16' || dtype === 'float16' || dtype === 'float64';
}

/** Reads config.json and the weights of a folder and builds a model over them; the weights are freed if the build fails. */
export function loadModelFolder<C, M>(folder: string, rules: NameRules, dtype: DType, build: (config: C, weights: WeightStore) => M, device: string = 'cpu'): M {
  const config = readConfig<C>(folder);
  const weights = loadWeights(folder, rules, dtype, device);
  try {
    return build(config, weights);
  } catch (err) {
    weights.dispose();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// The one place a model's Linear layers run. Model code calls `linear(w, 'q_proj', x)` where the
// Python has `self.q_proj(x)`; the lookup `w` knows its module path and the adapter attached to
// the model (src/models/lora), which adds its delta to the base output. Without an adapter this
// is exactly `F.linear(x, W, b)`.

/** What a Linear layer of a model is: its module path (`layers.0.self_attn.q_proj`) and sizes. */
export interface LinearModule {
  /** Module path in the model's normalised naming; the weight is `${name}.weight`. */
  name: string;
  inFeatures: number;
  outFeatures: number;
}

/** Something that changes the output of some Linear layers (a LoRA adapter). */
export interface LinearAdapter {
  /**
   * The output of module `module` given its input `x` and the base layer's output `base`
   * (x·Wᵀ + b); `base` itself for modules the adapter does not touch.
   */
  adapt(module: string, x: Tensor, base: Tensor): Tensor;
  /** Throws unless every module the adapter touches is among `modules` with the same sizes. */
  checkFits(modules: readonly LinearModule[], model: string): void;
}

/**
 * Looks a parameter up by its checkpoint name, relative to a module. A plain
 * `(name) => Tensor` function is a valid lookup (no adapter); `scoped` and `rootWeights` carry
 * the module path and the adapter along.
 */
export interface Weights {
  (name: string): Tensor;
  /** The module path of this scope ('' at the model's root). */
  readonly path?: string;
  /** The adapter every `linear` under this scope consults. */
  readonly adapter?: LinearAdapter;
}

/** The lookup of a model's root module, with its adapter (if any). */
export function rootWeights(store: WeightStore, adapter?: LinearAdapter): Weights {
  return Object.assign((name: string) => store.get(name), { path: '', adapter });
}

/** The lookup of submodule `prefix` (`layers.3`, `self_attn`): names, path and adapter carried along. */
export function scoped(weights: Weights, prefix: string): Weights {
  const path = weights.path ? `${weights.path}.${prefix}` : prefix;
  return Object.assign((name: string) => weights(`${prefix}.${name}`), { path, adapter: weights.adapter });
}

/**
 * `nn.Linear` module `module` of scope `w` applied to x: x·Wᵀ (+ b with `bias`), then the
 * adapter's change, if one is attached and targets this module.
 */
export function linear(w: Weights, module: string, x: Tensor, opts: { bias?: boolean } = {}): Tensor {
  const base = F.linear(x, w(`${module}.weight`), opts.bias ? w(`${module}.bias`) : undefined);
  if (!w.adapter) return base;
  return w.adapter.adapt(w.path ? `${w.path}.${module}` : module, x, base);
}
