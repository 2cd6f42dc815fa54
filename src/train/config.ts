/**
 * Training configuration: ms-swift's argument names and defaults for `swift sft --task_type
 * embedding` (REFERENCE §3.5), in camelCase. A config file (YAML or JSON, snake_case or
 * kebab-case keys as swift users write them) supplies values; command-line flags override it.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEVICE_FORMS, DeviceSyntaxError, parseDevice } from '../torch/device.js';

export type TrainType = 'lora' | 'full';
export type SchedulerType = 'cosine' | 'linear' | 'constant' | 'constant_with_warmup';
export type TruncationStrategy = 'delete' | 'right' | 'left';

export interface TrainConfig {
  model: string;
  dataset: string[];
  /** Held-out data instead of a split (swift's --val_dataset). */
  valDataset: string[];
  outputDir: string;
  trainType: TrainType;
  lossType: 'infonce';
  /** Continue from an existing PEFT adapter (its LoRA config wins). */
  adapter?: string;
  resumeFromCheckpoint?: string;
  dtype: 'float32' | 'bfloat16';
  /** Where the model trains: `cpu` (default), `cuda` (= `cuda:0`) or `cuda:N`. */
  device: string;

  loraRank: number;
  loraAlpha: number;
  loraDropout: number;
  targetModules: string[];
  useRslora: boolean;
  initWeights: 'true' | 'gaussian';

  learningRate?: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  maxGradNorm: number;
  lrSchedulerType: SchedulerType;
  warmupRatio: number;
  warmupSteps: number;

  numTrainEpochs: number;
  maxSteps: number;
  perDeviceTrainBatchSize: number;
  perDeviceEvalBatchSize: number;
  gradientAccumulationSteps?: number;
  dataloaderDropLast: boolean;
  datasetShuffle: boolean;
  splitDatasetRatio: number;
  seed: number;
  dataSeed: number;
  /** Longest token sequence, template included; absent: the model's `max_position_embeddings` (ms-swift's `max_length`). */
  maxLength?: number;
  /** What a longer text does; absent: see `truncationStrategyOf`. */
  truncationStrategy?: TruncationStrategy;
  gradientCheckpointing: boolean;
  /**
   * Gradient caching (GradCache; sentence-transformers' CachedMultipleNegativesRankingLoss
   * `mini_batch_size`): texts per forward chunk; absent: the whole micro-batch in one forward.
   */
  gradientCacheChunkSize?: number;

  temperature?: number;
  useBatch?: boolean;
  hardNegatives?: number;
  maskFakeNegative?: boolean;
  fakeNegMargin?: number;
  includeQq?: boolean;
  includeDd?: boolean;
  mrlDims: number[];

  evalSteps?: number;
  saveSteps: number;
  loggingSteps: number;
  loggingFirstStep: boolean;
  saveTotalLimit?: number;
  /** Retrieval metrics' cut-offs (NDCG@k, MRR@k, Recall@k). */
  evalK: number[];
}

/**
 * ms-swift's defaults where the tutorial is silent. Where swift leaves a value to the HF Trainer
 * (epochs 3, save_steps 500, warmup 0) the HF default is used. `splitDatasetRatio` is 0: recent
 * ms-swift 3.x releases default to no split (older ones used 0.01).
 */
