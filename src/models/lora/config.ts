/**
 * The LoRA configuration, as PEFT's `LoraConfig` (REFERENCE §7; PEFT 0.17.0
 * `src/peft/tuners/lora/config.py`) with its field names, and the `adapter_config.json` file
 * that holds it: read (unknown keys ignored but kept, so a newer PEFT's fields survive a
 * load/save round trip) and written with every field PEFT 0.17.0 writes, in PEFT's layout
 * (`json.dumps(indent=2, sort_keys=True)`).
 *
 * Only plain LoRA on Linear layers is supported: DoRA, LoRA biases, `bias` other than "none",
 * `modules_to_save`, trainable tokens, layer replication, `fan_in_fan_out` (GPT-2's Conv1D) and
 * the initialisations that rewrite the base weights (PiSSA, OLoRA, LoftQ, CorDA) are refused
 * with a message naming the field, rather than loaded half-right.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonDecimal, JsonSyntaxError, isJsonObject, parseStrictJson, type JsonObject, type JsonValue } from '../../formats/strict_json.js';
import { dumpsPython, pyFloat } from '../../formats/python_json.js';

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

/**
 * How A and B start (PEFT `init_lora_weights`): `true` — A kaiming-uniform(a=√5) as
 * nn.Linear's default, i.e. U(−1/√in, 1/√in), B zero; `'gaussian'` — A ~ N(0, 1/r), B zero;
 * `false` — nn.Linear's default for both (B non-zero: the adapter changes the output at once).
 * Adapters saved with `'eva'` or `'orthogonal'` load (their weights are in the file).
 */
export type InitLoraWeights = boolean | 'gaussian' | 'eva' | 'orthogonal';

/** PEFT's LoraConfig fields that embtune acts on (snake_case, as in adapter_config.json). */
export interface LoraConfig {
  /** Rank of A [r, in] and B [out, r]. */
  r: number;
  lora_alpha: number;
  /** Dropout probability on the LoRA branch's input, in training mode only. */
  lora_dropout: number;
  /**
   * Which Linear layers get an adapter: names matched against the end of a module path
   * (`q_proj` matches `model.layers.0.self_attn.q_proj`), a regular expression that must match
   * the whole path, or `'all-linear'` (every Linear but the output layer; saved expanded to the
   * names, as PEFT does). A list may contain `'all-linear'` too (ms-swift's
   * `--target_modules all-linear`): it stands for those names.
   */
  target_modules: string[] | string;
  /** Layers left out although targeted (same matching as target_modules). */
  exclude_modules: string[] | string | null;
  /** Scaling α/√r (rank-stabilised) instead of α/r. */
  use_rslora: boolean;
  init_lora_weights: InitLoraWeights;
  /** Per-module rank / alpha by pattern (PEFT `rank_pattern`, `alpha_pattern`). */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  /** Only these layer indices (`layers.{i}.` / `layer.{i}.`); null = all. */
  layers_to_transform: number[] | null;
  /** The name before the layer index that layers_to_transform refers to (default: any). */
  layers_pattern: string[] | null;
  bias: 'none';
  /** PEFT task type; ms-swift trains embeddings with null (a plain PeftModel). */
  task_type: string | null;
  base_model_name_or_path: string | null;
  revision: string | null;
}

/**
 * ms-swift's LoRA defaults (REFERENCE §3.5: `lora_rank` 8, `lora_alpha` 32, `lora_dropout` 0.05,
 * `target_modules all-linear`, init true, no rsLoRA): what `embtune train` uses, and what a
 * `loraConfig()` call fills in for fields it is not given. (PEFT's own LoraConfig defaults differ:
 * alpha 8, dropout 0, no default targets for unknown models.)
 */
export const SWIFT_LORA_DEFAULTS: LoraConfig = {
  r: 8,
  lora_alpha: 32,
  lora_dropout: 0.05,
  target_modules: 'all-linear',
  exclude_modules: null,
  use_rslora: false,
  init_lora_weights: true,
  rank_pattern: {},
  alpha_pattern: {},
  layers_to_transform: null,
  layers_pattern: null,
  bias: 'none',
  task_type: null,
  base_model_name_or_path: null,
  revision: null,
};

