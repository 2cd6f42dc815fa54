/**
 * LoRA with PEFT's semantics (REFERENCE §7, §3.5; PEFT 0.17.0 `tuners/lora/layer.py`, `Linear`):
 *
 *   y = base(x) + (dropout(x) · Aᵀ · Bᵀ) · scaling        A [r, in], B [out, r]
 *   scaling = α / r   (α / √r with use_rslora)
 *
 * An adapter is a set of A/B pairs keyed by module path (`layers.0.self_attn.q_proj`), attached
 * to a model with `model.attachAdapter(adapter)`: every Linear of the model runs through
 * `linear(w, name, x)` (weights.ts), which calls `adapt` here. The base weights stay frozen;
 * A and B are leaves that require grad.
 *
 * Dtypes, as PEFT does them: the adapter is first cast to the base layer's dtype
 * (`_move_adapter_to_device_of_base_layer`), then `autocast_adapter_dtype` (on by default, and
 * in ms-swift) upcasts float16/bfloat16 adapters to float32 — so a bfloat16 base gets float32 A
 * and B (a new adapter's initial values rounded through bfloat16 on the way), a float32 or
 * float64 base gets adapters of its own dtype. In the forward pass x is cast to the adapter's
 * dtype (`_cast_input_dtype`), the delta is added to the base output in the promoted dtype
 * (float32 for a bfloat16 base), and the sum is cast back to the base output's dtype.
 *
 * Dropout is active only in training mode (`train()`; an adapter starts in eval mode, as a model
 * from `from_pretrained` does), and only on the LoRA branch's input.
 *
 * Training with it (src/train):
 *   manualSeed(seed);
 *   const adapter = LoraAdapter.create(embedder.encoder, { r: 8, lora_alpha: 32, lora_dropout: 0.05 });
 *   embedder.attachAdapter(adapter);            // or Embedder.load(folder, { adapter: dir }) to continue
 *   adapter.train();
 *   const params = adapter.namedParameters();   // PEFT names → trainable tensors, for AdamW
 *   const e = enableGrad(() => embedder.encodeTokens(ids, mask));
 *   adapter.save(checkpointDir, { baseModelNameOrPath });   // adapter.loadWeights(dir) to resume
 *   mergeAdapter(embedder.encoder, adapter); saveModelFolder(embedder.encoder, baseFolder, out);  // merge.ts, src/merge/export.ts
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { F, Tensor, dispose, empty, keep, kernels, noGrad, tidy, type DType } from '../../torch/index.js';
import { SafetensorsFile } from '../../formats/safetensors.js';
import { saveSafetensors } from '../../formats/safetensors_write.js';
import { writeFileAtomic } from '../../formats/atomic_write.js';
import type { JsonObject } from '../../formats/strict_json.js';
import type { AdaptableModel, ModelFamily } from '../registry.js';
import type { LinearAdapter, LinearModule } from '../weights.js';
import {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  AdapterConfigError,
  adapterConfigJson,
  loraConfig,
  loraScaling,
  readAdapterConfig,
  type LoraConfig,
} from './config.js';
import { defaultNaming, parsePeftTensorName, peftTensorName, resolveModule, type LoraMatrix, type PeftNaming } from './naming.js';

/** One adapted Linear layer. */
export interface LoraLayer {
  /** Module path in the model's naming (`layers.0.self_attn.q_proj`). */
  readonly module: string;
  readonly r: number;
  readonly alpha: number;
  readonly scaling: number;
  readonly dropout: number;
  /** [r, in_features], trainable. */
  readonly A: Tensor;
  /** [out_features, r], trainable. */
  readonly B: Tensor;
}

export interface CreateAdapterOptions {
  /**
   * PEFT's model prefix for the saved names (naming.ts). Default: Qwen3 `'model.'`
   * (Qwen3ForCausalLM, as ms-swift), BERT `''` (BertModel).
   */
  modulePrefix?: string;
}

/** The dtype PEFT gives an adapter on a base layer of `base` dtype (see the file header). */
export function adapterDtypeFor(base: DType): DType {
  return base === 'float64' ? 'float64' : 'float32';
}

