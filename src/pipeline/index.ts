/**
 * The pipeline (`embtune pipeline CONFIG.yaml`): split → (init → pretrain) → mine → train → eval →
 * merge → (fuse → fuse-eval) → report, each stage skipped when its inputs and config are unchanged,
 * training resumed from its last checkpoint after an interruption.
 */
import type { PipelineConfig } from './config.js';
import { runStages, type PipelineRun, type RunOptions } from './runner.js';
import { allStages } from './stages/all.js';

export { loadPipelineConfig, parsePipelineConfig, ConfigError, type PipelineConfig } from './config.js';
export { STAGE_ORDER, StageInterrupted, isStageName, type StageName, type StageDefinition, type StageContext } from './stage.js';
export { formatPlan, planPipeline, type PlannedStage, type StageAction } from './plan.js';
export { readManifest, type StageManifest } from './manifest.js';
export { stageGains, reportSummary, type StageGain, type ReportSummary } from './report.js';
export type { PipelineRun, RunOptions } from './runner.js';

/** Runs (or with `dryRun`, plans) the whole pipeline of `config`. */
export function runPipeline(config: PipelineConfig, options: RunOptions = {}): Promise<PipelineRun> {
  return runStages(config, allStages(), options);
}