export class AdapterConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterConfigError';
  }
}

/** A complete, checked config: `options` over ms-swift's defaults. */
export function loraConfig(options: Partial<LoraConfig> = {}, where = 'LoRA config'): LoraConfig {
  const config: LoraConfig = { ...SWIFT_LORA_DEFAULTS, ...options };
  checkConfig(config, where);
  return config;
}

function checkConfig(c: LoraConfig, where: string): void {
  const fail = (message: string): never => {
    throw new AdapterConfigError(`${where}: ${message}`);
  };
  if (!Number.isInteger(c.r) || c.r < 1) fail(`r must be a positive integer, got ${c.r}`);
  if (!Number.isFinite(c.lora_alpha)) fail(`lora_alpha must be a number, got ${c.lora_alpha}`);
  if (!(c.lora_dropout >= 0 && c.lora_dropout < 1)) fail(`lora_dropout must be in [0, 1), got ${c.lora_dropout}`);
  if (typeof c.target_modules === 'string') {
    if (c.target_modules.length === 0) fail('target_modules is empty');
  } else if (!Array.isArray(c.target_modules) || c.target_modules.length === 0 || c.target_modules.some((t) => typeof t !== 'string' || t === '')) {
    fail(`target_modules must be a non-empty list of module names, a regular expression or 'all-linear', got ${JSON.stringify(c.target_modules)}`);
  }
  if (![true, false, 'gaussian', 'eva', 'orthogonal'].includes(c.init_lora_weights)) {
    fail(`init_lora_weights ${JSON.stringify(c.init_lora_weights)} is not supported (true, false or 'gaussian'; PiSSA, OLoRA, LoftQ and CorDA rewrite the base weights)`);
  }
  if (c.bias !== 'none') fail(`bias ${JSON.stringify(c.bias)} is not supported: only 'none' (the base layers' biases stay frozen)`);
  for (const [field, pattern] of [['rank_pattern', c.rank_pattern], ['alpha_pattern', c.alpha_pattern]] as const) {
    for (const [key, value] of Object.entries(pattern)) {
      if (!Number.isFinite(value) || (field === 'rank_pattern' && (!Number.isInteger(value) || value < 1))) fail(`${field}[${JSON.stringify(key)}] must be a ${field === 'rank_pattern' ? 'positive integer' : 'number'}, got ${value}`);
    }
  }
  if (c.layers_to_transform !== null && (!Array.isArray(c.layers_to_transform) || c.layers_to_transform.some((i) => !Number.isInteger(i) || i < 0))) {
    fail(`layers_to_transform must be a list of layer indices, got ${JSON.stringify(c.layers_to_transform)}`);
  }
}

/** LoRA scaling of a module with rank r and alpha α: α/r, or α/√r with rsLoRA (PEFT `update_layer`). */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

// ------------------------------------------------------------------ adapter_config.json

/** What an adapter_config.json holds beyond the LoraConfig: kept so that saving writes it back. */
export interface AdapterConfigFile {
  config: LoraConfig;
  /** PEFT's `auto_mapping` (the base model class, written for task_type null), as read. */
  autoMapping: JsonValue;
  /** Keys this version does not act on (e.g. a newer PEFT's `peft_version`), as read. */
  extra: JsonObject;
  path: string;
}

/** The LoraConfig fields PEFT 0.17.0 writes that embtune only accepts at their inert values. */
const INERT_FIELDS: [string, (v: JsonValue) => boolean, string][] = [
  ['fan_in_fan_out', (v) => v === false, 'false (GPT-2 style Conv1D weights are not supported)'],
  ['use_dora', (v) => v === false, 'false (DoRA is not supported)'],
  ['lora_bias', (v) => v === false, 'false (LoRA biases are not supported)'],
  ['use_qalora', (v) => v === false, 'false (QA-LoRA is not supported)'],
  ['modules_to_save', (v) => v === null || (Array.isArray(v) && v.length === 0), 'null (fully trained extra modules are not supported)'],
  ['trainable_token_indices', (v) => v === null, 'null (trainable tokens are not supported)'],
  ['layer_replication', (v) => v === null, 'null (layer replication is not supported)'],
  ['target_parameters', (v) => v === null || (Array.isArray(v) && v.length === 0), 'null (LoRA on parameters is not supported)'],
  ['megatron_config', (v) => v === null, 'null (Megatron layers are not supported)'],
];

