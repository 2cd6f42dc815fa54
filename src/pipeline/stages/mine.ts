/**
 * mine: hard negatives for the training rows with sentence-transformers' `mine_hard_negatives`
 * (src/mine, REFERENCE §2; the tutorial's options: num_negatives, range_min/max, max_score,
 * absolute_margin, sampling_strategy top, output labeled-list), embedded by `mine.model` (the
 * tutorial: moka-ai/m3e-small) or by the model being trained. Writes the ms-swift ≤ 3.8 records
 * the trainer reads ({query, response, rejected_response}, as `embtune mine --swift`) and keeps
 * the statistics table the library prints, for the report.
 */
import { join } from 'node:path';
import { readAllRecords, writeRecords } from '../../data/records.js';
import { Embedder } from '../../embed/embedder.js';
import { resolveModel } from '../../formats/hub.js';
import { embedderEncoder, mineHardNegatives } from '../../mine/index.js';
import type { StageDefinition } from '../stage.js';
import { baseInputs, currentStage, modelOf, modelSource } from './models.js';

export const mineStage: StageDefinition = {
  name: 'mine',
  needs: (c) => ['split', ...(c.mine.model ? [] : [currentStage(c)].filter((s) => s !== undefined))],
  enabled: () => true,
  section: (c) => ({ ...c.mine, model: c.mine.model ?? modelSource(c, currentStage(c)) }),
  inputs: (c) => (c.mine.model ? (c.mine.model.startsWith('/') ? [c.mine.model] : []) : baseInputs(c, currentStage(c))),
  async run(ctx) {
    const c = ctx.config;
    const m = c.mine;
    const folder = m.model ? await resolveModel(m.model) : await modelOf(ctx, currentStage(c));
    const { records } = await readAllRecords(ctx.upstreamPath('split', 'train'));
    const rows = records.map((r) => r.record);
    const embedder = await Embedder.load(folder, { dtype: m.dtype });
    const printed: string[] = [];
    try {
      const result = await mineHardNegatives({ columns: ['query', 'response'], rows }, embedderEncoder(embedder, { name: m.model ?? 'current model' }), {
        anchorColumnName: 'query',
        positiveColumnName: 'response',
        numNegatives: m.numNegatives,
        rangeMin: m.rangeMin,
        rangeMax: m.rangeMax ?? null,
        maxScore: m.maxScore ?? null,
        minScore: m.minScore ?? null,
        absoluteMargin: m.absoluteMargin ?? null,
        relativeMargin: m.relativeMargin ?? null,
        samplingStrategy: m.samplingStrategy,
        seed: m.seed,
        batchSize: m.batchSize,
        outputFormat: 'labeled-list',
        verbose: true,
        print: (line) => {
          printed.push(line);
          ctx.say(`mine: ${line}`);
        },
        warn: (message) => ctx.say(`mine: warning: ${message}`),
      });
      const [anchor, positive] = result.columns;
      const swift = result.rows.map((row) => {
        const docs = row[positive!] as string[];
        return { query: row[anchor!], response: docs[0], rejected_response: docs.slice(1) };
      });
      writeRecords(join(ctx.dir, 'mined.jsonl'), swift, ['query', 'response', 'rejected_response']);
      const negatives = swift.reduce((n, r) => n + (r.rejected_response as string[]).length, 0);
      ctx.say(`mine: ${swift.length} rows with ${negatives} negatives (${(negatives / Math.max(1, swift.length)).toFixed(2)} per row)`);
      return { mined: 'mined.jsonl', rows: swift.length, negatives, statistics: result.statistics, printed, model: m.model ?? 'the model being trained' };
    } finally {
      embedder.dispose();
    }
  },
};
