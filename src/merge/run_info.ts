/**
 * What an adapter's training run says about it, for the model card and the parity samples:
 * `embtune train` writes `<run>/args.json` (the full training config) and
 * `<run>/checkpoint-<step>/trainer_state.json` (src/train/checkpoint.ts, with the eval records
 * in logHistory); `embtune eval --output-dir D` writes `D/metrics.json` (label → metric → value).
 * An adapter folder that is not inside such a run simply has none of these.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readTrainerState, TRAINER_STATE, type LogRecord } from '../train/checkpoint.js';

export type MetricsTable = Record<string, Record<string, number>>;

export interface RunInfo {
  /** The run folder (`output/v0-…`), when the adapter is one of its checkpoints. */
  runDir?: string;
  /** `args.json` of the run: the training configuration. */
  args?: Record<string, unknown>;
  /** The checkpoint's step and its last eval record (eval_loss, eval_ndcg@10, …). */
  step?: number;
  lastEval?: LogRecord;
  /** `metrics.json` from `embtune eval` found beside the adapter or in its run. */
  metrics?: MetricsTable;
  metricsFile?: string;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A metrics.json is an object of objects of numbers; anything else is reported, not guessed at. */
function readMetrics(path: string): MetricsTable {
  const json = readJson(path);
  if (!isObject(json)) throw new Error(`${path}: expected an object mapping model labels to metrics`);
  const out: MetricsTable = {};
  for (const [label, metrics] of Object.entries(json)) {
    if (!isObject(metrics)) continue;
    const row: Record<string, number> = {};
    for (const [k, v] of Object.entries(metrics)) if (typeof v === 'number') row[k] = v;
    out[label] = row;
  }
  return out;
}

const isFile = (p: string) => existsSync(p) && statSync(p).isFile();

/** Reads what is known about the run an adapter folder belongs to (every part optional). */
export function readRunInfo(adapterFolder: string): RunInfo {
  const info: RunInfo = {};
  const parent = dirname(adapterFolder);
  const inRun = /^checkpoint-\d+$/.test(basename(adapterFolder)) && isFile(join(parent, 'args.json'));
  if (inRun) {
    info.runDir = parent;
    const args = readJson(join(parent, 'args.json'));
    if (isObject(args)) info.args = args;
  }
  if (isFile(join(adapterFolder, TRAINER_STATE))) {
    const state = readTrainerState(adapterFolder);
    info.step = state.globalStep;
    info.lastEval = [...state.logHistory].reverse().find((r) => Object.keys(r).some((k) => k.startsWith('eval_')));
  }
  const candidates = [adapterFolder, ...(info.runDir ? [info.runDir] : [])].flatMap((d) => [join(d, 'metrics.json'), join(d, 'eval', 'metrics.json')]);
  const found = candidates.find(isFile);
  if (found) {
    info.metrics = readMetrics(found);
    info.metricsFile = found;
  }
  return info;
}

/** The held-out split that training used, as the run's args.json records it (for the parity samples). */
export interface HeldOutSpec {
  dataset: string[];
  valDataset: string[];
  splitDatasetRatio: number;
  dataSeed: number;
}

export function heldOutSpec(info: RunInfo): HeldOutSpec | undefined {
  const a = info.args;
  if (!a) return undefined;
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const dataset = strings(a.dataset);
  const valDataset = strings(a.valDataset);
  const ratio = typeof a.splitDatasetRatio === 'number' ? a.splitDatasetRatio : 0;
  const seed = typeof a.dataSeed === 'number' ? a.dataSeed : 42;
  if (valDataset.length === 0 && (dataset.length === 0 || ratio <= 0)) return undefined;
  return { dataset, valDataset, splitDatasetRatio: ratio, dataSeed: seed };
}
