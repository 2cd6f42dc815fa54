/**
 * merge: the trained model as one complete folder that transformers, sentence-transformers and
 * TEI load (src/merge). A LoRA run's adapter is merged into its base with `mergeAndVerify`, which
 * reloads the written folder and checks it against base + adapter (the parity line) and warns
 * when the adapter changes nothing. A full fine-tune's last checkpoint is already the model: it
 * is exported the same way and the reloaded folder is checked against the checkpoint's own
 * vectors, so the report's parity line proves the folder either way.
 */
import { join } from 'node:path';
import { readAllRecords } from '../../data/records.js';
import { Embedder } from '../../embed/embedder.js';
import { mergeAndVerify, saveModelFolder } from '../../merge/index.js';
import { PARITY_TOLERANCE, compareVectors, embedFolder, embedSamples, parityReport } from '../../merge/parity.js';
import type { Samples } from '../../merge/samples.js';
import type { StageContext, StageDefinition } from '../stage.js';

/** Up to 16 held-out questions and their documents: the texts the parity check embeds. */
export async function heldOutSamples(ctx: StageContext): Promise<Samples> {
  const rows = (await readAllRecords(ctx.upstreamPath('split', 'heldoutPairs'))).records.map((r) => r.record).slice(0, 16);
  return {
    texts: [...rows.map((r) => ({ kind: 'query' as const, text: String(r.query) })), ...rows.map((r) => ({ kind: 'document' as const, text: String(r.response) }))],
    source: `${rows.length} held-out questions and their documents`,
  };
}

export const mergeStage: StageDefinition = {
  name: 'merge',
  needs: () => ['split', 'train'],
  enabled: () => true,
  section: (c) => ({ merge: c.merge }),
  inputs: () => [],
  async run(ctx) {
    const dtype = ctx.config.merge.dtype;
    const samples = await heldOutSamples(ctx);
    const out = join(ctx.dir, 'model');
    const train = ctx.upstream('train')!;
    if (typeof train.outputs.adapter === 'string') {
      const result = await mergeAndVerify({ base: String(train.outputs.baseModel), adapter: ctx.upstreamPath('train', 'adapter'), output: out, dtype, samples, say: (l) => ctx.say(`merge: ${l}`) });
      ctx.say(`merge: ${result.parity.line}`);
      if (result.warning) ctx.say(`merge: WARNING: ${result.warning}`);
      if (!result.parity.ok) throw new Error(`merge: ${result.parity.line}`);
      return { model: 'model', parity: result.parity, warning: result.warning ?? null, method: 'LoRA merge (W + scaling·B·A)' };
    }
    const checkpoint = ctx.upstreamPath('train', 'model');
    const embedder = await Embedder.load(checkpoint, { dtype: 'float32' });
    let reference: Float32Array[];
    const pooling = embedder.info.pooling;
    try {
      reference = embedSamples(embedder, samples.texts);
      saveModelFolder(embedder.encoder, checkpoint, out, { dtype });
    } finally {
      embedder.dispose();
    }
    const parity = parityReport(compareVectors(await embedFolder(out, samples.texts, pooling), reference), samples, PARITY_TOLERANCE[dtype], dtype);
    ctx.say(`merge: full fine-tune, exported ${train.outputs.lastCheckpoint as string}: ${parity.line}`);
    if (!parity.ok) throw new Error(`merge: ${parity.line}`);
    return { model: 'model', parity, warning: null, method: 'full fine-tune: the last checkpoint, exported' };
  },
};