export const DEFAULTS: Omit<TrainConfig, 'model' | 'dataset'> = {
  valDataset: [],
  outputDir: 'output',
  trainType: 'lora',
  lossType: 'infonce',
  dtype: 'float32',
  device: 'cpu',
  loraRank: 8,
  loraAlpha: 32,
  loraDropout: 0.05,
  targetModules: ['all-linear'],
  useRslora: false,
  initWeights: 'true',
  weightDecay: 0.1,
  adamBeta1: 0.9,
  adamBeta2: 0.95,
  adamEpsilon: 1e-8,
  maxGradNorm: 1.0,
  lrSchedulerType: 'cosine',
  warmupRatio: 0,
  warmupSteps: 0,
  numTrainEpochs: 3,
  maxSteps: -1,
  perDeviceTrainBatchSize: 1,
  perDeviceEvalBatchSize: 1,
  dataloaderDropLast: false,
  datasetShuffle: true,
  splitDatasetRatio: 0,
  seed: 42,
  dataSeed: 42,
  gradientCheckpointing: false,
  mrlDims: [],
  saveSteps: 500,
  loggingSteps: 5,
  loggingFirstStep: true,
  evalK: [1, 5, 10],
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** swift's learning-rate default: 1e-4 for LoRA, 1e-5 for full fine-tuning. */
export function learningRateOf(c: TrainConfig): number {
  return c.learningRate ?? (c.trainType === 'lora' ? 1e-4 : 1e-5);
}

/** swift: gradient_accumulation_steps = max(1, ceil(16 / per_device_train_batch_size)) unless given. */
export function accumulationStepsOf(c: TrainConfig): number {
  return c.gradientAccumulationSteps ?? Math.max(1, Math.ceil(16 / c.perDeviceTrainBatchSize));
}

/**
 * The truncation strategy of a run. Given: that one. Absent: ms-swift's 'delete' when `--max-length`
 * is given (REFERENCE §3.1: the row is skipped); 'right' when the limit is the model's own
 * (`max_position_embeddings`), which no text can exceed — cutting such a text is what
 * sentence-transformers does, where deleting would silently drop every long document.
 */
export function truncationStrategyOf(c: Pick<TrainConfig, 'maxLength' | 'truncationStrategy'>): TruncationStrategy {
  return c.truncationStrategy ?? (c.maxLength !== undefined ? 'delete' : 'right');
}

/** swift: eval_steps follows save_steps unless given. */
export function evalStepsOf(c: TrainConfig): number {
  return c.evalSteps ?? c.saveSteps;
}

/** `learning_rate`, `learning-rate` → `learningRate`. */
export function camelKey(key: string): string {
  return key.replace(/[-_]+([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());
}

/** Reads a YAML or JSON config file into camelCase keys (values are validated by `resolveConfig`). */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the config file (${(err as Error).message})`);
  }
  let value: unknown;
  try {
    value = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid ${extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML'} (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${file}: expected a mapping of option names to values`);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [camelKey(k), v]));
}

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'strings' | 'integers';

const KINDS: Record<keyof TrainConfig, Kind> = {
  model: 'string',
  dataset: 'strings',
  valDataset: 'strings',
  outputDir: 'string',
  trainType: 'string',
  lossType: 'string',
  adapter: 'string',
  resumeFromCheckpoint: 'string',
  dtype: 'string',
  device: 'string',
  loraRank: 'integer',
  loraAlpha: 'number',
  loraDropout: 'number',
  targetModules: 'strings',
  useRslora: 'boolean',
  initWeights: 'string',
  learningRate: 'number',
  weightDecay: 'number',
  adamBeta1: 'number',
  adamBeta2: 'number',
  adamEpsilon: 'number',
  maxGradNorm: 'number',
  lrSchedulerType: 'string',
  warmupRatio: 'number',
  warmupSteps: 'integer',
  numTrainEpochs: 'number',
  maxSteps: 'integer',
  perDeviceTrainBatchSize: 'integer',
  perDeviceEvalBatchSize: 'integer',
  gradientAccumulationSteps: 'integer',
  dataloaderDropLast: 'boolean',
  datasetShuffle: 'boolean',
  splitDatasetRatio: 'number',
  seed: 'integer',
  dataSeed: 'integer',
  maxLength: 'integer',
  truncationStrategy: 'string',
  gradientCheckpointing: 'boolean',
  gradientCacheChunkSize: 'integer',
  temperature: 'number',
  useBatch: 'boolean',
  hardNegatives: 'integer',
  maskFakeNegative: 'boolean',
  fakeNegMargin: 'number',
  includeQq: 'boolean',
  includeDd: 'boolean',
  mrlDims: 'integers',
  evalSteps: 'integer',
  saveSteps: 'integer',
  loggingSteps: 'integer',
  loggingFirstStep: 'boolean',
  saveTotalLimit: 'integer',
  evalK: 'integers',
};

/** swift's spellings that differ from ours. */
const ALIASES: Record<string, keyof TrainConfig> = {
  loraTargetModules: 'targetModules',
  torchDtype: 'dtype',
  initLoraWeights: 'initWeights',
  loraR: 'loraRank',
  r: 'loraRank',
  valDatasets: 'valDataset',
};

const CHOICES: Partial<Record<keyof TrainConfig, readonly string[]>> = {
  trainType: ['lora', 'full'],
  lossType: ['infonce'],
  dtype: ['float32', 'bfloat16'],
  initWeights: ['true', 'gaussian'],
  lrSchedulerType: ['cosine', 'linear', 'constant', 'constant_with_warmup'],
  truncationStrategy: ['delete', 'right', 'left'],
};

