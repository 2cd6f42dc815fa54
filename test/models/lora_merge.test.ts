// Merging into the weights (REFERENCE §7; fixtures/README.md §9): W' = W + (α/r)·B·A in float32,
// cast to the base dtype, and the merged model computes what the unmerged adapter computes. The
// exported folder itself is tested in test/merge/export.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { Qwen3Model } from '../../src/models/qwen3.js';
import { BertModel } from '../../src/models/bert.js';
import { meanPool } from '../../src/models/pooling.js';
import { LoraAdapter, mergeAdapter } from '../../src/models/lora/index.js';
import { saveModelFolder } from '../../src/merge/index.js';
import { assertClose, FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');
const MERGED = join(FIXTURES, 'models/qwen3-tiny-lora-merged');

function identical(a: Tensor, b: Tensor): boolean {
  return a.dtype === b.dtype && a.shape.join() === b.shape.join() && torch.tidy(() => !a.ne(b).any().item());
}

function withTemp(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-merge-'));
  return Promise.resolve(fn(dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test("merging the fixture adapter reproduces PEFT's merged weights (14 changed, the rest untouched)", () => {
  const model = Qwen3Model.load(QWEN);
  const adapter = LoraAdapter.load(ADAPTER, model);
  const expected = loadSafetensors(join(MERGED, 'model.safetensors'));
  try {
    model.attachAdapter(adapter);
    mergeAdapter(model, adapter);
    assert.equal(model.adapter, undefined, 'the merged adapter is detached, so its delta is not added twice');
    assert.deepEqual(model.weights.keys().sort(), [...expected.keys()].sort());
    let changed = 0;
    for (const [name, want] of expected) {
      const got = model.weights.get(name);
      if (adapter.layers.has(name.replace(/\.weight$/, ''))) {
        changed++;
        assertClose(got, want, { atol: 1e-6 }, name);
      } else {
        assert.ok(identical(got, want), `${name} unchanged`);
      }
    }
    assert.equal(changed, 14);
  } finally {
    adapter.dispose();
    model.dispose();
    torch.dispose([...expected.values()]);
  }
});

test('merging into a bfloat16 base rounds W + delta (computed in float32) to bfloat16, and the export keeps bfloat16', async () => {
  await withTemp((dir) => {
    const f32 = Qwen3Model.load(QWEN, 'float32');
    const bf16 = Qwen3Model.load(QWEN, 'bfloat16');
    const a32 = LoraAdapter.load(ADAPTER, f32);
    const a16 = LoraAdapter.load(ADAPTER, bf16);
    try {
      mergeAdapter(f32, a32);
      mergeAdapter(bf16, a16);
      for (const module of a16.layers.keys()) {
        const name = `${module}.weight`;
        assert.equal(bf16.weights.get(name).dtype, 'bfloat16');
        torch.tidy(() => assert.ok(identical(bf16.weights.get(name), f32.weights.get(name).to('bfloat16')), `${name}: round(W + delta)`));
      }
      saveModelFolder(bf16, QWEN, join(dir, 'bf16'));
      const saved = loadSafetensors(join(dir, 'bf16', 'model.safetensors'));
      try {
        assert.ok([...saved.values()].every((t) => t.dtype === 'bfloat16'));
        assert.equal(JSON.parse(readFileSync(join(dir, 'bf16', 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
      } finally {
        torch.dispose([...saved.values()]);
      }
      assert.throws(() => saveModelFolder(bf16, QWEN, QWEN), /would overwrite the base model folder/);
    } finally {
      for (const x of [a32, a16, f32, bf16]) x.dispose();
    }
  });
});

test('a merged BERT model computes what the unmerged adapter computes (biases untouched), and exports under BertModel names', async () => {
  await withTemp((dir) => {
    const model = BertModel.load(BERT);
    torch.manualSeed(9);
    const adapter = LoraAdapter.create(model, { r: 4, lora_alpha: 8, lora_dropout: 0.1 });
    try {
      torch.noGrad(() => adapter.parameters().forEach((p, i) => (i % 2 === 1 ? p.normal_(0, 0.2) : p)));
      const ids = torch.tensor([[101, 2769, 4263, 102, 0], [101, 1921, 3698, 3449, 102]], { dtype: 'int64' });
      const mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], { dtype: 'int64' });
      const run = () => torch.tidy(() => torch.noGrad(() => meanPool(model.forward(ids, mask), mask)));
      const base = run();
      model.attachAdapter(adapter);
      const unmerged = run();
      mergeAdapter(model, adapter);
      const merged = run();
      assert.ok(unmerged.sub(base).abs().max().item() > 1e-2, 'the adapter matters');
      assertClose(merged, unmerged, { atol: 2e-6 }, 'merged vs adapter');
      saveModelFolder(model, BERT, join(dir, 'bert'));
      const saved = loadSafetensors(join(dir, 'bert', 'model.safetensors'));
      const original = loadSafetensors(join(BERT, 'model.safetensors'));
      try {
        assert.deepEqual([...saved.keys()].sort(), [...original.keys()].sort());
        assert.ok(identical(saved.get('encoder.layer.0.attention.self.query.bias')!, original.get('encoder.layer.0.attention.self.query.bias')!));
        assert.ok(existsSync(join(dir, 'bert', 'vocab.txt')));
      } finally {
        torch.dispose([...saved.values(), ...original.values(), ids, mask, base, unmerged, merged]);
      }
    } finally {
      adapter.dispose();
      model.dispose();
    }
  });
});
