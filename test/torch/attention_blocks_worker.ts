// Child of attention_blocks.test.ts: one forward and backward of the fused attention node on
// seeded inputs (GQA, Qwen3's causal + left-padding mask, and BERT's additive row mask), its
// output and gradients printed as JSON. The parent runs it with and without a tiny
// EMBTUNE_ATTENTION_CHUNK_MIB, which the native code reads once per process.
import * as torch from '../../src/torch/index.js';
import { F, type Tensor } from '../../src/torch/index.js';
import { causalPaddingMask } from '../../src/models/qwen3.js';

torch.setNumThreads(1);
torch.manualSeed(11);
const [b, nq, nkv, l, d] = [3, 4, 2, 37, 8];
const q = torch.randn([b, nq, l, d]).requires_grad_(true);
const k = torch.randn([b, nkv, l, d]).requires_grad_(true);
const v = torch.randn([b, nkv, l, d]).requires_grad_(true);
// Rows of different lengths, left-padded, as the embedder and the reranker batch them.
const keep = torch.fromTypedArray(new BigInt64Array(Array.from({ length: b * l }, (_, i) => (i % l >= [0, 5, 20][Math.floor(i / l)]! ? 1n : 0n))), [b, l]);
const masks: Record<string, Tensor | undefined> = { causal: causalPaddingMask(keep, 'float32'), rows: torch.randn([b, 1, 1, l]), none: undefined };
const out: Record<string, { out: number[]; dq: number[]; dk: number[]; dv: number[] }> = {};
for (const [name, mask] of Object.entries(masks)) {
  const y = torch.enableGrad(() => F.scaled_dot_product_attention(q, k, v, { attnMask: mask, enableGqa: true }));
  // A weighted sum, so every output element has its own gradient.
  const weights = torch.randn(y.shape as number[]);
  torch.enableGrad(() => y.mul(weights).sum()).backward();
  const list = (t: Tensor) => Array.from(t.contiguous().toTypedArray<'float32'>());
  out[name] = { out: list(y), dq: list(q.grad!), dk: list(k.grad!), dv: list(v.grad!) };
  for (const t of [q, k, v]) t.grad!.zero_();
}
process.stdout.write(JSON.stringify(out));
