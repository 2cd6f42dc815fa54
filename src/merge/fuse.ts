/**
 * `fuse(options)`: stage three of Qwen3-Embedding's recipe (REFERENCE §13) as one call — full
 * models (`models`), LoRA adapters of one base (`adapters` + `base`), or the checkpoints of one
 * training run (`checkpoints`: the last N or the best N by an eval metric; LoRA runs fuse their
 * adapters over the run's base model, full fine-tuning runs their model folders).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointKind, selectCheckpoints, type CheckpointSelection, type PickedCheckpoint } from './checkpoints.js';
import { fuseAdapters, type AdapterOutput, type FuseAdaptersResult } from './fuse_adapters.js';
import { fuseModels, type FuseOutputOptions, type FuseResult } from './fuse_models.js';
import type { FuseMethodOptions } from './fuse_method.js';

export interface FuseOptions extends FuseMethodOptions, FuseOutputOptions {
  /** Full model folders of one architecture. */
  models?: string[];
  /** LoRA adapter folders of one base (`baseModel` is that base). */
  adapters?: string[];
  /** A training run folder whose checkpoints are fused. */
  checkpoints?: { runDir: string } & CheckpointSelection;
  /**
   * The base model: for adapters, the model they were trained on (default for a LoRA run: its
   * args.json `model`); resolved to a local folder by the caller.
   */
  baseModel?: string;
  /** For models: the base of the task-vector methods (TIES, DARE). */
  base?: string;
  asAdapter?: AdapterOutput;
  rank?: number;
  /** Resolves a model reference (hub id) to a folder; default: as given. */
  resolve?: (ref: string) => Promise<string>;
}

export interface FuseRunResult extends FuseResult {
  /** The checkpoints fused, when `checkpoints` was given. */
  picked?: PickedCheckpoint[];
  approximation?: FuseAdaptersResult['approximation'];
  rank?: number;
}

function runModel(runDir: string): string | undefined {
  try {
    const args = JSON.parse(readFileSync(join(runDir, 'args.json'), 'utf8')) as { model?: unknown };
    return typeof args.model === 'string' ? args.model : undefined;
  } catch {
    return undefined;
  }
}

/** Fuses models, adapters or a run's checkpoints (exactly one of them). */
export async function fuse(opts: FuseOptions): Promise<FuseRunResult> {
  const given = [opts.models, opts.adapters, opts.checkpoints].filter((x) => x !== undefined).length;
  if (given !== 1) throw new Error('fuse: give exactly one of models, adapters or checkpoints');
  const resolve = opts.resolve ?? (async (ref: string) => ref);
  let picked: PickedCheckpoint[] | undefined;
  let adapters = opts.adapters;
  let models = opts.models;
  let baseModel = opts.baseModel;
  if (opts.checkpoints) {
    picked = selectCheckpoints(opts.checkpoints.runDir, opts.checkpoints);
    if (picked.length < 2) throw new Error(`${opts.checkpoints.runDir}: only one checkpoint picked (${picked[0]!.path}); fusion needs two or more`);
    opts.say?.(`checkpoints: ${picked.map((c) => `${c.step}${c.metric === undefined ? '' : ` (${opts.checkpoints!.metric ?? 'eval_ndcg@10'} ${c.metric})`}`).join(', ')}`);
    if (checkpointKind(picked) === 'adapter') {
      adapters = picked.map((c) => c.path);
      baseModel ??= runModel(opts.checkpoints.runDir);
      if (baseModel === undefined) throw new Error(`${opts.checkpoints.runDir}: its args.json names no base model; give --model BASE`);
    } else {
      models = picked.map((c) => c.path);
    }
  }
  if (adapters) {
    if (baseModel === undefined) throw new Error('fusing adapters needs the base model they were trained on (--model BASE)');
    const result = await fuseAdapters({ ...opts, base: await resolve(baseModel), baseName: baseModel, adapters });
    return { ...result, ...(picked ? { picked } : {}) };
  }
  const folders = await Promise.all(models!.map(resolve));
  const base = opts.base === undefined ? undefined : await resolve(opts.base);
  const result = await fuseModels({ ...opts, models: folders, names: models!, ...(base ? { base } : {}) });
  return { ...result, ...(picked ? { picked } : {}) };
}
