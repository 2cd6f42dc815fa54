/**
 * fuse (stage three of the Qwen3-Embedding recipe): SLERP (or linear) of the last N checkpoints
 * of the training run, as that recipe merges its supervised stage's checkpoints, with the
 * library's `fuse` (src/merge: mergekit's definitions, REFERENCE §13). A LoRA run's adapters are
 * fused over its base; a full fine-tune's model folders directly. The written folder is reloaded
 * and checked against the fused weights (the parity line).
 */
import { join } from 'node:path';
import { fuse } from '../../merge/fuse.js';
import type { StageDefinition } from '../stage.js';
import { heldOutSamples } from './merge.js';

export const fuseStage: StageDefinition = {
  name: 'fuse',
  needs: () => ['split', 'train'],
  enabled: (c) => c.fuse !== undefined,
  section: (c) => ({ fuse: c.fuse, dtype: c.merge.dtype }),
  inputs: () => [],
  async run(ctx) {
    const f = ctx.config.fuse!;
    const train = ctx.upstream('train')!;
    const runDir = ctx.upstreamPath('train', 'runDir');
    const kept = (train.outputs.checkpoints as string[]).length;
    if (kept < f.last) throw new Error(`fuse: the training run kept ${kept} checkpoint(s), fewer than fuse.last ${f.last}; lower train.save_steps (or raise save_total_limit)`);
    const result = await fuse({
      method: f.method,
      ...(f.method === 'slerp' ? { t: f.t } : {}),
      checkpoints: { runDir, last: f.last },
      ...(typeof train.outputs.adapter === 'string' ? { baseModel: String(train.outputs.baseModel) } : {}),
      output: join(ctx.dir, 'model'),
      dtype: ctx.config.merge.dtype,
      samples: await heldOutSamples(ctx),
      say: (line) => ctx.say(`fuse: ${line}`),
    });
    ctx.say(`fuse: ${result.description}`);
    ctx.say(`fuse: ${result.parity.line}`);
    if (!result.parity.ok) throw new Error(`fuse: ${result.parity.line}`);
    const steps = (result.picked ?? []).map((p) => p.step);
    return { model: 'model', description: `${result.description} (checkpoints at steps ${steps.join(', ')})`, parity: result.parity, steps };
  },
};
