/**
 * pretrain (stage one of the Qwen3-Embedding recipe): weakly supervised contrastive training on
 * pairs made from the documents alone — Contriever's two independent crops of one document, or
 * (title, body) — with in-batch negatives only (src/data/weak_pairs.ts, as `embtune pairs`),
 * then `embtune train` with the `pretrain.train` options. No question is used. The stage's model
 * is the run's last checkpoint (a LoRA run's adapter is merged into a whole folder, so that mining
 * and stage two start from an ordinary model).
 */
import { join } from 'node:path';
import { readAllRecords, writeRecords } from '../../data/records.js';
import { WeakPairMaker, type WeakPair } from '../../data/weak_pairs.js';
import { mergeAdapterFolder } from '../../merge/index.js';
import type { StageDefinition } from '../stage.js';
import { baseInputs, modelOf, modelSource, startingStage } from './models.js';
import { runTraining } from './training.js';

export const pretrainStage: StageDefinition = {
  name: 'pretrain',
  needs: (c) => ['split', ...[startingStage(c)].filter((s) => s !== undefined)],
  enabled: (c) => c.pretrain !== undefined,
  section: (c) => ({ pretrain: c.pretrain, seed: c.seed, model: modelSource(c, startingStage(c)) }),
  inputs: (c) => baseInputs(c, startingStage(c)),
  resumable: true,
  async run(ctx) {
    const c = ctx.config;
    const p = c.pretrain!;
    const docs = (await readAllRecords(ctx.upstreamPath('split', 'documents'))).records.map((r) => r.record);
    const maker = new WeakPairMaker({ mode: p.mode, seed: p.seed });
    const pairs: WeakPair[] = [];
    const rounds = p.mode === 'crop' ? p.pairsPerDocument : 1;
    for (let round = 0; round < rounds; round++) for (const doc of docs) {
      const pair = maker.pairOf(doc);
      if (pair) pairs.push(pair);
    }
    if (pairs.length === 0) throw new Error(`pretrain: no weak pairs from ${docs.length} documents (${maker.skippedSummary() || 'no text'}); use mode crop for documents without titles`);
    writeRecords(join(ctx.dir, 'pairs.jsonl'), pairs.map((x) => ({ query: x.query, response: x.response })), ['query', 'response']);
    ctx.say(`pretrain: ${pairs.length} weak pairs (${p.mode}) from ${docs.length} documents${maker.skippedSummary() ? `; ${maker.skippedSummary()}` : ''}`);
    const base = await modelOf(ctx, startingStage(c));
    const out = await runTraining(ctx, 'pretrain', { model: base, dataset: join(ctx.dir, 'pairs.jsonl'), valDataset: ctx.upstreamPath('split', 'heldoutPairs'), train: p.train, seed: p.seed });
    let model = out.lastCheckpoint;
    if (out.trainType === 'lora') {
      mergeAdapterFolder(base, join(ctx.dir, out.lastCheckpoint), join(ctx.dir, 'model'));
      model = 'model';
    }
    return { ...out, pairs: 'pairs.jsonl', pairCount: pairs.length, model };
  },
};
