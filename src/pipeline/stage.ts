/**
 * What a pipeline stage is: a name, the stages whose outputs it reads, the part of the config it
 * depends on, the outside files it reads, and a function that writes its outputs into a folder.
 * The runner (runner.ts) decides from these alone whether a stage runs or is skipped, so every
 * value that changes a stage's result must be in `section` or `inputs`.
 */
import type { PipelineConfig } from './config.js';
import type { StageManifest } from './manifest.js';
import type { Trainer } from '../train/trainer.js';

/** The stages in the order they run: split → (init → pretrain) → mine → train → eval → merge → (fuse → fuse-eval) → report. */
export const STAGE_ORDER = ['split', 'init', 'pretrain', 'mine', 'train', 'eval', 'merge', 'fuse', 'fuse-eval', 'report'] as const;
export type StageName = (typeof STAGE_ORDER)[number];

export function isStageName(name: string): name is StageName {
  return (STAGE_ORDER as readonly string[]).includes(name);
}

/** A stage's outputs as JSON: paths relative to the stage's folder, and figures for the report. */
export type StageOutputs = Record<string, unknown>;

export interface StageContext {
  readonly config: PipelineConfig;
  /** The folder the stage writes into (a temporary sibling of its final folder unless it resumes in place). */
  readonly dir: string;
  /** The stage's final folder (`<output_dir>/<stage>`). */
  readonly finalDir: string;
  /** True when an interrupted run of this same stage (same key) left work to continue. */
  readonly resume: boolean;
  /** The manifest of an upstream stage that ran or was skipped in this pipeline run. */
  upstream(stage: StageName): StageManifest | undefined;
  /** An upstream output path (relative in its manifest), absolute. */
  upstreamPath(stage: StageName, output: string): string;
  say(line: string): void;
  /** Progress of long work (embedding, training) as one-line notes. */
  progress(line: string): void;
  /** Called when a trainer starts, so Ctrl-C can ask it to checkpoint and stop. */
  onTrainer(trainer: Trainer): void;
}

export interface StageDefinition {
  readonly name: StageName;
  /** Upstream stages it reads (those enabled in this config). */
  needs(config: PipelineConfig): StageName[];
  enabled(config: PipelineConfig): boolean;
  /** The configuration it depends on; recorded in its manifest, and a change reruns it and what follows. */
  section(config: PipelineConfig): unknown;
  /** Files and folders outside the run that it reads; their content hashes are part of its key. */
  inputs(config: PipelineConfig): string[];
  /** Works in its final folder and continues an interrupted run (training), instead of a fresh temporary folder. */
  readonly resumable?: boolean;
  run(ctx: StageContext): Promise<StageOutputs>;
}

/** A training stage stopped by Ctrl-C after saving a checkpoint; rerunning the pipeline continues it. */
export class StageInterrupted extends Error {
  constructor(
    readonly stage: StageName,
    readonly checkpoint: string | undefined,
  ) {
    super(`${stage} was interrupted${checkpoint ? ` (checkpoint ${checkpoint})` : ''}; run the same command again to continue from the last checkpoint`);
    this.name = 'StageInterrupted';
  }
}