/** Bound of nn.init.kaiming_uniform_(a=√5) — nn.Linear's default — for fan_in: 1/√fan_in, computed as torch does. */
export function kaimingUniformBound(fanIn: number): number {
  const a = Math.sqrt(5);
  const gain = Math.sqrt(2 / (1 + a ** 2));
  return Math.sqrt(3) * (gain / Math.sqrt(fanIn));
}

/** A regular expression from a config field; an invalid one is an error naming the field. */
function configRegExp(source: string, field: string): RegExp {
  try {
    return new RegExp(source);
  } catch (err) {
    throw new AdapterConfigError(`LoRA config: ${field} ${JSON.stringify(source)} is not a valid regular expression (${(err as Error).message})`);
  }
}

/**
 * Whether module `key` is selected by `spec` (PEFT `check_target_module_exists`): a list selects
 * a module whose path is a name or ends with `.name`; a string is a regular expression that must
 * match the whole path. `key` is the path as PEFT sees it, model prefix included
 * (`model.layers.0.self_attn.q_proj` under Qwen3ForCausalLM).
 */
function matches(spec: string[] | string, key: string, field: string): boolean {
  if (typeof spec === 'string') return configRegExp(`^(?:${spec})$`, field).test(key);
  return spec.some((t) => key === t || key.endsWith(`.${t}`));
}

/** PEFT's rank_pattern/alpha_pattern lookup: the value of the first pattern that matches the end of the path. */
function patternValue(patterns: Record<string, number>, key: string, field: string): number | undefined {
  for (const [pattern, value] of Object.entries(patterns)) {
    if (configRegExp(`^(?:.*\\.)?(?:${pattern})$`, field).test(key)) return value;
  }
  return undefined;
}

