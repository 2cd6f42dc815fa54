/**
 * The pipeline's configuration file (YAML, read with the `yaml` package): one section per stage,
 * snake_case keys as ms-swift and sentence-transformers users write them. Every key is checked:
 * an unknown key, a value of the wrong type and an input path that does not exist are errors that
 * name the file, the key and what was expected. The `train` and `pretrain.train` sections take
 * `embtune train`'s options and are checked by the trainer's own resolver (src/train/config.ts).
 *
 * Paths inside the file are relative to the file's folder (so `embtune pipeline examples/x.yaml`
 * works from any directory); `output_dir` and `--output-dir` are relative to the current directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, camelKey, resolveConfig } from '../train/config.js';

export { ConfigError };

export type InitArch = 'bert' | 'qwen3';
export type PairsMode = 'crop' | 'title-body';
export type FuseMethod = 'slerp' | 'linear';

export interface DataSection {
  /** A BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv): one (question, document) pair per relevant judgement. */
  beir?: string;
  /** Or a file of QA pairs in any format the data layer reads. */
  pairs?: string;
  /** qrels split of the BEIR folder (default: test, or the only one). */
  split?: string;
  queryColumn: string;
  positiveColumn: string;
  /** Held-out share of the pairs (datasets' train_test_split test_size: a fraction, or a row count when an integer > 1). */
  testSize: number;
  /** Seed of the split (numpy.random.default_rng). */
  seed: number;
  /** Evaluate on at most this many held-out questions (the first ones of the test split); default all. */
  maxEvalQueries?: number;
  /** Use only the first N examples of the data (a quick run on a large set); default all. */
  maxExamples?: number;
}

export interface InitSection {
  arch: InitArch;
  /** `tiny`, `small` or a JSON file of config.json keys laid over tiny. */
  config: string;
  /** BERT: the WordPiece vocab.txt; Qwen3: a folder with the tokenizer files. */
  vocab: string;
  seed: number;
}

export interface ModelSection {
  /** A model folder or a hub id; absent when `init` makes one from scratch. */
  base?: string;
  init?: InitSection;
}

export interface PretrainSection {
  mode: PairsMode;
  /** Weak pairs drawn from each document (crop mode). */
  pairsPerDocument: number;
  seed: number;
  /** `embtune train` options for stage one. */
  train: Record<string, unknown>;
}

export interface MineSection {
  /** The model that embeds for mining (default: the model being trained, after stage one). */
  model?: string;
  numNegatives: number;
  rangeMin: number;
  rangeMax?: number;
  maxScore?: number;
  minScore?: number;
  absoluteMargin?: number;
  relativeMargin?: number;
  samplingStrategy: 'top' | 'random';
  seed: number;
  batchSize: number;
  dtype: 'float32' | 'bfloat16';
}

export interface EvalSection {
  bm25: boolean;
  hybrid: boolean;
  batchSize: number;
  dtype: 'float32' | 'bfloat16';
  /** The query instruction (Qwen3: the task of `Instruct: …\nQuery:`); documents get none (REFERENCE §5.1). */
  instruction?: string;
  mrrAtK: number[];
  ndcgAtK: number[];
  accuracyAtK: number[];
  precisionRecallAtK: number[];
  mapAtK: number[];
}

export interface MergeSection {
  dtype: 'float32' | 'bfloat16';
}

export interface FuseSection {
  method: FuseMethod;
  /** Fuse the last N checkpoints of the training run. */
  last: number;
  /** SLERP's interpolation factor (0 gives the older checkpoint, 1 the newer). */
  t: number;
}

export interface PipelineConfig {
  /** The config file, absolute. */
  file: string;
  /** Its folder: relative input paths are resolved against it. */
  baseDir: string;
  outputDir: string;
  seed: number;
  threads?: number;
  data: DataSection;
  model: ModelSection;
  pretrain?: PretrainSection;
  mine: MineSection;
  train: Record<string, unknown>;
  eval: EvalSection;
  merge: MergeSection;
  fuse?: FuseSection;
}

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'integers' | 'path' | 'model' | 'section';

interface KeySpec {
  kind: Kind;
  choices?: readonly string[];
  /** Lower bound (inclusive unless `above`). */
  min?: number;
  above?: boolean;
  max?: number;
}

