/**
 * Which model each stage works on: the starting model (made from scratch by `init`, or
 * `model.base`: a folder or a hub id, downloaded into the Hugging Face cache), then the
 * stage-one model when `pretrain` runs.
 */
import { resolveModel } from '../../formats/hub.js';
import type { PipelineConfig } from '../config.js';
import type { StageContext, StageName } from '../stage.js';

/** The stage whose output `model` the next stage starts from, or undefined for `model.base`. */
export function startingStage(c: PipelineConfig): StageName | undefined {
  return c.model.init ? 'init' : undefined;
}

/** The model mining and training start from: stage one's when it runs, else the starting model. */
export function currentStage(c: PipelineConfig): StageName | undefined {
  return c.pretrain ? 'pretrain' : startingStage(c);
}

export async function modelOf(ctx: StageContext, stage: StageName | undefined): Promise<string> {
  if (stage) return ctx.upstreamPath(stage, 'model');
  return resolveModel(ctx.config.model.base!);
}

/** A stage's config view of where its model comes from (part of its key). */
export function modelSource(c: PipelineConfig, stage: StageName | undefined): unknown {
  return stage ? { stage } : { base: c.model.base };
}

/** The local model folder a stage reads when it starts from `model.base` (hashed as an input). */
export function baseInputs(c: PipelineConfig, stage: StageName | undefined): string[] {
  return stage === undefined && c.model.base?.startsWith('/') ? [c.model.base] : [];
}
