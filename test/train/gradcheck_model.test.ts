// The whole training objective in float64 on the tiny Qwen3 fixture: token ids → every decoder
// layer with the PEFT adapter → last-token pooling → L2 normalisation → InfoNCE (in-batch
// negatives, fake-negative mask) — the LoRA gradients autograd gives against central finite
// differences, entry by entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Embedder, padBatch } from '../../src/embed/embedder.js';
import { LoraAdapter } from '../../src/models/lora/index.js';
import { infonceLoss, infonceOptionsFromEnv } from '../../src/train/loss.js';
import { FIXTURES, centralDifference } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');

test('LoRA gradients of the full InfoNCE objective match float64 finite differences on the tiny Qwen3', async () => {
  const embedder = await Embedder.load(QWEN, { dtype: 'float64' });
  const adapter = LoraAdapter.load(ADAPTER, embedder.encoder);
  embedder.attachAdapter(adapter);
  try {
    const texts = ['什么是轮作？', '轮作是在同一块田地上有顺序地轮换种植不同作物。', '水稻的需水规律', '如何防治小麦锈病？', '选用抗病品种，适时喷药。', '玉米的播种期'];
    const rows = embedder.tokenize(texts, { kind: 'document' });
    const batch = padBatch(rows, embedder.tokenizer.padTokenId, 'right');
    const options = infonceOptionsFromEnv({}, { temperature: 0.05, maskFakeNegative: true });
    const objective = () =>
      torch.tidy(() => infonceLoss(torch.F.normalize(embedder.encodeTokens(batch.inputIds, batch.attentionMask, { normalize: false }), 2, -1), { negativesPerRow: [1, 1] }, options));
    const loss = torch.enableGrad(objective);
    loss.backward();
    const params = adapter.namedParameters();
    const eps = 1e-6;
    let checked = 0;
    for (const name of [...params.keys()].filter((n) => /layers\.(0|1)\.(self_attn\.q_proj|mlp\.down_proj)/.test(n))) {
      const p = params.get(name)!;
      const grad = p.grad!.view(-1);
      const flat = p.detach().view(-1);
      for (const j of [0, Math.floor(p.numel() / 3), p.numel() - 1]) {
        const numeric = centralDifference(flat, j, () => objective().item(), eps);
        const analytic = grad.select(0, j).item();
        assert.ok(Math.abs(analytic - numeric) <= 1e-6 * Math.max(1, Math.abs(numeric)), `${name}[${j}]: autograd ${analytic}, finite differences ${numeric}`);
        if (Math.abs(numeric) > 1e-6) checked++;
      }
    }
    assert.ok(checked >= 8, `only ${checked} entries had a non-negligible gradient`);
  } finally {
    embedder.dispose();
    adapter.dispose();
  }
});
