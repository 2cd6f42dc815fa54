// Model folders as users have them: prefixed names (ms-swift exports, BERT pre-training
// checkpoints), sharded weights, sentence-transformers module files — and broken folders,
// which are errors that name the problem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { saveSafetensors } from '../../src/formats/safetensors_write.js';
import { saveSharded } from '../../src/formats/checkpoint.js';
import { Qwen3Model } from '../../src/models/qwen3.js';
import { BertModel } from '../../src/models/bert.js';
import { ModelLoadError } from '../../src/models/weights.js';
import { describeModel } from '../../src/models/registry.js';
import { Embedder } from '../../src/embed/embedder.js';
import { assertClose, FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');

/** A copy of a fixture model folder whose weights are `edit(weights)`. */
function variant(source: string, edit: (w: Map<string, Tensor>) => Map<string, Tensor>, write: (dir: string, w: Map<string, Tensor>) => void = (dir, w) => saveSafetensors(join(dir, 'model.safetensors'), w)): string {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-model-'));
  cpSync(source, dir, { recursive: true });
  unlinkSync(join(dir, 'model.safetensors'));
  const weights = loadSafetensors(join(source, 'model.safetensors'));
  try {
    write(dir, edit(weights));
  } finally {
    torch.dispose([...weights.values()]);
  }
  return dir;
}

function renamed(w: Map<string, Tensor>, rename: (name: string) => string): Map<string, Tensor> {
  return new Map([...w].map(([k, v]) => [rename(k), v]));
}

function qwenHidden(folder: string): number[] {
  const model = Qwen3Model.load(folder);
  const golden = loadSafetensors(join(FIXTURES, 'goldens/embed_base_right.safetensors'));
  try {
    return torch.tidy(() => torch.noGrad(() => Array.from(model.forward(golden.get('input_ids')!, golden.get('attention_mask')!).select(1, 0).toTypedArray<'float32'>())));
  } finally {
    model.dispose();
    torch.dispose([...golden.values()]);
  }
}

test('a Qwen3 checkpoint with model.-prefixed names and lm_head.weight (ms-swift export) loads to the same model', () => {
  const dir = variant(QWEN, (w) => {
    const out = renamed(w, (k) => `model.${k}`);
    out.set('lm_head.weight', w.get('embed_tokens.weight')!.mul(2));
    return out;
  });
  try {
    assertClose(qwenHidden(dir), qwenHidden(QWEN), { atol: 0 }, 'hidden states');
    const model = Qwen3Model.load(dir);
    try {
      torch.tidy(() => {
        const h = torch.randn([1, 32]);
        const tied = torch.F.linear(h, model.weights.get('embed_tokens.weight'));
        assertClose(model.lmHead(h), tied.mul(2), { rtol: 1e-6, atol: 1e-6 }, 'the untied lm_head is used');
      });
      assert.deepEqual(model.weights.unused(), []);
    } finally {
      model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a sharded Qwen3 checkpoint loads to the same model', () => {
  const dir = variant(QWEN, (w) => w, (d, w) => saveSharded(d, w, { maxShardBytes: 3_000_000 }));
  try {
    assertClose(qwenHidden(dir), qwenHidden(QWEN), { atol: 0 }, 'hidden states');
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a missing or misshapen tensor is an error naming it; a pickle-only folder is refused', () => {
  const missing = variant(QWEN, (w) => {
    w.delete('layers.1.mlp.up_proj.weight');
    return w;
  });
  const misshapen = variant(QWEN, (w) => {
    w.set('layers.0.self_attn.k_norm.weight', torch.ones([17]));
    return w;
  });
  const pickle = mkdtempSync(join(tmpdir(), 'embtune-model-'));
  try {
    assert.throws(() => Qwen3Model.load(missing), (e: Error) => e instanceof ModelLoadError && /no tensor 'layers\.1\.mlp\.up_proj\.weight'/.test(e.message) && e.message.includes(missing));
    assert.throws(() => Qwen3Model.load(misshapen), (e: Error) => e instanceof ModelLoadError && /'layers\.0\.self_attn\.k_norm\.weight' has shape \[17\], expected \[16\]/.test(e.message));
    cpSync(join(QWEN, 'config.json'), join(pickle, 'config.json'));
    writeFileSync(join(pickle, 'pytorch_model.bin'), 'not really a pickle');
    assert.throws(() => Qwen3Model.load(pickle), /does not unpickle/);
  } finally {
    for (const d of [missing, misshapen, pickle]) rmSync(d, { recursive: true });
  }
});

test('a BERT checkpoint with bert.-prefixed names, legacy gamma/beta and cls heads loads to the same encoder', () => {
  const dir = variant(BERT, (w) => {
    const out = renamed(w, (k) => `bert.${k.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta')}`);
    out.set('cls.predictions.bias', torch.zeros([21128]));
    return out;
  });
  const golden = loadSafetensors(join(FIXTURES, 'goldens/bert_embed_right.safetensors'));
  const model = BertModel.load(dir);
  try {
    torch.tidy(() =>
      torch.noGrad(() => {
        const hidden = model.forward(golden.get('input_ids')!, golden.get('attention_mask')!);
        assertClose(hidden, golden.get('last_hidden_state')!, { atol: 1e-4 });
      }),
    );
  } finally {
    model.dispose();
    torch.dispose([...golden.values()]);
    rmSync(dir, { recursive: true });
  }
});

test('sentence-transformers module files choose pooling, normalisation, prompts and max length', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-st-'));
  cpSync(BERT, dir, { recursive: true });
  try {
    assert.deepEqual(describeModel(dir), { family: 'bert', pooling: 'mean', normalize: false, prompts: {}, maxLength: 512, paddingSide: 'right' });
    writeFileSync(
      join(dir, 'modules.json'),
      JSON.stringify([
        { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
        { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
        { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
      ]),
    );
    mkdirSync(join(dir, '1_Pooling'));
    writeFileSync(join(dir, '1_Pooling/config.json'), JSON.stringify({ word_embedding_dimension: 32, pooling_mode_cls_token: true, pooling_mode_mean_tokens: false }));
    writeFileSync(join(dir, 'config_sentence_transformers.json'), JSON.stringify({ prompts: { query: 'query: ', document: 'passage: ' } }));
    writeFileSync(join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 128 }));
    const info = describeModel(dir);
    assert.deepEqual(info, { family: 'bert', pooling: 'cls', normalize: true, prompts: { query: 'query: ', document: 'passage: ' }, maxLength: 128, paddingSide: 'right' });
    const embedder = await Embedder.load(dir);
    try {
      assert.equal(embedder.prepare('x', { kind: 'query' }), 'query: x');
      assert.equal(embedder.prepare('x'), 'passage: x');
      // CLS pooling + Normalize, on the golden inputs (with the prompt switched off).
      const golden = loadSafetensors(join(FIXTURES, 'goldens/bert_embed_right.safetensors'));
      const texts = (await import('node:fs')).readFileSync(join(FIXTURES, 'goldens/bert_goldens.json'), 'utf8');
      const vectors = embedder.embed(JSON.parse(texts).texts, { prompt: '' });
      const cls = torch.tidy(() => torch.F.normalize(golden.get('cls')!, 2, 1).tolist() as number[][]);
      vectors.forEach((v, i) => assertClose(Array.from(v), cls[i]!, { atol: 1e-5 }, `row ${i}`));
      torch.dispose([...golden.values()]);
    } finally {
      embedder.dispose();
    }
    writeFileSync(join(dir, '1_Pooling/config.json'), JSON.stringify({ pooling_mode_max_tokens: true }));
    assert.throws(() => describeModel(dir), /pooling_mode_max_tokens/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