/** Parses one value given as a string (a flag) or as YAML/JSON (a config file). */
export function coerce(key: keyof TrainConfig, value: unknown, where: string): unknown {
  const kind = KINDS[key];
  const fail = (what: string): never => {
    throw new ConfigError(`${where}: ${what}, got ${JSON.stringify(value)}`);
  };
  switch (kind) {
    case 'string':
      if (typeof value !== 'string' && typeof value !== 'number') return fail('expected a string');
      return String(value);
    case 'number':
    case 'integer': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
      if (!Number.isFinite(n)) return fail('expected a number');
      if (kind === 'integer' && !Number.isInteger(n)) return fail('expected an integer');
      return n;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(true|1|yes|on|y|t)$/i.test(value)) return true;
      if (typeof value === 'string' && /^(false|0|no|off|n|f)$/i.test(value)) return false;
      return fail('expected true or false');
    case 'strings':
      if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
      if (typeof value === 'string') return value.split(/[,\s]+/).filter(Boolean);
      return fail('expected a list of strings');
    case 'integers': {
      const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[,\s]+/).filter(Boolean) : typeof value === 'number' ? [value] : fail('expected a list of integers');
      return (list as unknown[]).map((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) return fail('expected a list of positive integers');
        return n;
      });
    }
  }
}

/** Merges defaults ← config file ← flags, checks every value, and returns the full config. */
export function resolveConfig(fromFile: Record<string, unknown>, fromFlags: Record<string, unknown>, fileName = 'config'): TrainConfig {
  const merged: Record<string, unknown> = { ...DEFAULTS };
  for (const [source, values] of [[fileName, fromFile], ['command line', fromFlags]] as const) {
    for (const [rawKey, value] of Object.entries(values)) {
      if (value === undefined) continue;
      const key = (ALIASES[rawKey] ?? rawKey) as keyof TrainConfig;
      if (!(key in KINDS)) throw new ConfigError(`${source}: unknown option '${rawKey}'`);
      const v = coerce(key, value, `${source}: ${key}`);
      const choices = CHOICES[key];
      if (choices && !choices.includes(v as string)) throw new ConfigError(`${source}: ${key} must be one of ${choices.join(', ')}, got '${String(v)}'`);
      merged[key] = v;
    }
  }
  const c = merged as unknown as TrainConfig;
  if (typeof c.model !== 'string') throw new ConfigError('--model is required (a model folder or hub id)');
  if (!Array.isArray(c.dataset) || c.dataset.length === 0) throw new ConfigError('--dataset is required (JSONL/JSON/CSV/Parquet of {query, response, rejected_response})');
  validate(c);
  return c;
}

function validate(c: TrainConfig): void {
  // Checked for its spelling here; whether the device exists is train()'s first check (it names the device as written).
  try {
    parseDevice(c.device);
  } catch (err) {
    if (err instanceof DeviceSyntaxError) throw new ConfigError(`device must be ${DEVICE_FORMS}, got '${c.device}'`);
    throw err;
  }
  const positive: (keyof TrainConfig)[] = ['loraRank', 'perDeviceTrainBatchSize', 'perDeviceEvalBatchSize', 'saveSteps', 'loggingSteps'];
  for (const key of positive) if (!((c[key] as number) >= 1)) throw new ConfigError(`${key} must be ≥ 1, got ${String(c[key])}`);
  if (c.gradientAccumulationSteps !== undefined && c.gradientAccumulationSteps < 1) throw new ConfigError(`gradientAccumulationSteps must be ≥ 1`);
  if (c.evalSteps !== undefined && c.evalSteps < 1) throw new ConfigError(`evalSteps must be ≥ 1`);
  if (c.gradientCacheChunkSize !== undefined && c.gradientCacheChunkSize < 1) throw new ConfigError(`gradientCacheChunkSize must be ≥ 1 (texts per forward chunk), got ${c.gradientCacheChunkSize}`);
  if (!(c.splitDatasetRatio >= 0 && c.splitDatasetRatio < 1)) throw new ConfigError(`splitDatasetRatio must be in [0, 1), got ${c.splitDatasetRatio}`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) throw new ConfigError(`loraDropout must be in [0, 1), got ${c.loraDropout}`);
  if (!(c.warmupRatio >= 0 && c.warmupRatio <= 1)) throw new ConfigError(`warmupRatio must be in [0, 1], got ${c.warmupRatio}`);
  if (c.maxGradNorm < 0) throw new ConfigError(`maxGradNorm must be ≥ 0 (0 turns clipping off), got ${c.maxGradNorm}`);
  if (c.temperature !== undefined && !(c.temperature > 0)) throw new ConfigError(`temperature must be > 0, got ${c.temperature}`);
  if (c.numTrainEpochs <= 0 && c.maxSteps <= 0) throw new ConfigError('numTrainEpochs must be > 0 (or give maxSteps)');
  if (c.learningRate !== undefined && !(c.learningRate >= 0)) throw new ConfigError(`learningRate must be ≥ 0`);
  if (c.maxLength !== undefined && c.maxLength < 2) throw new ConfigError(`maxLength must be ≥ 2 (room for a token and the template's end token), got ${c.maxLength}`);
}