/** The keys PEFT 0.17.0's LoraConfig writes (REFERENCE §7), all of which saving emits. */
const PEFT_017_DEFAULTS: [string, JsonValue][] = [
  ['corda_config', null],
  ['eva_config', null],
  ['fan_in_fan_out', false],
  ['inference_mode', true],
  ['layer_replication', null],
  ['loftq_config', new Map()],
  ['lora_bias', false],
  ['megatron_config', null],
  ['megatron_core', 'megatron.core'],
  ['modules_to_save', null],
  ['peft_type', 'LORA'],
  ['qalora_group_size', 16],
  ['target_parameters', null],
  ['trainable_token_indices', null],
  ['use_dora', false],
  ['use_qalora', false],
];

const MODELLED = new Set([
  'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'exclude_modules', 'use_rslora', 'init_lora_weights', 'rank_pattern', 'alpha_pattern',
  'layers_to_transform', 'layers_pattern', 'bias', 'task_type', 'base_model_name_or_path', 'revision', 'auto_mapping', 'peft_type', 'inference_mode',
  ...INERT_FIELDS.map(([k]) => k),
]);

function toNumber(v: JsonValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (v instanceof JsonDecimal) return v.value;
  return undefined;
}

/** Reads and checks `folder/adapter_config.json`; every error names the file and the field. */
export function readAdapterConfig(folder: string): AdapterConfigFile {
  const path = join(folder, ADAPTER_CONFIG_NAME);
  if (!existsSync(folder)) throw new AdapterConfigError(`adapter folder ${folder} does not exist`);
  if (!existsSync(path)) throw new AdapterConfigError(`${folder}: no ${ADAPTER_CONFIG_NAME} (is this a PEFT adapter folder? It needs ${ADAPTER_CONFIG_NAME} and ${ADAPTER_WEIGHTS_NAME})`);
  let json: JsonValue;
  try {
    json = parseStrictJson(readFileSync(path, 'utf8'));
  } catch (err) {
    const detail = err instanceof JsonSyntaxError ? err.message : String(err);
    throw new AdapterConfigError(`${path}: not valid JSON (${detail})`);
  }
  if (!isJsonObject(json)) throw new AdapterConfigError(`${path}: expected a JSON object`);
  const fail = (field: string, message: string): never => {
    throw new AdapterConfigError(`${path}: '${field}' ${message}`);
  };
  const peftType = json.get('peft_type');
  if (peftType !== 'LORA') fail('peft_type', `is ${JSON.stringify(peftType ?? null)}; embtune loads LoRA adapters ("LORA") only`);
  for (const [field, ok, expected] of INERT_FIELDS) {
    const v = json.get(field);
    if (v !== undefined && !ok(v)) fail(field, `is ${JSON.stringify(plain(v))}; it must be ${expected}`);
  }
  const number = (field: string): number | undefined => {
    const v = json.get(field);
    if (v === undefined || v === null) return undefined;
    return toNumber(v) ?? fail(field, `must be a number, got ${JSON.stringify(plain(v))}`);
  };
  const stringList = (field: string): string[] | string | null => {
    const v = json.get(field);
    if (v === undefined || v === null) return null;
    if (typeof v === 'string') return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    return fail(field, `must be a list of names or a string, got ${JSON.stringify(plain(v))}`);
  };
  const pattern = (field: string): Record<string, number> => {
    const v = json.get(field);
    if (v === undefined || v === null) return {};
    if (!isJsonObject(v)) return fail(field, 'must be an object of pattern → number');
    return Object.fromEntries([...v].map(([k, x]) => [k, toNumber(x) ?? fail(field, `[${JSON.stringify(k)}] must be a number`)]));
  };
  const optionalString = (field: string): string | null => {
    const v = json.get(field);
    if (v === undefined || v === null) return null;
    return typeof v === 'string' ? v : fail(field, `must be a string, got ${JSON.stringify(plain(v))}`);
  };
  const r = number('r') ?? fail('r', 'is missing');
  const target = stringList('target_modules') ?? fail('target_modules', 'is missing: the adapter does not say which modules it adapts');
  const init = json.get('init_lora_weights') ?? true;
  const layers = json.get('layers_to_transform');
  const layersToTransform = layers === undefined || layers === null ? null : typeof layers === 'number' ? [layers] : Array.isArray(layers) && layers.every((x) => typeof x === 'number') ? (layers as number[]) : fail('layers_to_transform', 'must be a layer index or a list of them');
  const layersPattern = stringList('layers_pattern');
  const bias = json.get('bias') ?? 'none';
  const useRslora = json.get('use_rslora') ?? false;
  if (typeof useRslora !== 'boolean') fail('use_rslora', 'must be true or false');
  const config: LoraConfig = {
    r,
    lora_alpha: number('lora_alpha') ?? 8, // PEFT's LoraConfig default
    lora_dropout: number('lora_dropout') ?? 0,
    target_modules: target,
    exclude_modules: stringList('exclude_modules'),
    use_rslora: useRslora as boolean,
    init_lora_weights: init as InitLoraWeights,
    rank_pattern: pattern('rank_pattern'),
    alpha_pattern: pattern('alpha_pattern'),
    layers_to_transform: layersToTransform,
    layers_pattern: layersPattern === null ? null : typeof layersPattern === 'string' ? [layersPattern] : layersPattern,
    bias: bias as 'none',
    task_type: optionalString('task_type'),
    base_model_name_or_path: optionalString('base_model_name_or_path'),
    revision: optionalString('revision'),
  };
  checkConfig(config, path);
  const extra: JsonObject = new Map([...json].filter(([k]) => !MODELLED.has(k)));
  return { config, autoMapping: json.get('auto_mapping') ?? null, extra, path };
}