/** The layer index in a module path (`layers.3.` → 3), after one of `patterns` (default: any name). */
function layerIndex(key: string, patterns: string[] | null): number | undefined {
  for (const name of patterns ?? ['[^.]+']) {
    const m = configRegExp(`(?:^|\\.)(?:${name})\\.(\\d+)\\.`, 'layers_pattern').exec(key);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** Whether PEFT would put a LoRA layer on module `key` (its path with the model prefix); target_modules already expanded. */
function isTargeted(config: LoraConfig, key: string): boolean {
  if (config.exclude_modules !== null && matches(config.exclude_modules, key, 'exclude_modules')) return false;
  if (!matches(config.target_modules, key, 'target_modules')) return false;
  if (config.layers_to_transform !== null) {
    const index = layerIndex(key, config.layers_pattern);
    if (index === undefined || !config.layers_to_transform.includes(index)) return false;
  }
  return true;
}

/** The distinct last name components of `modules`, in order (PEFT's expansion of 'all-linear'). */
function lastComponents(modules: readonly LinearModule[]): string[] {
  return [...new Set(modules.map((m) => m.name.slice(m.name.lastIndexOf('.') + 1)))];
}

const ALL_LINEAR = 'all-linear';

/**
 * target_modules with `'all-linear'` replaced by the names of every Linear layer the model has
 * (its LM head is not among them): PEFT's expansion of the string form, and ms-swift's of a list
 * that contains it (`--target_modules all-linear q_norm…`). Both match case-insensitively.
 */
function expandAllLinear(config: LoraConfig, modules: readonly LinearModule[]): LoraConfig {
  const spec = config.target_modules;
  const isAll = (t: string) => t.toLowerCase() === ALL_LINEAR;
  if (typeof spec === 'string') return isAll(spec) ? { ...config, target_modules: lastComponents(modules) } : config;
  if (!spec.some(isAll)) return config;
  return { ...config, target_modules: [...new Set([...lastComponents(modules), ...spec.filter((t) => !isAll(t))])] };
}

export class LoraAdapter implements LinearAdapter {
  /** Dropout on (training) or off (eval). */
  training = false;

  private constructor(
    /** The configuration, as saved (`'all-linear'` in target_modules expanded to the module names). */
    readonly config: LoraConfig,
    readonly family: ModelFamily,
    readonly naming: PeftNaming,
    /** Adapted layers by module path, in the model's module order. */
    readonly layers: ReadonlyMap<string, LoraLayer>,
    /** Keys of the adapter_config.json this adapter was read from that embtune does not model (written back on save). */
    private readonly extraConfig: JsonObject = new Map(),
  ) {}

  // ------------------------------------------------------------------ creating and loading

  /**
   * A new adapter for `model` (PEFT's `get_peft_model`), not yet attached. Options not given take
   * ms-swift's defaults (config.ts). A and B are drawn from the engine's generator (seed it with
   * `manualSeed`) in PEFT's order: for each targeted module, in the model's module order,
   * nn.Linear(in, r) and nn.Linear(r, out) are built (each drawing its default init), then
   * `init_lora_weights` redraws A and zeroes B — so the same seed gives PEFT's very values.
   */
  static create(model: AdaptableModel, options: Partial<LoraConfig> = {}, opts: CreateAdapterOptions = {}): LoraAdapter {
    const naming = defaultNaming(model.family, opts.modulePrefix);
    const requested = loraConfig(options);
    if (requested.init_lora_weights === 'eva' || requested.init_lora_weights === 'orthogonal') {
      throw new AdapterConfigError(`LoRA config: init_lora_weights '${requested.init_lora_weights}' can only be loaded, not created (use true, false or 'gaussian')`);
    }
    const modules = model.linearModules();
    const config = expandAllLinear(requested, modules);
    const targeted = modules.filter((m) => isTargeted(config, naming.modulePrefix + m.name));
    checkTargetsExist(config, modules, naming, targeted);
    const dtype = adapterDtypeFor(model.dtype);
    const layers = new Map<string, LoraLayer>();
    try {
      for (const m of targeted) {
        const { r, alpha } = rankAndAlpha(config, naming.modulePrefix + m.name);
        const [a, b] = initialWeights(m, r, config.init_lora_weights as boolean | 'gaussian', model.dtype, dtype, model.device);
        layers.set(m.name, { module: m.name, r, alpha, scaling: loraScaling(alpha, r, config.use_rslora), dropout: config.lora_dropout, A: a, B: b });
      }
    } catch (err) {
      dispose([...layers.values()].flatMap((l) => [l.A, l.B]));
      throw err;
    }
    return new LoraAdapter(config, model.family, naming, layers);
  }

  /**
   * A PEFT adapter folder (adapter_config.json + adapter_model.safetensors) for `model`, not yet
   * attached. Names with any of the prefixes PEFT and ms-swift write are accepted (naming.ts);
   * every tensor must belong to a module the config targets, with shapes [r, in] / [out, r].
   */
  static load(folder: string, model: AdaptableModel): LoraAdapter {
    const file = readAdapterConfig(folder);
    const config = expandAllLinear(file.config, model.linearModules());
    const { tensors, prefix } = readAdapterTensors(folder, model, config, adapterDtypeFor(model.dtype), model.device);
    const naming: PeftNaming = { modulePrefix: prefix, autoMapping: file.autoMapping };
    const layers = new Map<string, LoraLayer>();
    for (const m of model.linearModules()) {
      const pair = tensors.get(m.name);
      if (!pair) continue;
      const { r, alpha } = rankAndAlpha(config, prefix + m.name);
      layers.set(m.name, { module: m.name, r, alpha, scaling: loraScaling(alpha, r, config.use_rslora), dropout: config.lora_dropout, A: pair.A, B: pair.B });
    }
    return new LoraAdapter(config, model.family, naming, layers, file.extra);
  }

  /**
   * Copies the A/B values of a saved adapter folder into this adapter's tensors (same names and
   * shapes required): resuming a checkpoint without rebuilding the optimizer's parameter list.
   */
  loadWeights(folder: string): void {
    const path = join(folder, ADAPTER_WEIGHTS_NAME);
    const file = openAdapterFile(folder);
    try {
      const expected = this.namedParameters();
      for (const name of file.keys()) {
        if (!expected.has(name)) throw new AdapterConfigError(`${path}: tensor '${name}' is not one of this adapter's (${expected.size} tensors, e.g. '${[...expected.keys()][0]}')`);
      }
      noGrad(() => {
        for (const [name, target] of expected) {
          if (!file.has(name)) throw new AdapterConfigError(`${path}: tensor '${name}' is missing`);
          tidy(() => {
            const t = file.tensor(name);
            checkShape(path, name, t.shape, target.shape, 'this adapter has');
            target.copy_(t);
          });
        }
      });
    } finally {
      file.close();
    }
  }

  // ------------------------------------------------------------------ forward

  /** The hook of `linear(w, name, x)`: base output plus this module's LoRA delta. */
  adapt(module: string, x: Tensor, base: Tensor): Tensor {
    const layer = this.layers.get(module);
    if (!layer) return base;
    return tidy(() => {
      // Training with dropout: one node for lora_A(dropout(x)) that keeps x (saved by the base
      // linear anyway) and a bool mask instead of the dropped input and a float noise tensor —
      // same values and draws as the composition, much less memory (kernels.dropout_linear).
      const down = this.training && layer.dropout > 0
        ? kernels.dropout_linear(x, layer.A, layer.dropout)
        : F.linear(x.dtype === layer.A.dtype ? x : x.to(layer.A.dtype), layer.A);
      const delta = F.linear(down, layer.B).mul(layer.scaling);
      const sum = base.add(delta);
      return sum.dtype === base.dtype ? sum : sum.to(base.dtype);
    });
  }

  /** Training mode: dropout on the LoRA inputs (`model.train()`). */
  train(mode = true): this {
    this.training = mode;
    return this;
  }

  /** Whether a forward now draws dropout masks (training mode and a layer with dropout). */
  get drawsDropout(): boolean {
    return this.training && [...this.layers.values()].some((layer) => layer.dropout > 0);
  }

  /** Eval mode: no dropout. */
  eval(): this {
    return this.train(false);
  }

  checkFits(modules: readonly LinearModule[], model: string): void {
    const byName = new Map(modules.map((m) => [m.name, m]));
    for (const layer of this.layers.values()) {
      const m = byName.get(layer.module);
      if (!m) throw new Error(`the LoRA adapter adapts '${layer.module}', which the model ${model} does not have`);
      const [outFeatures, r] = layer.B.shape as [number, number];
      const inFeatures = layer.A.size(1) as number;
      if (m.inFeatures !== inFeatures || m.outFeatures !== outFeatures) {
        throw new Error(`the LoRA adapter's '${layer.module}' is for a [${outFeatures}, ${inFeatures}] layer (r ${r}), the model ${model} has [${m.outFeatures}, ${m.inFeatures}]`);
      }
    }
  }

  // ------------------------------------------------------------------ parameters and saving

  /** PEFT's saved name of a module's A or B. */
  peftName(module: string, matrix: LoraMatrix): string {
    return peftTensorName(this.naming, module, matrix);
  }

  /**
   * The trainable tensors by their saved PEFT names, in PEFT's parameter order (modules in model
   * order, A before B) — what the optimizer steps and what `save` writes.
   */
  namedParameters(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const layer of this.layers.values()) {
      out.set(this.peftName(layer.module, 'A'), layer.A);
      out.set(this.peftName(layer.module, 'B'), layer.B);
    }
    return out;
  }

  parameters(): Tensor[] {
    return [...this.namedParameters().values()];
  }

  /** Number of trainable values (r·(in + out) per layer). */
  numParameters(): number {
    return this.parameters().reduce((n, t) => n + t.numel(), 0);
  }

  /**
   * Writes `folder/adapter_config.json` and `folder/adapter_model.safetensors` as PEFT's
   * `save_pretrained` does (metadata `{"format": "pt"}`, tensors in the adapter's dtype), each
   * file atomically. `baseModelNameOrPath` overrides the config's `base_model_name_or_path`.
   */
  save(folder: string, opts: { baseModelNameOrPath?: string } = {}): void {
    mkdirSync(folder, { recursive: true });
    saveSafetensors(join(folder, ADAPTER_WEIGHTS_NAME), this.namedParameters(), { format: 'pt' });
    const config = { ...this.config, base_model_name_or_path: opts.baseModelNameOrPath ?? this.config.base_model_name_or_path };
    const text = Buffer.from(adapterConfigJson(config, this.naming.autoMapping, this.extraConfig), 'utf8');
    writeFileAtomic(join(folder, ADAPTER_CONFIG_NAME), (write) => write(text));
  }

  /** Frees A and B (detach the adapter from its model first). */
  dispose(): void {
    dispose(this.parameters());
  }
}

function rankAndAlpha(config: LoraConfig, key: string): { r: number; alpha: number } {
  return { r: patternValue(config.rank_pattern, key, 'rank_pattern') ?? config.r, alpha: patternValue(config.alpha_pattern, key, 'alpha_pattern') ?? config.lora_alpha };
}

/** PEFT refuses a config that targets nothing; embtune also refuses a listed name that matches no module (a typo would silently train less). */
function checkTargetsExist(config: LoraConfig, modules: readonly LinearModule[], naming: PeftNaming, targeted: readonly LinearModule[]): void {
  const available = lastComponents(modules).join(', ');
  if (Array.isArray(config.target_modules)) {
    const unmatched = config.target_modules.filter((t) => !modules.some((m) => matches([t], naming.modulePrefix + m.name, 'target_modules')));
    if (unmatched.length > 0) throw new AdapterConfigError(`LoRA config: target_modules ${unmatched.map((t) => `'${t}'`).join(', ')} match no Linear layer of the model (it has ${available})`);
  }
  if (targeted.length === 0) throw new AdapterConfigError(`LoRA config: target_modules ${JSON.stringify(config.target_modules)} select no Linear layer of the model (it has ${available})`);
}

/**
 * A and B of a new layer, drawn as PEFT draws them (see `create`), cast to the base dtype and
 * back up to the adapter dtype, trainable, outside every scope, on the base model's `device`.
 * They are drawn on the CPU and then moved, as PEFT builds its layers on the CPU and moves them
 * to the base layer's device: a seed gives the same A on every device.
 */
function initialWeights(m: LinearModule, r: number, init: boolean | 'gaussian', baseDtype: DType, dtype: DType, device: string): [Tensor, Tensor] {
  const [a, b] = tidy(() =>
    noGrad(() => {
      const a = empty([r, m.inFeatures]).uniform_(-kaimingUniformBound(m.inFeatures), kaimingUniformBound(m.inFeatures));
      const b = empty([m.outFeatures, r]).uniform_(-kaimingUniformBound(r), kaimingUniformBound(r));
      if (init === true) a.uniform_(-kaimingUniformBound(m.inFeatures), kaimingUniformBound(m.inFeatures));
      if (init === 'gaussian') a.normal_(0, 1 / r);
      if (init !== false) b.zero_();
      const viaBase = (t: Tensor) => (baseDtype === dtype ? t.to(dtype) : t.to(baseDtype).to(dtype));
      const place = (t: Tensor) => (device === 'cpu' ? t : t.to({ device }));
      return [place(viaBase(a).contiguous()), place(viaBase(b).contiguous())];
    }),
  );
  return [keep(a).requires_grad_(true), keep(b).requires_grad_(true)];
}

function openAdapterFile(folder: string): SafetensorsFile {
  const path = join(folder, ADAPTER_WEIGHTS_NAME);
  if (!existsSync(path)) {
    if (existsSync(join(folder, 'adapter_model.bin'))) {
      throw new AdapterConfigError(
        `${folder}: only a pickle adapter (adapter_model.bin) is there. embtune does not unpickle (it can run arbitrary code); ` +
          'convert it once with Python: `PeftModel.from_pretrained(base, path).save_pretrained(path, safe_serialization=True)`',
      );
    }
    throw new AdapterConfigError(`${folder}: no ${ADAPTER_WEIGHTS_NAME}`);
  }
  try {
    return SafetensorsFile.open(path);
  } catch (err) {
    throw new AdapterConfigError(`${path}: cannot read the adapter weights: ${(err as Error).message}`);
  }
}

const FLOAT_DTYPES = new Set(['F32', 'BF16', 'F16', 'F64']);

function checkShape(path: string, name: string, shape: number[], expected: number[], why: string): void {
  if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
    throw new AdapterConfigError(`${path}: tensor '${name}' has shape [${shape.join(', ')}], expected [${expected.join(', ')}] (${why})`);
  }
}

