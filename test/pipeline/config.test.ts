// The pipeline file is checked key by key: unknown keys, wrong types and missing paths are errors
// that name the file and the key; the train sections go through embtune train's own checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadPipelineConfig } from '../../src/pipeline/index.js';
import { ROOT } from '../helpers.js';

const DATA = join(ROOT, 'examples', 'data', 'cmrc2018');

function withConfig(yaml: string, fn: (file: string, dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-pipeline-config-'));
  try {
    const file = join(dir, 'p.yaml');
    writeFileSync(file, yaml);
    fn(file, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const BASE = `output_dir: out\ndata:\n  beir: ${DATA}\nmodel:\n  base: org/model\n`;

function rejects(yaml: string, pattern: RegExp): void {
  withConfig(yaml, (file) => assert.throws(() => loadPipelineConfig(file), (err: unknown) => err instanceof ConfigError && pattern.test(err.message)));
}

test('a valid file: defaults filled in, input paths resolved against the file, output_dir against the current directory', () => {
  withConfig(BASE + 'train:\n  learning_rate: 6.0e-6\n  per_device_train_batch_size: 4\n', (file, dir) => {
    const c = loadPipelineConfig(file, { cwd: dir });
    assert.equal(c.outputDir, join(dir, 'out'));
    assert.equal(c.data.beir, DATA);
    assert.equal(c.data.testSize, 0.2);
    assert.equal(c.mine.numNegatives, 5);
    assert.deepEqual(c.train, { learningRate: 6e-6, perDeviceTrainBatchSize: 4 });
    assert.equal(c.model.base, 'org/model');
    assert.equal(loadPipelineConfig(file, { cwd: dir, outputDir: '/tmp/elsewhere' }).outputDir, '/tmp/elsewhere');
  });
});

test('a missing input path names the key and the absolute path it looked for', () => {
  withConfig(`output_dir: out\ndata:\n  beir: ./cmrc\nmodel:\n  base: a/b\n`, (file, dir) => {
    assert.throws(() => loadPipelineConfig(file), (err: unknown) => err instanceof ConfigError && err.message.includes(`data.beir: no such file or folder: ${join(dir, 'cmrc')}`));
  });
  rejects(BASE.replace('base: org/model', 'base: ./no-model'), /model\.base: no such file or folder/);
});

test('an unknown key is named with its section, a near miss suggested, and the known keys listed', () => {
  rejects(BASE + 'mine:\n  num_negative: 5\n', /p\.yaml: mine: unknown key 'num_negative' \(did you mean 'num_negatives'\?\) \(known keys: model, num_negatives/);
  rejects(BASE + 'evaluation: {}\n', /unknown key 'evaluation'/);
});

test('a value of the wrong type says what was expected and what was given', () => {
  rejects(BASE + 'mine:\n  num_negatives: five\n', /mine\.num_negatives: expected an integer, got "five"/);
  rejects(BASE + 'eval:\n  bm25: yes please\n', /eval\.bm25: expected true or false/);
  rejects(BASE + 'fuse:\n  method: average\n', /fuse\.method: expected one of slerp, linear/);
  rejects('output_dir: out\ndata:\n  - a\nmodel:\n  base: a/b\n', /data: expected a mapping/);
  rejects(BASE.replace('output_dir: out\n', '') , /output_dir is required/);
});

test('the train sections are checked by embtune train: unknown options, bad values, and keys the pipeline sets', () => {
  rejects(BASE + 'train:\n  learning_rat: 1.0e-4\n', /train.*unknown option 'learningRat'/);
  rejects(BASE + 'train:\n  lora_rank: 0\n', /train: loraRank must be ≥ 1/);
  rejects(BASE + 'train:\n  model: x\n', /train: 'model' is set by the pipeline/);
  rejects(BASE + 'pretrain:\n  train:\n    dataset: x\n', /pretrain\.train: 'dataset' is set by the pipeline/);
});

test('data and model each need exactly one source', () => {
  rejects(`output_dir: out\ndata:\n  beir: ${DATA}\n  pairs: ${DATA}/queries.jsonl\nmodel:\n  base: a/b\n`, /data: give exactly one of 'beir'/);
  rejects(`output_dir: out\ndata:\n  beir: ${DATA}\nmodel: {}\n`, /model: give exactly one of 'base'/);
  rejects(`output_dir: out\nmodel:\n  base: a/b\n`, /the 'data' section is required/);
  withConfig('a: [', (file) => assert.throws(() => loadPipelineConfig(file), /not valid YAML/));
  assert.throws(() => loadPipelineConfig('/nonexistent/p.yaml'), /cannot read the pipeline config \(ENOENT\)/);
});

test("examples/tutorial.yaml is the tutorial: m3e-small mining with its parameters, Qwen3-Embedding-0.6B LoRA with ms-swift's flags, the 95 % split", () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-pipeline-tutorial-'));
  try {
    const file = join(dir, 'tutorial.yaml');
    writeFileSync(file, readFileSync(join(ROOT, 'examples', 'tutorial.yaml')));
    // Without the downloaded data the file says which path is missing.
    assert.throws(() => loadPipelineConfig(file), /data\.pairs: no such file or folder: .*Chinese-QA-Agriculture_Forestry_Animal_Husbandry_Fishery/);
    mkdirSync(join(dir, 'data', 'Chinese-QA-Agriculture_Forestry_Animal_Husbandry_Fishery'), { recursive: true });
    writeFileSync(join(dir, 'data', 'Chinese-QA-Agriculture_Forestry_Animal_Husbandry_Fishery', 'train.parquet'), '');
    const c = loadPipelineConfig(file, { cwd: dir });
    assert.equal(c.model.base, 'Qwen/Qwen3-Embedding-0.6B');
    assert.deepEqual({ q: c.data.queryColumn, p: c.data.positiveColumn, test: c.data.testSize, seed: c.data.seed }, { q: 'prompt', p: 'response', test: 0.95, seed: 42 });
    const m = c.mine;
    assert.deepEqual([m.model, m.numNegatives, m.rangeMin, m.rangeMax, m.maxScore, m.absoluteMargin, m.samplingStrategy], ['moka-ai/m3e-small', 5, 20, 50, 0.8, 0.1, 'top']);
    assert.deepEqual(c.train, {
      trainType: 'lora', lossType: 'infonce', maskFakeNegative: true, splitDatasetRatio: 0.05, evalSteps: 100, saveSteps: 100, numTrainEpochs: 1,
      perDeviceTrainBatchSize: 4, gradientAccumulationSteps: 4, learningRate: 6e-6, dataloaderDropLast: true,
    });
    assert.equal(c.pretrain, undefined);
    assert.equal(c.fuse, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('examples/quickstart.yaml: offline (a model from scratch over the shipped vocab, the shipped CMRC sample), three stages', () => {
  const c = loadPipelineConfig(join(ROOT, 'examples', 'quickstart.yaml'));
  assert.equal(c.model.base, undefined);
  assert.deepEqual(c.model.init && [c.model.init.arch, c.model.init.vocab], ['bert', join(ROOT, 'examples', 'data', 'vocab.txt')]);
  assert.equal(c.data.beir, join(ROOT, 'examples', 'data', 'cmrc2018'));
  assert.equal(c.pretrain?.mode, 'crop');
  assert.deepEqual(c.fuse, { method: 'slerp', last: 2, t: 0.5 });
});