/** A JsonValue as plain JS, for messages. */
function plain(v: JsonValue): unknown {
  if (v instanceof JsonDecimal) return v.value;
  if (Array.isArray(v)) return v.map(plain);
  if (isJsonObject(v)) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
  return v;
}

function jsonNumber(x: number): JsonValue {
  return Number.isInteger(x) ? x : pyFloat(x);
}

function jsonStrings(v: string[] | string | null): JsonValue {
  return v === null ? null : typeof v === 'string' ? v : [...v];
}

/**
 * The text of adapter_config.json for `config`: every field PEFT 0.17.0 writes (inert ones at
 * their defaults, unless `extra` — the unmodelled keys of a file read earlier, e.g. a newer PEFT's
 * `peft_version` — holds them), `inference_mode: true` (PEFT sets it while saving), as
 * `json.dumps(indent=2, sort_keys=True)`, like PEFT.
 */
export function adapterConfigJson(config: LoraConfig, autoMapping: JsonValue, extra: JsonObject = new Map()): string {
  const out: JsonObject = new Map(PEFT_017_DEFAULTS);
  for (const [k, v] of extra) out.set(k, v);
  const patterns = (p: Record<string, number>): JsonObject => new Map(Object.entries(p).map(([k, v]) => [k, jsonNumber(v)]));
  const fields: [string, JsonValue][] = [
    ['alpha_pattern', patterns(config.alpha_pattern)],
    ['auto_mapping', autoMapping],
    ['base_model_name_or_path', config.base_model_name_or_path],
    ['bias', config.bias],
    ['exclude_modules', jsonStrings(config.exclude_modules)],
    ['init_lora_weights', config.init_lora_weights],
    ['layers_pattern', config.layers_pattern === null ? null : [...config.layers_pattern]],
    ['layers_to_transform', config.layers_to_transform === null ? null : [...config.layers_to_transform]],
    ['lora_alpha', jsonNumber(config.lora_alpha)],
    // A float in PEFT's dataclass: 0 is written 0.0.
    ['lora_dropout', pyFloat(config.lora_dropout)],
    ['r', config.r],
    ['rank_pattern', patterns(config.rank_pattern)],
    ['revision', config.revision],
    ['target_modules', jsonStrings(config.target_modules)],
    ['task_type', config.task_type],
    ['use_rslora', config.use_rslora],
  ];
  for (const [k, v] of fields) out.set(k, v);
  return dumpsPython(out);
}
