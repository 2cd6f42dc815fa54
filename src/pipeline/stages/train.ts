/**
 * train (stage two): `embtune train` on the mined rows, from the current model (stage one's, or
 * the base), with the `train` section's options (ms-swift's names and defaults: LoRA or full,
 * InfoNCE). Unless the section holds data out itself (split_dataset_ratio, val_dataset), the
 * held-out questions of `split` are the trainer's eval set, so the training curves show them.
 */
import type { StageDefinition } from '../stage.js';
import { baseInputs, currentStage, modelOf, modelSource } from './models.js';
import { runTraining } from './training.js';

export const trainStage: StageDefinition = {
  name: 'train',
  needs: (c) => ['split', 'mine', ...[currentStage(c)].filter((s) => s !== undefined)],
  enabled: () => true,
  section: (c) => ({ train: c.train, seed: c.seed, model: modelSource(c, currentStage(c)) }),
  inputs: (c) => baseInputs(c, currentStage(c)),
  resumable: true,
  async run(ctx) {
    const c = ctx.config;
    const model = await modelOf(ctx, currentStage(c));
    const out = await runTraining(ctx, 'train', {
      model,
      dataset: ctx.upstreamPath('mine', 'mined'),
      valDataset: ctx.upstreamPath('split', 'heldoutPairs'),
      train: c.train,
      seed: c.seed,
    });
    // A full fine-tune's checkpoints are whole models; a LoRA run's are adapters of `baseModel`.
    return { ...out, model: out.trainType === 'full' ? out.lastCheckpoint : undefined, adapter: out.trainType === 'lora' ? out.lastCheckpoint : undefined };
  },
};
