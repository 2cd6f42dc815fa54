/**
 * init: a model initialised from scratch (`embtune init`: transformers' `_init_weights` —
 * normal(0, initializer_range), zero biases, unit norms — over the given vocabulary, written as a
 * complete Hugging Face + sentence-transformers folder), for the offline quickstart and for users
 * who pretrain their own small encoder.
 *
 * Layering note: the init job lives in src/cli/init.ts (`runInit`) today; it belongs in a job
 * module below the pipeline, and this import should follow it there when it moves.
 */
import { join } from 'node:path';
import { runInit } from '../../cli/init.js';
import type { StageDefinition } from '../stage.js';

export const initStage: StageDefinition = {
  name: 'init',
  needs: () => [],
  enabled: (c) => c.model.init !== undefined,
  section: (c) => ({ init: c.model.init }),
  inputs: (c) => [c.model.init!.vocab, ...(c.model.init!.config.startsWith('/') ? [c.model.init!.config] : [])],
  async run(ctx) {
    const i = ctx.config.model.init!;
    const report = await runInit({ arch: i.arch, config: i.config, ...(i.arch === 'bert' ? { vocab: i.vocab } : { tokenizer: i.vocab }), output: join(ctx.dir, 'model'), seed: i.seed }, (line) => ctx.say(`init: ${line}`));
    return { model: 'model', parameters: report.parameters, arch: i.arch, preset: i.config };
  },
};
