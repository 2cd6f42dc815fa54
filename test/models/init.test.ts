// `embtune init`: a model initialised from scratch as transformers' _init_weights does — Linear and
// Embedding weights normal(0, initializer_range) (mean ≈ 0, std ≈ 0.02), biases 0, LayerNorm /
// RMSNorm weights 1, the BERT padding row 0 — written as a complete folder that our loader reads
// and embeds with, the same for a seed and different for another; config presets and files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Embedder } from '../../src/embed/embedder.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { initPlan, initShapeOf, initialConfig } from '../../src/models/init.js';
import { runInit, type InitFlags } from '../../src/cli/init.js';
import { FIXTURES } from '../helpers.js';

const VOCAB = join(FIXTURES, 'tokenizers/bert-base-chinese/vocab.txt');
const QWEN_TOKENIZER = join(FIXTURES, 'tokenizers/qwen3-embedding');
const quiet = () => {};

async function withInit<T>(flags: Partial<InitFlags>, fn: (dir: string) => Promise<T> | T): Promise<T> {
  const root = mkdtempSync(join(tmpdir(), 'embtune-init-test-'));
  try {
    const output = join(root, 'model');
    await runInit({ arch: 'bert', config: 'tiny', output, seed: 0, ...(flags.arch === 'qwen3' ? { tokenizer: QWEN_TOKENIZER } : { vocab: VOCAB }), ...flags }, quiet);
    return await fn(output);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function stats(t: torch.Tensor): { mean: number; std: number; min: number; max: number } {
  const v = t.to('float64');
  return { mean: v.mean().item(), std: v.sub(v.mean()).pow(2).mean().sqrt().item(), min: v.min().item(), max: v.max().item() };
}

/** Checks every tensor of `folder` against its init rule. */
function checkInitStatistics(folder: string, arch: 'bert' | 'qwen3'): number {
  const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as Record<string, number>;
  const tensors = loadSafetensors(join(folder, 'model.safetensors'));
  try {
    const plan = initPlan(arch, config as never);
    assert.deepEqual([...tensors.keys()].sort(), plan.map(([n]) => n).sort(), 'the tensors are the architecture\'s');
    let normals = 0;
    for (const [name, init] of plan) {
      const t = tensors.get(name)!;
      assert.deepEqual(t.shape, init.shape, `${name} shape`);
      assert.equal(t.dtype, 'float32');
      const s = stats(t);
      if (init.kind === 'zeros') assert.ok(s.min === 0 && s.max === 0, `${name} is zero`);
      else if (init.kind === 'ones') assert.ok(s.min === 1 && s.max === 1, `${name} is one`);
      else {
        normals++;
        let values = t;
        if (init.paddingRow !== undefined) {
          const row = stats(t.select(0, init.paddingRow));
          assert.ok(row.min === 0 && row.max === 0, `${name}: the padding row ${init.paddingRow} is zero`);
          values = torch.cat([t.narrow(0, 0, init.paddingRow), t.narrow(0, init.paddingRow + 1, t.shape[0]! - init.paddingRow - 1)]);
        }
        const v = stats(values);
        const n = values.numel();
        // Sampling error of the std of n normals is std/√(2n); allow 6 of them (and 1e-3 absolute for the tiny tensors).
        assert.ok(Math.abs(v.std - 0.02) <= 6 * 0.02 / Math.sqrt(2 * n) + 1e-4, `${name}: std ${v.std} ≈ 0.02 (n ${n})`);
        assert.ok(Math.abs(v.mean) <= 6 * 0.02 / Math.sqrt(n), `${name}: mean ${v.mean} ≈ 0`);
      }
    }
    return normals;
  } finally {
    torch.dispose([...tensors.values()]);
  }
}

test('bert tiny: the folder has config, weights, tokenizer and sentence-transformers files, and config.json says what transformers needs', async () => {
  await withInit({}, (dir) => {
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'vocab.txt', 'tokenizer_config.json', 'modules.json', '1_Pooling/config.json', 'config_sentence_transformers.json', 'sentence_bert_config.json', 'README.md']) {
      assert.ok(existsSync(join(dir, f)), `${f} written`);
    }
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config.architectures, ['BertModel']);
    assert.equal(config.model_type, 'bert');
    assert.equal(config.vocab_size, 21128);
    assert.equal(config.pad_token_id, 0);
    assert.equal(config.hidden_size, 128);
    assert.equal(config.num_hidden_layers, 2);
    assert.equal(config.torch_dtype, 'float32');
    assert.match(readFileSync(join(dir, 'config.json'), 'utf8'), /"layer_norm_eps": 1e-12,/);
    const pooling = JSON.parse(readFileSync(join(dir, '1_Pooling/config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(pooling.pooling_mode_mean_tokens, true);
    assert.equal(pooling.word_embedding_dimension, 128);
    const tok = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { model: { type: string; vocab: Record<string, number> } };
    assert.equal(tok.model.type, 'WordPiece');
    assert.equal(tok.model.vocab['[CLS]'], 101);
  });
});

test('bert tiny and qwen3 tiny: every weight follows its init rule (std ≈ initializer_range, zero biases, unit norms, zero padding row)', async () => {
  assert.equal(await withInit({ arch: 'bert' }, (dir) => checkInitStatistics(dir, 'bert')), 2 * 6 + 3 + 1);
  assert.equal(await withInit({ arch: 'qwen3' }, (dir) => checkInitStatistics(dir, 'qwen3')), 1 + 2 * 7);
});

test('the model loads with our loader and embeds: finite, the right width, different texts apart (bert and qwen3)', async () => {
  for (const arch of ['bert', 'qwen3'] as const) {
    await withInit({ arch }, async (dir) => {
      const embedder = await Embedder.load(dir);
      try {
        assert.equal(embedder.info.family, arch);
        assert.equal(embedder.info.pooling, arch === 'bert' ? 'mean' : 'lasttoken');
        const vectors = embedder.embed(['水稻稻瘟病怎么防治？', '小麦的播种期', 'crop rotation']);
        assert.equal(vectors.length, 3);
        for (const v of vectors) {
          assert.equal(v.length, 128);
          assert.ok(v.every(Number.isFinite));
        }
        assert.ok(vectors[0]!.some((x, i) => Math.abs(x - vectors[1]![i]!) > 1e-4), 'different texts, different vectors');
      } finally {
        embedder.dispose();
      }
    });
  }
});

test('the same seed gives the same weights, another seed others', async () => {
  const bytes = (seed: number) => withInit({ seed }, (dir) => readFileSync(join(dir, 'model.safetensors')));
  const a = await bytes(5);
  assert.ok(a.equals(await bytes(5)), 'seed 5 twice: identical files');
  assert.ok(!a.equals(await bytes(6)), 'seed 6 differs');
});

test('--config small and a config file set the sizes; bad configs and missing tokenizers are clear errors', async () => {
  const small = initShapeOf(initialConfig('bert', 'small', { vocabSize: 21128, padTokenId: 0 }));
  assert.deepEqual([small.hidden_size, small.num_hidden_layers, small.num_attention_heads, small.intermediate_size], [512, 4, 8, 2048]);
  const qsmall = initShapeOf(initialConfig('qwen3', 'small', { vocabSize: 151669, padTokenId: 151643, eosTokenId: 151643 }));
  assert.deepEqual([qsmall.hidden_size, qsmall.num_key_value_heads, qsmall.head_dim], [512, 4, 64]);
  const root = mkdtempSync(join(tmpdir(), 'embtune-init-config-'));
  try {
    const file = join(root, 'config.json');
    writeFileSync(file, JSON.stringify({ hidden_size: 64, num_attention_heads: 4, intermediate_size: 128, num_hidden_layers: 1, max_position_embeddings: 128 }));
    await withInit({ config: file }, (dir) => {
      const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual([c.hidden_size, c.num_hidden_layers, c.max_position_embeddings, c.vocab_size], [64, 1, 128, 21128]);
    });
    writeFileSync(file, JSON.stringify({ hidden_size: 100, num_attention_heads: 3 }));
    await assert.rejects(withInit({ config: file }, () => undefined), /hidden_size 100 is not a multiple of num_attention_heads 3/);
    writeFileSync(file, JSON.stringify({ model_type: 'qwen3' }));
    await assert.rejects(withInit({ config: file }, () => undefined), /does not match --arch bert/);
    await assert.rejects(withInit({ config: 'huge' }, () => undefined), /--config must be tiny, small or a config.json file/);
    await assert.rejects(withInit({ vocab: undefined }, () => undefined), /--arch bert needs --vocab/);
    await assert.rejects(withInit({ arch: 'qwen3', tokenizer: root }, () => undefined), /no tokenizer.json or tokenizer.json.gz/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
