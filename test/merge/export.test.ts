// The exported folder (src/merge/export.ts): what sentence-transformers and TEI read, key by key
// (REFERENCE §5.3; TEI router/src/lib.rs PoolConfig/STConfig/NewSTConfig/ModelConfig;
// sentence-transformers Pooling(**config), modules.json entries), re-read by embtune's own loader;
// an uncompressed tokenizer.json (gunzipped for Qwen3, BertConverter's for a vocab.txt-only BERT,
// giving the same ids); sharding past the limit; the model card from the run's files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as torch from '../../src/torch/index.js';
import { describeModel, loadEncoder } from '../../src/models/registry.js';
import { loadTokenizer, BertTokenizer } from '../../src/tokenizers/index.js';
import { SafetensorsCheckpoint } from '../../src/formats/checkpoint.js';
import { Embedder } from '../../src/embed/embedder.js';
import { saveModelFolder, modelCard, readRunInfo, verificationSamples } from '../../src/merge/index.js';
import { FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');

async function withTemp(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-export-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

/** sentence-transformers' Pooling constructor arguments (v3–v6): any other key is a TypeError there. */
const ST_POOLING_KWARGS = new Set([
  'word_embedding_dimension', 'pooling_mode', 'pooling_mode_cls_token', 'pooling_mode_max_tokens', 'pooling_mode_mean_tokens',
  'pooling_mode_mean_sqrt_len_tokens', 'pooling_mode_weightedmean_tokens', 'pooling_mode_lasttoken', 'include_prompt',
]);

/** What TEI deserialises, with the types it requires (serde: missing non-default fields are errors). */
function assertTeiReads(folder: string, pooling: 'lasttoken' | 'mean'): void {
  const config = readJson(join(folder, 'config.json'));
  assert.ok(Array.isArray(config.architectures) && config.architectures.every((a: unknown) => typeof a === 'string'), 'ModelConfig.architectures');
  assert.equal(typeof config.model_type, 'string', 'ModelConfig.model_type');
  assert.ok(Number.isInteger(config.max_position_embeddings), 'ModelConfig.max_position_embeddings');
  const pool = readJson(join(folder, '1_Pooling/config.json'));
  assert.equal(typeof pool.pooling_mode_cls_token, 'boolean', 'PoolConfig.pooling_mode_cls_token is required');
  assert.equal(typeof pool.pooling_mode_mean_tokens, 'boolean', 'PoolConfig.pooling_mode_mean_tokens is required');
  assert.equal(typeof pool.pooling_mode_lasttoken, 'boolean');
  // TEI's order: cls, then mean, then last token — exactly one is on.
  assert.deepEqual([pool.pooling_mode_cls_token, pool.pooling_mode_mean_tokens, pool.pooling_mode_lasttoken], [false, pooling === 'mean', pooling === 'lasttoken']);
  const st = readJson(join(folder, 'sentence_bert_config.json'));
  assert.ok(Number.isInteger(st.max_seq_length) && st.max_seq_length <= config.max_position_embeddings, 'STConfig.max_seq_length within the position limit');
  const stc = readJson(join(folder, 'config_sentence_transformers.json'));
  assert.ok(typeof stc.prompts === 'object' && Object.values(stc.prompts).every((p) => typeof p === 'string'), 'NewSTConfig.prompts: a map of strings');
  JSON.parse(readFileSync(join(folder, 'tokenizer.json'), 'utf8'));
}

function assertSentenceTransformersReads(folder: string, dimension: number): void {
  const modules = readJson(join(folder, 'modules.json')) as Record<string, unknown>[];
  assert.deepEqual(modules.map((m) => Object.keys(m).sort()), modules.map(() => ['idx', 'name', 'path', 'type']));
  assert.deepEqual(modules.map((m) => m.type), ['sentence_transformers.models.Transformer', 'sentence_transformers.models.Pooling', 'sentence_transformers.models.Normalize']);
  assert.deepEqual(modules.map((m) => m.idx), [0, 1, 2]);
  assert.equal(modules[0]!.path, '', 'the Transformer is the folder itself');
  const pool = readJson(join(folder, `${modules[1]!.path}/config.json`));
  for (const key of Object.keys(pool)) assert.ok(ST_POOLING_KWARGS.has(key), `Pooling(**config) accepts ${key}`);
  assert.equal(pool.word_embedding_dimension, dimension);
  const stc = readJson(join(folder, 'config_sentence_transformers.json'));
  assert.equal(stc.similarity_fn_name, 'cosine');
  assert.equal(stc.default_prompt_name, null);
}

test('a Qwen3 export: uncompressed tokenizer.json, the sentence-transformers and TEI files key by key, and our loader reads it back as the base', async () => {
  await withTemp(async (dir) => {
    const { encoder } = loadEncoder(QWEN, 'float32');
    try {
      const saved = saveModelFolder(encoder, QWEN, join(dir, 'out'));
      assert.deepEqual(saved.weights.files, ['model.safetensors']);
    } finally {
      encoder.dispose();
    }
    const out = join(dir, 'out');
    assert.deepEqual(readFileSync(join(out, 'tokenizer.json')), gunzipSync(readFileSync(join(QWEN, 'tokenizer.json.gz'))), 'the .gz gunzipped');
    assert.ok(!existsSync(join(out, 'tokenizer.json.gz')));
    for (const f of ['tokenizer_config.json', 'vocab.json', 'merges.txt']) assert.ok(existsSync(join(out, f)), f);
    assertTeiReads(out, 'lasttoken');
    assertSentenceTransformersReads(out, 32);
    const stc = readJson(join(out, 'config_sentence_transformers.json'));
    assert.deepEqual(stc.prompts, { query: 'Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:', document: '' }, 'REFERENCE §5.3 prompts');
    assert.equal(readJson(join(out, '1_Pooling/config.json')).include_prompt, true);
    // max_seq_length is capped at max_position_embeddings (512 here; 8192 stays 8192 for the 32K real model).
    assert.deepEqual(describeModel(out), { ...describeModel(QWEN), maxLength: 512 }, 'our loader reads the written files as the base: pooling, normalisation, prompts, padding side');
  });
});

test('a BERT export without tokenizer.json gets BertConverter\'s tokenizer.json (same ids as vocab.txt), mean pooling, and a Normalize module', async () => {
  await withTemp(async (dir) => {
    const { encoder } = loadEncoder(BERT, 'float32');
    try {
      saveModelFolder(encoder, BERT, join(dir, 'bert'));
    } finally {
      encoder.dispose();
    }
    const out = join(dir, 'bert');
    const json = readJson(join(out, 'tokenizer.json'));
    assert.equal(json.model.type, 'WordPiece');
    assert.deepEqual(json.normalizer, { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true });
    assert.deepEqual(json.added_tokens.map((t: { content: string; id: number }) => [t.content, t.id]), [['[PAD]', 0], ['[UNK]', 100], ['[CLS]', 101], ['[SEP]', 102], ['[MASK]', 103]]);
    assertTeiReads(out, 'mean');
    assertSentenceTransformersReads(out, 32);
    assert.equal(readJson(join(out, 'sentence_bert_config.json')).max_seq_length, 512);
    const fromJson = await loadTokenizer(out);
    const fromVocab = await loadTokenizer(BERT);
    assert.ok(fromJson instanceof BertTokenizer);
    const texts = readJson(join(FIXTURES, 'goldens/bert_goldens.json')).texts as string[];
    const edge = ['Héllo WORLD, naïve café!', '[CLS] 已经 [MASK] tokens', '  tabs\tand\nnewlines  ', 'unaffable antidisestablishmentarianism'];
    for (const t of [...texts, ...edge]) assert.deepEqual(fromJson.encode(t), fromVocab.encode(t), t);
    // Loaded back, the model's mean pooling is kept; it now normalises (cosine scores unchanged).
    const info = describeModel(out);
    assert.equal(info.pooling, 'mean');
    assert.equal(info.normalize, true);
    const a = await Embedder.load(BERT);
    const b = await Embedder.load(out);
    try {
      const [u] = a.embed([texts[0]!], { normalize: true });
      const [v] = b.embed([texts[0]!]);
      for (let i = 0; i < u!.length; i++) assert.ok(Math.abs(u![i]! - v![i]!) < 1e-6);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

test('weights past the shard limit go to model-0000i-of-0000n.safetensors with an index our loader and checkpoint reader read back bit for bit', async () => {
  await withTemp(async (dir) => {
    const { encoder } = loadEncoder(QWEN, 'float32');
    try {
      const saved = saveModelFolder(encoder, QWEN, join(dir, 'sharded'), { maxShardBytes: 4_000_000, dtype: 'bfloat16' });
      assert.ok(saved.weights.files.length > 1, `several shards: ${saved.weights.files.join(', ')}`);
      assert.ok(saved.files.includes('model.safetensors.index.json'));
      const ckpt = SafetensorsCheckpoint.open(join(dir, 'sharded'));
      try {
        ckpt.verify();
        for (const name of encoder.weights.keys()) {
          torch.tidy(() => assert.ok(!ckpt.tensor(name).ne(encoder.weights.get(name).to('bfloat16')).any().item(), name));
        }
      } finally {
        ckpt.close();
      }
      assert.equal(readJson(join(dir, 'sharded', 'config.json')).torch_dtype, 'bfloat16');
    } finally {
      encoder.dispose();
    }
    const back = loadEncoder(join(dir, 'sharded'), 'float32');
    back.encoder.dispose();
  });
});

test('the model card and the verification texts come from the adapter\'s run: args.json, trainer_state.json, an embtune eval metrics.json, the held-out split', async () => {
  await withTemp(async (dir) => {
    const run = join(dir, 'output', 'v0-20260101-000000');
    const ckpt = join(run, 'checkpoint-20');
    mkdirSync(ckpt, { recursive: true });
    const data = join(dir, 'train.jsonl');
    const rows = Array.from({ length: 40 }, (_, i) => JSON.stringify({ query: `问题 ${i}`, response: `答案 ${i}`, rejected_response: [`别的 ${i}`] }));
    writeFileSync(data, `${rows.join('\n')}\n`);
    writeFileSync(join(run, 'args.json'), JSON.stringify({ model: 'Qwen/Qwen3-Embedding-0.6B', dataset: [data], valDataset: [], splitDatasetRatio: 0.1, dataSeed: 42, trainType: 'lora', loraRank: 8, loraAlpha: 32, learningRate: 6e-6, maxSteps: -1 }));
    writeFileSync(join(ckpt, 'trainer_state.json'), JSON.stringify({ globalStep: 20, epoch: 1, microBatch: 0, maxSteps: 20, fingerprint: {}, logHistory: [{ step: 20, loss: 1.2 }, { step: 20, eval_loss: 0.9, 'eval_ndcg@10': 0.61 }] }));
    writeFileSync(join(run, 'metrics.json'), JSON.stringify({ base: { 'cosine_ndcg@10': 0.5, 'cosine_mrr@10': 0.45 }, merged: { 'cosine_ndcg@10': 0.6, 'cosine_mrr@10': 0.55 } }));
    const info = readRunInfo(ckpt);
    assert.equal(info.runDir, run);
    assert.equal(info.step, 20);
    assert.equal(info.lastEval?.['eval_ndcg@10'], 0.61);
    const card = modelCard({ base: 'Qwen/Qwen3-Embedding-0.6B', method: 'LoRA merged', run: info, parity: 'parity: max |Δ| 1e-7', queryPrompt: 'query' });
    assert.match(card, /^---\nlibrary_name: sentence-transformers\nbase_model: Qwen\/Qwen3-Embedding-0\.6B\n/);
    assert.match(card, /embtune train \\\n {2}--model Qwen\/Qwen3-Embedding-0\.6B \\\n {2}--dataset \S+train\.jsonl/);
    assert.match(card, /--learning-rate 0\.000006/);
    assert.match(card, /\| merged \| 0\.6000 \| 0\.5500 \|/);
    assert.match(card, /parity: max \|Δ\| 1e-7/);
    const samples = await verificationSamples(ckpt, info);
    assert.equal(samples.texts.length, 8, '4 held-out rows (10% of 40): their queries and answers');
    assert.match(samples.source, /4 held-out rows/);
    assert.ok(samples.texts.every((t) => /^(问题|答案) \d+$/.test(t.text)));
    const fallback = await verificationSamples(ADAPTER);
    assert.match(fallback.source, /built-in/);
  });
});
