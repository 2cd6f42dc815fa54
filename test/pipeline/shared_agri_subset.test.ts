// The pipeline on AgriEval, read in place from ../shared/data (non-commercial: never copied into
// the project): the first 160 questions, the tiny BERT fixture, a few steps per stage. Proves the
// stages run on the domain data the project is about, and BM25 and hybrid rows come out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipelineConfig, runPipeline } from '../../src/pipeline/index.js';
import { SHARED } from '../helpers.js';
import { BERT } from './tiny.js';

const AGRIEVAL = join(SHARED, 'data/zh_agri/agrieval/beir');

test('a pipeline run on an AgriEval subset read from ../shared/data: every stage, the eval table with BM25 and hybrid rows, the report', { skip: !existsSync(AGRIEVAL) && 'no ../shared/data' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-pipeline-agrieval-'));
  try {
    const file = join(dir, 'agrieval.yaml');
    writeFileSync(file, [
      `output_dir: ${join(dir, 'run')}`,
      'data:',
      `  beir: ${AGRIEVAL}`,
      '  max_examples: 160',
      '  test_size: 0.25',
      'model:',
      `  base: ${BERT}`,
      'mine:',
      '  num_negatives: 2',
      '  range_min: 2',
      '  range_max: 10',
      'train:',
      '  train_type: full',
      '  learning_rate: 1.0e-3',
      '  max_steps: 4',
      '  save_steps: 2',
      '  per_device_train_batch_size: 8',
      '  per_device_eval_batch_size: 16',
      '  gradient_accumulation_steps: 1',
      '  max_length: 64',
      '  truncation_strategy: right',
      '  temperature: 0.05',
      'fuse:',
      '  method: slerp',
      '  last: 2',
      '',
    ].join('\n'));
    const config = loadPipelineConfig(file);
    const run = await runPipeline(config, { say: () => {} });
    assert.deepEqual(run.ran, ['split', 'mine', 'train', 'eval', 'merge', 'fuse', 'fuse-eval', 'report']);
    const split = run.manifests.get('split')!.outputs.statistics as { examples: number; heldOutQueries: number; documents: number };
    assert.equal(split.examples, 160);
    assert.equal(split.heldOutQueries, 40);
    const metrics = JSON.parse(readFileSync(join(config.outputDir, 'eval', 'metrics.json'), 'utf8')) as Record<string, Record<string, number>>;
    assert.deepEqual(Object.keys(metrics), ['base', 'train', 'bm25', 'hybrid:bm25+train']);
    // BM25 with character bigrams is strong on AgriEval (≈ 0.58 MRR@10 over all 2,162 documents);
    // among this subset's documents it must find most answers.
    assert.ok(metrics.bm25!['cosine_mrr@10']! > 0.5, `bm25 mrr@10 ${metrics.bm25!['cosine_mrr@10']}`);
    const fused = JSON.parse(readFileSync(join(config.outputDir, 'fuse-eval', 'metrics.json'), 'utf8')) as Record<string, Record<string, number>>;
    assert.deepEqual(Object.keys(fused), ['fused', 'bm25', 'hybrid:bm25+fused']);
    assert.ok(readFileSync(join(config.outputDir, 'report', 'report.html'), 'utf8').includes('stage 3: model fusion'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