const SECTIONS: Record<string, Record<string, KeySpec>> = {
  '': {
    output_dir: { kind: 'string' },
    seed: { kind: 'integer', min: 0 },
    threads: { kind: 'integer', min: 1 },
    data: { kind: 'section' },
    model: { kind: 'section' },
    pretrain: { kind: 'section' },
    mine: { kind: 'section' },
    train: { kind: 'section' },
    eval: { kind: 'section' },
    merge: { kind: 'section' },
    fuse: { kind: 'section' },
  },
  data: {
    beir: { kind: 'path' },
    pairs: { kind: 'path' },
    split: { kind: 'string' },
    query_column: { kind: 'string' },
    positive_column: { kind: 'string' },
    test_size: { kind: 'number', min: 0, above: true },
    seed: { kind: 'integer', min: 0 },
    max_eval_queries: { kind: 'integer', min: 1 },
    max_examples: { kind: 'integer', min: 2 },
  },
  model: {
    base: { kind: 'model' },
    init: { kind: 'section' },
  },
  'model.init': {
    arch: { kind: 'string', choices: ['bert', 'qwen3'] },
    config: { kind: 'string' },
    vocab: { kind: 'path' },
    seed: { kind: 'integer', min: 0 },
  },
  pretrain: {
    mode: { kind: 'string', choices: ['crop', 'title-body'] },
    pairs_per_document: { kind: 'integer', min: 1 },
    seed: { kind: 'integer', min: 0 },
    train: { kind: 'section' },
  },
  mine: {
    model: { kind: 'model' },
    num_negatives: { kind: 'integer', min: 1 },
    range_min: { kind: 'integer', min: 0 },
    range_max: { kind: 'integer', min: 1 },
    max_score: { kind: 'number' },
    min_score: { kind: 'number' },
    absolute_margin: { kind: 'number' },
    relative_margin: { kind: 'number' },
    sampling_strategy: { kind: 'string', choices: ['top', 'random'] },
    seed: { kind: 'integer', min: 0 },
    batch_size: { kind: 'integer', min: 1 },
    dtype: { kind: 'string', choices: ['float32', 'bfloat16'] },
  },
  eval: {
    bm25: { kind: 'boolean' },
    hybrid: { kind: 'boolean' },
    batch_size: { kind: 'integer', min: 1 },
    dtype: { kind: 'string', choices: ['float32', 'bfloat16'] },
    instruction: { kind: 'string' },
    mrr_at_k: { kind: 'integers' },
    ndcg_at_k: { kind: 'integers' },
    accuracy_at_k: { kind: 'integers' },
    precision_recall_at_k: { kind: 'integers' },
    map_at_k: { kind: 'integers' },
  },
  merge: {
    dtype: { kind: 'string', choices: ['float32', 'bfloat16'] },
  },
  fuse: {
    method: { kind: 'string', choices: ['slerp', 'linear'] },
    last: { kind: 'integer', min: 2 },
    t: { kind: 'number', min: 0, max: 1 },
  },
};

/** Options of `embtune train` the pipeline sets itself (the data and model of each stage). */
const PIPELINE_OWNED_TRAIN_KEYS = ['model', 'dataset', 'outputDir', 'resumeFromCheckpoint', 'adapter'];

export interface LoadOptions {
  /** `--output-dir`: replaces the file's output_dir. */
  outputDir?: string;
  /** The current directory for output_dir (default process.cwd()). */
  cwd?: string;
}

