// The real stages end to end on a tiny BERT and a 12-paragraph sample: every stage's manifest
// and outputs, the self-contained report, a rerun that skips everything, a changed training
// learning rate that reruns train and what follows (not split, pretrain or mine), --from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipelineConfig, readManifest, runPipeline } from '../../src/pipeline/index.js';
import { tinyBeir, tinyPipeline } from './tiny.js';

test('the pipeline runs every stage, skips them all on a rerun, and a changed train learning rate reruns train, eval, merge and report only', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-pipeline-'));
  try {
    const beir = tinyBeir(dir);
    const lines: string[] = [];
    const say = (l: string) => lines.push(l);
    const config = loadPipelineConfig(tinyPipeline(dir, beir));
    const first = await runPipeline(config, { say });
    assert.deepEqual(first.ran, ['split', 'pretrain', 'mine', 'train', 'eval', 'merge', 'report']);
    for (const stage of first.ran) {
      const m = readManifest(join(config.outputDir, stage));
      assert.ok(m, `${stage}: manifest`);
      assert.ok(m.seconds > 0 && Object.keys(m.files).length > 0, `${stage}: timings and files`);
    }
    // The eval table: base, stage one's model, the trained model, BM25, hybrid; sentence-transformers keys.
    const metrics = JSON.parse(readFileSync(join(config.outputDir, 'eval', 'metrics.json'), 'utf8')) as Record<string, Record<string, number>>;
    assert.deepEqual(Object.keys(metrics), ['base', 'pretrain', 'train', 'bm25', 'hybrid:bm25+train']);
    for (const row of Object.values(metrics)) {
      for (const key of ['cosine_ndcg@10', 'cosine_mrr@10', 'cosine_recall@10', 'cosine_accuracy@1', 'cosine_map@100']) assert.ok(row[key]! >= 0 && row[key]! <= 1, key);
    }
    // The trained model differs from the model it started from (the stage did something).
    assert.notDeepEqual(metrics.train, metrics.pretrain);
    const merge = readManifest(join(config.outputDir, 'merge'))!;
    assert.match((merge.outputs.parity as { line: string }).line, /^parity: max \|Δ\| .* — ok \(float32 tolerance 1e-4\)$/);
    assert.ok(existsSync(join(config.outputDir, 'merge', 'model', 'model.safetensors')));
    assert.ok(existsSync(join(config.outputDir, 'merge', 'model', 'modules.json')));

    const html = readFileSync(join(config.outputDir, 'report', 'report.html'), 'utf8');
    assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/i, 'self-contained: no external resource');
    for (const part of ['Held-out retrieval', 'hybrid:bm25+train', 'stage 1: weakly supervised pretraining', 'stage 2: supervised fine-tuning', 'parity: max |Δ|', 'Hard-negative mining', 'Positive', 'Training curves: stage 2', '<svg', 'Stage times']) {
      assert.ok(html.includes(part.replace('|', '|')), `report has '${part}'`);
    }
    const summary = JSON.parse(readFileSync(join(config.outputDir, 'report', 'summary.json'), 'utf8')) as { gains: { stage: string; before: number; after: number }[] };
    assert.deepEqual(summary.gains.map((g) => g.stage), ['pretrain', 'train']);
    assert.equal(summary.gains[1]!.before, metrics.pretrain!['cosine_ndcg@10']);

    const again = await runPipeline(config, { say });
    assert.deepEqual(again.ran, []);

    const changed = loadPipelineConfig(tinyPipeline(dir, beir, { trainLr: 2e-3 }));
    const planned: string[] = [];
    const dry = await runPipeline(changed, { dryRun: true, say: (l) => planned.push(l) });
    assert.deepEqual(dry.plan.map((p) => [p.stage, p.action]), [
      ['split', 'skip'], ['pretrain', 'skip'], ['mine', 'skip'], ['train', 'run'], ['eval', 'run'], ['merge', 'run'], ['report', 'run'],
    ]);
    assert.match(planned.join('\n'), /train\s+run\s+config changed: train\.learningRate 0\.001 → 0\.002/);
    const rerun = await runPipeline(changed, { say });
    assert.deepEqual(rerun.ran, ['train', 'eval', 'merge', 'report']);
    const metrics2 = JSON.parse(readFileSync(join(config.outputDir, 'eval', 'metrics.json'), 'utf8')) as Record<string, Record<string, number>>;
    assert.deepEqual(metrics2.pretrain, metrics.pretrain);
    assert.notDeepEqual(metrics2.train, metrics.train);

    const from = await runPipeline(changed, { from: 'mine', say });
    assert.deepEqual(from.ran, ['mine', 'train', 'eval', 'merge', 'report']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
