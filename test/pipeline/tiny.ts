// Shared by the pipeline tests: a tiny BEIR set cut from examples/data/cmrc2018 and a pipeline
// file over the tiny BERT fixture with a few steps per stage, so a whole run takes seconds.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT } from '../helpers.js';

export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const BERT = join(FIXTURES, 'models/bert-tiny');
export const ENV = { ...process.env, EMBTUNE_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' };

/** The first `docs` paragraphs of the example CMRC sample and their questions, as a BEIR folder in `dir`. */
export function tinyBeir(dir: string, docs = 12): string {
  const src = join(ROOT, 'examples', 'data', 'cmrc2018');
  const out = join(dir, 'beir');
  mkdirSync(join(out, 'qrels'), { recursive: true });
  const corpus = readFileSync(join(src, 'corpus.jsonl'), 'utf8').trim().split('\n').slice(0, docs);
  const ids = new Set(corpus.map((l) => (JSON.parse(l) as { _id: string })._id));
  const qrels = readFileSync(join(src, 'qrels', 'test.tsv'), 'utf8').trim().split('\n').slice(1).filter((l) => ids.has(l.split('\t')[1]!));
  const qids = new Set(qrels.map((l) => l.split('\t')[0]!));
  const queries = readFileSync(join(src, 'queries.jsonl'), 'utf8').trim().split('\n').filter((l) => qids.has((JSON.parse(l) as { _id: string })._id));
  writeFileSync(join(out, 'corpus.jsonl'), corpus.join('\n') + '\n');
  writeFileSync(join(out, 'queries.jsonl'), queries.join('\n') + '\n');
  writeFileSync(join(out, 'qrels', 'test.tsv'), ['query-id\tcorpus-id\tscore', ...qrels].join('\n') + '\n');
  return out;
}

export interface TinyOptions {
  trainLr?: number;
  trainSteps?: number;
  fuse?: boolean;
  trainType?: 'full' | 'lora';
}

/** A pipeline file: stage one (crops), mining, stage two, merge, optionally SLERP of the last two checkpoints. */
export function tinyPipeline(dir: string, beir: string, o: TinyOptions = {}): string {
  const trainCommon = `    per_device_train_batch_size: 8\n    per_device_eval_batch_size: 16\n    gradient_accumulation_steps: 1\n    max_length: 32\n    truncation_strategy: right\n    temperature: 0.05\n    logging_steps: 1\n`;
  const yaml = [
    `output_dir: ${join(dir, 'run')}`,
    'seed: 7',
    'data:',
    `  beir: ${beir}`,
    '  test_size: 0.25',
    'model:',
    `  base: ${BERT}`,
    'pretrain:',
    '  mode: crop',
    '  pairs_per_document: 2',
    '  train:',
    '    train_type: full',
    '    learning_rate: 1.0e-3',
    '    max_steps: 3',
    '    save_steps: 3',
    trainCommon.replace(/^ {4}/gm, '    ').trimEnd(),
    'mine:',
    '  num_negatives: 2',
    '  range_min: 1',
    '  range_max: 8',
    'train:',
    `  train_type: ${o.trainType ?? 'full'}`,
    `  learning_rate: ${o.trainLr ?? 1e-3}`,
    `  max_steps: ${o.trainSteps ?? 4}`,
    '  save_steps: 2',
    '  eval_steps: 2',
    trainCommon.replace(/^ {4}/gm, '  ').trimEnd(),
    'eval:',
    '  batch_size: 16',
    ...(o.fuse ? ['fuse:', '  method: slerp', '  last: 2', '  t: 0.5'] : []),
    '',
  ].join('\n');
  const file = join(dir, 'pipeline.yaml');
  writeFileSync(file, yaml);
  return file;
}