/** Reads and checks a pipeline config file. Throws ConfigError naming the file and the key. */
export function loadPipelineConfig(file: string, options: LoadOptions = {}): PipelineConfig {
  const path = resolve(options.cwd ?? process.cwd(), file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the pipeline config (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  return parsePipelineConfig(value, { ...options, file: path, label: file });
}

/** Checks an already-parsed config object (`file` gives the folder relative paths start from). */
export function parsePipelineConfig(value: unknown, options: LoadOptions & { file: string; label?: string }): PipelineConfig {
  const label = options.label ?? options.file;
  const baseDir = dirname(options.file);
  const checker = new Checker(label, baseDir);
  const root = checker.section(value, '');
  const data = checker.section(root.data, 'data', true);
  const model = checker.section(root.model, 'model', true);
  const mine = checker.section(root.mine ?? {}, 'mine');
  const evalSection = checker.section(root.eval ?? {}, 'eval');
  const merge = checker.section(root.merge ?? {}, 'merge');
  const seed = (root.seed as number | undefined) ?? 42;

  if ((data.beir === undefined) === (data.pairs === undefined)) throw new ConfigError(`${label}: data: give exactly one of 'beir' (a BEIR folder) or 'pairs' (a file of question/answer pairs)`);
  if ((model.base === undefined) === (model.init === undefined)) throw new ConfigError(`${label}: model: give exactly one of 'base' (a model folder or hub id) or 'init' (a model from scratch)`);
  let init: InitSection | undefined;
  if (model.init !== undefined) {
    const s = checker.section(model.init, 'model.init');
    for (const key of ['arch', 'config', 'vocab']) if (s[key] === undefined) throw new ConfigError(`${label}: model.init.${key} is required`);
    const cfg = s.config as string;
    init = {
      arch: s.arch as InitArch,
      config: cfg === 'tiny' || cfg === 'small' ? cfg : checker.path(cfg, 'model.init.config'),
      vocab: s.vocab as string,
      seed: (s.seed as number | undefined) ?? seed,
    };
  }
  const outputDir = options.outputDir ?? (root.output_dir as string | undefined);
  if (outputDir === undefined) throw new ConfigError(`${label}: output_dir is required (or give --output-dir)`);

  let pretrain: PretrainSection | undefined;
  if (root.pretrain !== undefined) {
    const s = checker.section(root.pretrain, 'pretrain');
    pretrain = {
      mode: (s.mode as PairsMode | undefined) ?? 'crop',
      pairsPerDocument: (s.pairs_per_document as number | undefined) ?? 4,
      seed: (s.seed as number | undefined) ?? seed,
      train: checker.trainSection(s.train, 'pretrain.train'),
    };
  }
  let fuse: FuseSection | undefined;
  if (root.fuse !== undefined) {
    const s = checker.section(root.fuse, 'fuse');
    fuse = { method: (s.method as FuseMethod | undefined) ?? 'slerp', last: (s.last as number | undefined) ?? 2, t: (s.t as number | undefined) ?? 0.5 };
  }
  const config: PipelineConfig = {
    file: options.file,
    baseDir,
    outputDir: resolve(options.cwd ?? process.cwd(), outputDir),
    seed,
    threads: root.threads as number | undefined,
    data: {
      beir: data.beir as string | undefined,
      pairs: data.pairs as string | undefined,
      split: data.split as string | undefined,
      queryColumn: (data.query_column as string | undefined) ?? 'query',
      positiveColumn: (data.positive_column as string | undefined) ?? 'response',
      testSize: (data.test_size as number | undefined) ?? 0.2,
      seed: (data.seed as number | undefined) ?? seed,
      maxEvalQueries: data.max_eval_queries as number | undefined,
      maxExamples: data.max_examples as number | undefined,
    },
    model: { base: model.base as string | undefined, init },
    pretrain,
    mine: {
      model: mine.model as string | undefined,
      numNegatives: (mine.num_negatives as number | undefined) ?? 5,
      rangeMin: (mine.range_min as number | undefined) ?? 0,
      rangeMax: mine.range_max as number | undefined,
      maxScore: mine.max_score as number | undefined,
      minScore: mine.min_score as number | undefined,
      absoluteMargin: mine.absolute_margin as number | undefined,
      relativeMargin: mine.relative_margin as number | undefined,
      samplingStrategy: (mine.sampling_strategy as 'top' | 'random' | undefined) ?? 'top',
      seed: (mine.seed as number | undefined) ?? seed,
      batchSize: (mine.batch_size as number | undefined) ?? 32,
      dtype: (mine.dtype as 'float32' | 'bfloat16' | undefined) ?? 'float32',
    },
    train: checker.trainSection(root.train, 'train'),
    eval: {
      bm25: (evalSection.bm25 as boolean | undefined) ?? true,
      hybrid: (evalSection.hybrid as boolean | undefined) ?? true,
      batchSize: (evalSection.batch_size as number | undefined) ?? 32,
      dtype: (evalSection.dtype as 'float32' | 'bfloat16' | undefined) ?? 'float32',
      instruction: evalSection.instruction as string | undefined,
      mrrAtK: (evalSection.mrr_at_k as number[] | undefined) ?? [10],
      ndcgAtK: (evalSection.ndcg_at_k as number[] | undefined) ?? [10],
      accuracyAtK: (evalSection.accuracy_at_k as number[] | undefined) ?? [1, 3, 5, 10],
      precisionRecallAtK: (evalSection.precision_recall_at_k as number[] | undefined) ?? [1, 3, 5, 10],
      mapAtK: (evalSection.map_at_k as number[] | undefined) ?? [100],
    },
    merge: { dtype: (merge.dtype as 'float32' | 'bfloat16' | undefined) ?? 'float32' },
    fuse,
  };
  if (config.data.testSize >= 1 && !Number.isInteger(config.data.testSize)) throw new ConfigError(`${label}: data.test_size must be a fraction in (0, 1) or a whole number of rows, got ${config.data.testSize}`);
  if (config.fuse && config.fuse.method === 'slerp' && config.fuse.last !== 2) throw new ConfigError(`${label}: fuse.last: SLERP interpolates two models; use last: 2 (or method: linear for more)`);
  return config;
}

class Checker {
  constructor(
    readonly label: string,
    readonly baseDir: string,
  ) {}

  /** A mapping whose keys are all known to `SECTIONS[name]` and whose values have their kinds; paths resolved. */
  section(value: unknown, name: string, required = false): Record<string, unknown> {
    const where = name === '' ? this.label : `${this.label}: ${name}`;
    if (value === undefined || value === null) {
      if (required) throw new ConfigError(`${this.label}: the '${name}' section is required`);
      return {};
    }
    if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${where}: expected a mapping of keys to values, got ${describe(value)}`);
    const spec = SECTIONS[name]!;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      const keySpec = spec[key];
      const full = name === '' ? key : `${name}.${key}`;
      if (!keySpec) throw new ConfigError(`${where}: unknown key '${key}'${suggest(key, Object.keys(spec))} (known keys: ${Object.keys(spec).join(', ')})`);
      out[key] = v === null && keySpec.kind !== 'section' ? undefined : this.value(v, full, keySpec);
    }
    return out;
  }

  private value(v: unknown, key: string, spec: KeySpec): unknown {
    const fail = (what: string): never => {
      throw new ConfigError(`${this.label}: ${key}: expected ${what}, got ${describe(v)}`);
    };
    switch (spec.kind) {
      case 'section':
        return v;
      case 'string':
      case 'model': {
        if (typeof v !== 'string' || v === '') return fail('a string');
        if (spec.choices && !spec.choices.includes(v)) return fail(`one of ${spec.choices.join(', ')}`);
        // A model is a local folder (checked, relative to the config file) or a hub id org/name.
        if (spec.kind === 'model' && (v.startsWith('.') || v.startsWith('/') || existsSync(resolve(this.baseDir, v)))) return this.path(v, key);
        return v;
      }
      case 'path':
        if (typeof v !== 'string' || v === '') return fail('a path');
        return this.path(v, key);
      case 'number':
      case 'integer': {
        if (typeof v !== 'number' || !Number.isFinite(v)) return fail(spec.kind === 'integer' ? 'an integer' : 'a number');
        if (spec.kind === 'integer' && !Number.isInteger(v)) return fail('an integer');
        if (spec.min !== undefined && (spec.above ? !(v > spec.min) : !(v >= spec.min))) return fail(`a number ${spec.above ? '>' : '≥'} ${spec.min}`);
        if (spec.max !== undefined && !(v <= spec.max)) return fail(`a number ≤ ${spec.max}`);
        return v;
      }
      case 'boolean':
        if (typeof v !== 'boolean') return fail('true or false');
        return v;
      case 'integers': {
        const list = typeof v === 'number' ? [v] : v;
        if (!Array.isArray(list) || list.length === 0 || !list.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 1)) return fail('a list of positive integers');
        return list;
      }
    }
  }

  /** An input path, resolved against the config file's folder; it must exist. */
  path(p: string, key: string): string {
    const full = isAbsolute(p) ? p : resolve(this.baseDir, p);
    if (!existsSync(full)) throw new ConfigError(`${this.label}: ${key}: no such file or folder: ${full}`);
    return full;
  }

  /** `embtune train` options: checked by the trainer's resolver; the pipeline's own keys refused. */
  trainSection(value: unknown, name: string): Record<string, unknown> {
    if (value === undefined || value === null) return {};
    if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${this.label}: ${name}: expected a mapping of embtune train options, got ${describe(value)}`);
    const options = Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [camelKey(k), v]));
    for (const key of PIPELINE_OWNED_TRAIN_KEYS) {
      if (key in options) throw new ConfigError(`${this.label}: ${name}: '${key}' is set by the pipeline (the model and data of each stage); remove it`);
    }
    try {
      resolveConfig({}, { ...options, model: 'model', dataset: ['data'] }, `${this.label}: ${name}`);
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(err.message.startsWith(this.label) ? err.message : `${this.label}: ${name}: ${err.message}`);
      throw err;
    }
    return options;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return JSON.stringify(v);
}

/** " (did you mean 'x'?)" for a near miss of a known key. */
function suggest(key: string, known: string[]): string {
  const near = known.find((k) => editDistance(k, key) <= 2);
  return near ? ` (did you mean '${near}'?)` : '';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
