// mergeAndVerify / verifyMerge (src/merge/merge.ts): the parity check's numbers, its bfloat16
// bound (measured here), the no-effect warning for each cause (B zero, scaling 0, a delta lost to
// bfloat16 rounding), and verification of a folder merged elsewhere with `model.`-prefixed names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { saveSafetensors } from '../../src/formats/safetensors_write.js';
import { mergeAndVerify, verifyMerge, PARITY_TOLERANCE, builtInSamples } from '../../src/merge/index.js';
import { LoraAdapter } from '../../src/models/lora/index.js';
import { Qwen3Model } from '../../src/models/qwen3.js';
import { BertModel } from '../../src/models/bert.js';
import { adapterEffect, noEffectWarning } from '../../src/merge/adapter_effect.js';
import { NO_EFFECT_THRESHOLD } from '../../src/merge/parity.js';
import { FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');
const MERGED = join(FIXTURES, 'models/qwen3-tiny-lora-merged');
const BERT = join(FIXTURES, 'models/bert-tiny');

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-mergeverify-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A copy of the fixture adapter with its tensors and config changed. */
function adapterVariant(dir: string, name: string, tensor: (name: string, t: torch.Tensor) => torch.Tensor, config: (c: Record<string, unknown>) => void = () => {}): string {
  const out = join(dir, name);
  mkdirSync(out);
  const tensors = loadSafetensors(join(ADAPTER, 'adapter_model.safetensors'));
  try {
    for (const [k, t] of [...tensors]) {
      const next = tensor(k, t);
      if (next !== t) {
        tensors.set(k, next);
        t.dispose();
      }
    }
    saveSafetensors(join(out, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  } finally {
    torch.dispose([...tensors.values()]);
  }
  const c = JSON.parse(readFileSync(join(ADAPTER, 'adapter_config.json'), 'utf8'));
  config(c);
  writeFileSync(join(out, 'adapter_config.json'), JSON.stringify(c));
  return out;
}

test('float32 merge: parity far inside 1e-4, the adapter changed all 14 weights, and no warning', async () => {
  await withTemp(async (dir) => {
    const r = await mergeAndVerify({ base: QWEN, adapter: ADAPTER, output: join(dir, 'm') });
    console.log(`# float32 ${r.parity.line}`);
    assert.ok(r.parity.ok);
    assert.ok(r.parity.maxAbsDiff < 2e-6, `observed ${r.parity.maxAbsDiff}`);
    assert.ok(r.parity.minCosine > 0.999999);
    assert.equal(r.changedWeights, 14);
    assert.ok(r.changeFromBase > 0.1, 'the fixture adapter moves the embeddings (cos to base down to 0.42 in the goldens)');
    assert.equal(r.warning, undefined);
    assert.equal(r.parity.texts, builtInSamples().texts.length);
  });
});

test('bfloat16 merge: the measured parity error is reported and stays inside the stated bound (3e-2)', async () => {
  await withTemp(async (dir) => {
    const r = await mergeAndVerify({ base: QWEN, adapter: ADAPTER, output: join(dir, 'bf16'), dtype: 'bfloat16' });
    console.log(`# bfloat16 ${r.parity.line}`);
    assert.equal(r.parity.tolerance, PARITY_TOLERANCE.bfloat16);
    assert.ok(r.parity.ok, r.parity.line);
    assert.ok(r.parity.maxAbsDiff > 1e-5, 'rounding to bfloat16 is visible: the check is not comparing a model with itself');
    const weights = loadSafetensors(join(dir, 'bf16', 'model.safetensors'));
    try {
      assert.ok([...weights.values()].every((t) => t.dtype === 'bfloat16'));
    } finally {
      torch.dispose([...weights.values()]);
    }
  });
});

test('the no-effect warning names its cause: lora_B all zero, scaling 0, and a delta that bfloat16 rounding swallows', async () => {
  await withTemp(async (dir) => {
    const zeroB = adapterVariant(dir, 'zeroB', (k, t) => (k.includes('lora_B') ? torch.zeros_like(t) : t));
    const a = await mergeAndVerify({ base: QWEN, adapter: zeroB, output: join(dir, 'a') });
    assert.ok(a.parity.ok);
    assert.equal(a.changeFromBase, 0);
    assert.match(a.warning ?? '', /THE ADAPTER CHANGES NOTHING[\s\S]*every one of the 14 adapted layers has a zero delta — 14 layer\(s\): lora_B all zero/);

    const alpha0 = adapterVariant(dir, 'alpha0', (_k, t) => t, (c) => (c.lora_alpha = 0));
    const model = Qwen3Model.load(QWEN);
    const adapter = LoraAdapter.load(alpha0, model);
    try {
      const effect = adapterEffect(adapter);
      assert.equal(effect.zeroLayers, 14);
      assert.match(noEffectWarning(effect, 0, 0, NO_EFFECT_THRESHOLD) ?? '', /14 layer\(s\): scaling 0 \(lora_alpha 0\)/);
    } finally {
      adapter.dispose();
      model.dispose();
    }

    const tiny = adapterVariant(dir, 'tiny', (k, t) => (k.includes('lora_B') ? torch.tidy(() => t.mul(1e-12)) : t));
    const c = await mergeAndVerify({ base: QWEN, adapter: tiny, output: join(dir, 'c'), dtype: 'bfloat16' });
    assert.equal(c.changedWeights, 0, 'every merged weight rounds back to the base weight');
    assert.match(c.warning ?? '', /vanish when the merged weights are rounded to the saved dtype; save with --dtype float32/);
  });
});

test('verifyMerge checks a folder merged elsewhere (swift export style model.-prefixed names) and fails a corrupted one', async () => {
  await withTemp(async (dir) => {
    const swift = join(dir, 'swift');
    mkdirSync(swift);
    for (const f of ['config.json', 'tokenizer_config.json', 'tokenizer.json.gz']) writeFileSync(join(swift, f), readFileSync(join(MERGED, f)));
    const tensors = loadSafetensors(join(MERGED, 'model.safetensors'));
    try {
      saveSafetensors(join(swift, 'model.safetensors'), new Map([...tensors].map(([k, v]) => [`model.${k}`, v])), { format: 'pt' });
    } finally {
      torch.dispose([...tensors.values()]);
    }
    const ok = await verifyMerge({ base: QWEN, adapter: ADAPTER, merged: swift });
    assert.ok(ok.parity.ok, ok.parity.line);
    assert.equal(ok.changedWeights, 14);
    const broken = await verifyMerge({ base: QWEN, adapter: ADAPTER, merged: QWEN });
    assert.ok(!broken.parity.ok, 'the unmerged base is not the merge');
    assert.match(broken.parity.line, /FAILED/);
    assert.equal(broken.changedWeights, 0);
  });
});

test('a BERT (m3e-like) merge: mean pooling kept, the written folder passes the parity check, the adapter moved the embeddings', async () => {
  await withTemp(async (dir) => {
    const model = BertModel.load(BERT);
    torch.manualSeed(21);
    const adapter = LoraAdapter.create(model, { r: 4, lora_alpha: 8, target_modules: ['query', 'value', 'dense'] });
    try {
      torch.noGrad(() => adapter.parameters().forEach((p, i) => (i % 2 === 1 ? p.normal_(0, 0.2) : p)));
      adapter.save(join(dir, 'adapter'));
    } finally {
      adapter.dispose();
      model.dispose();
    }
    const r = await mergeAndVerify({ base: BERT, adapter: join(dir, 'adapter'), output: join(dir, 'm') });
    assert.ok(r.parity.ok, r.parity.line);
    assert.ok(r.parity.maxAbsDiff < 1e-5, r.parity.line);
    assert.ok(r.changeFromBase > 1e-2);
    assert.equal(r.warning, undefined);
    assert.equal(JSON.parse(readFileSync(join(dir, 'm', '1_Pooling', 'config.json'), 'utf8')).pooling_mode_mean_tokens, true);
  });
});