/**
 * Reads every LoRA tensor of `folder/adapter_model.safetensors`, checked against the model and
 * the config; returns A/B by module (in `dtype`, trainable, outside every scope) and the model
 * prefix the names carry.
 */
function readAdapterTensors(folder: string, model: AdaptableModel, config: LoraConfig, dtype: DType, device: string): { tensors: Map<string, { A: Tensor; B: Tensor }>; prefix: string } {
  const path = join(folder, ADAPTER_WEIGHTS_NAME);
  const modules = model.linearModules();
  const byName = new Map(modules.map((m) => [m.name, m]));
  const moduleNames = new Set(byName.keys());
  const model_ = model.weights.source;
  const file = openAdapterFile(folder);
  const found = new Map<string, Partial<Record<LoraMatrix, string>>>();
  let prefix: string | undefined;
  const loaded: Tensor[] = [];
  try {
    for (const name of file.keys()) {
      const parsed = parsePeftTensorName(name);
      if (!parsed) throw new AdapterConfigError(`${path}: tensor '${name}' is not a LoRA weight embtune can load (expected base_model.model.<module>.lora_A.weight / .lora_B.weight)`);
      const resolved = resolveModule(parsed.path, model.family, moduleNames);
      if (!resolved) {
        throw new AdapterConfigError(`${path}: tensor '${name}' is for module '${parsed.path}', which the ${model.family} model in ${model_} does not have as a Linear layer (its first: ${modules[0]?.name ?? 'none'})`);
      }
      if (prefix !== undefined && resolved.prefix !== prefix) {
        throw new AdapterConfigError(`${path}: tensor '${name}' has model prefix '${resolved.prefix}', the others '${prefix}' (mixed namings)`);
      }
      prefix = resolved.prefix;
      if (!isTargeted(config, prefix + resolved.module)) {
        throw new AdapterConfigError(`${path}: tensor '${name}' is for module '${resolved.module}', which ${ADAPTER_CONFIG_NAME}'s target_modules ${JSON.stringify(config.target_modules)} does not select`);
      }
      const entry = found.get(resolved.module) ?? {};
      entry[parsed.matrix] = name;
      found.set(resolved.module, entry);
    }
    if (prefix === undefined) throw new AdapterConfigError(`${path}: the file holds no LoRA tensors`);
    // Every module the config selects must be in the file (PEFT would leave it at its init silently).
    for (const m of modules) {
      if (!isTargeted(config, prefix + m.name)) continue;
      const entry = found.get(m.name) ?? {};
      for (const matrix of ['A', 'B'] as const) {
        if (!entry[matrix]) throw new AdapterConfigError(`${path}: no lora_${matrix} for module '${m.name}', which ${ADAPTER_CONFIG_NAME} targets (expected '${peftTensorName({ modulePrefix: prefix, autoMapping: null }, m.name, matrix)}')`);
      }
    }
    const tensors = new Map<string, { A: Tensor; B: Tensor }>();
    for (const m of modules) {
      const entry = found.get(m.name);
      if (!entry) continue;
      const { r } = rankAndAlpha(config, prefix + m.name);
      const read = (matrix: LoraMatrix, shape: number[]): Tensor => {
        const name = entry[matrix]!;
        const stored = file.entry(name);
        if (!FLOAT_DTYPES.has(stored.dtype)) throw new AdapterConfigError(`${path}: tensor '${name}' has dtype ${stored.dtype}; LoRA weights are floating point (F32, BF16, F16, F64)`);
        checkShape(path, name, stored.shape, shape, `r = ${r} from ${ADAPTER_CONFIG_NAME}, module [${m.outFeatures}, ${m.inFeatures}]`);
        let t: Tensor;
        try {
          t = tidy(() => noGrad(() => {
            const cast = file.tensor(name).to(dtype).contiguous();
            return device === 'cpu' ? cast : cast.to({ device });
          }));
        } catch (err) {
          throw new AdapterConfigError(`${path}: tensor '${name}': ${(err as Error).message}`);
        }
        loaded.push(t);
        return keep(t).requires_grad_(true);
      };
      tensors.set(m.name, { A: read('A', [r, m.inFeatures]), B: read('B', [m.outFeatures, r]) });
    }
    return { tensors, prefix };
  } catch (err) {
    dispose(loaded);
    throw err;
  } finally {
    file.close();
  }
}
