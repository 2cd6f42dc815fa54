/**
 * eval: the held-out table of the base model, stage one's model, the trained model, BM25 and the
 * hybrid of BM25 with the trained model. fuse-eval: the same for the fused model. Writes what
 * `embtune eval --output-dir` writes (`metrics.json`: label → sentence-transformers' `cosine_*`
 * metrics; `results.md`; `report.html`).
 */
import type { StageContext, StageDefinition, StageName } from '../stage.js';
import { evaluateModels, type ModelUnderTest } from './evaluate.js';
import { baseInputs, modelOf, modelSource, startingStage } from './models.js';

/** The trained model as evaluated: a whole checkpoint, or base + adapter for LoRA. */
export function trainedModel(ctx: StageContext, label = 'train'): ModelUnderTest {
  const m = ctx.upstream('train')!;
  if (typeof m.outputs.adapter === 'string') return { label, folder: String(m.outputs.baseModel), adapter: ctx.upstreamPath('train', 'adapter') };
  return { label, folder: ctx.upstreamPath('train', 'model') };
}

async function write(ctx: StageContext, models: ModelUnderTest[], hybridWith: string[]) {
  const result = await evaluateModels(ctx, models, hybridWith);
  return { metricsFile: 'metrics.json', resultsFile: 'results.md', ...result, models: models.map((m) => m.label) };
}

export const evalStage: StageDefinition = {
  name: 'eval',
  needs: (c) => ['split', ...[startingStage(c)].filter((s): s is StageName => s !== undefined), ...(c.pretrain ? (['pretrain'] as const) : []), 'train'],
  enabled: () => true,
  section: (c) => ({ eval: c.eval, base: modelSource(c, startingStage(c)) }),
  inputs: (c) => baseInputs(c, startingStage(c)),
  async run(ctx) {
    const c = ctx.config;
    const models: ModelUnderTest[] = [{ label: 'base', folder: await modelOf(ctx, startingStage(c)) }];
    if (c.pretrain) models.push({ label: 'pretrain', folder: ctx.upstreamPath('pretrain', 'model') });
    models.push(trainedModel(ctx));
    return write(ctx, models, ['train']);
  },
};

export const fuseEvalStage: StageDefinition = {
  name: 'fuse-eval',
  needs: () => ['split', 'fuse'],
  enabled: (c) => c.fuse !== undefined,
  section: (c) => ({ eval: c.eval }),
  inputs: () => [],
  async run(ctx) {
    return write(ctx, [{ label: 'fused', folder: ctx.upstreamPath('fuse', 'model') }], ['fused']);
  },
};
