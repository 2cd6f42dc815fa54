// The LoRA layer itself (REFERENCE §7, Gotcha 21; PEFT `lora.Linear`): initialisation (A
// kaiming-uniform with nn.Linear's bound or gaussian 1/r, B zero, so a new adapter is a no-op),
// scaling α/r or α/√r (rsLoRA), per-module rank/alpha patterns, dropout on the LoRA input in
// training mode only, a frozen base with trainable float32 adapters (also on a bfloat16 base),
// and gradients that match float64 finite differences through a Qwen3 decoder layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { F, Tensor } from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { Qwen3Model, causalPaddingMask, decoderLayer, headDim, rotaryCosSin, scoped } from '../../src/models/qwen3.js';
import { BertModel } from '../../src/models/bert.js';
import { finishEmbedding, lastTokenPool } from '../../src/models/pooling.js';
import { LoraAdapter, kaimingUniformBound } from '../../src/models/lora/index.js';
import { assertClose, FIXTURES, gradcheck } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');

function identical(a: Tensor, b: Tensor): boolean {
  return a.dtype === b.dtype && a.shape.join() === b.shape.join() && torch.tidy(() => !a.ne(b).any().item());
}

/** A small batch with padding: ids [2, 6] and mask. */
function smallBatch(): { ids: Tensor; mask: Tensor } {
  return {
    ids: torch.tensor([[151643, 151643, 9707, 1879, 374, 220], [785, 3974, 13876, 38835, 916, 279]], { dtype: 'int64' }),
    mask: torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], { dtype: 'int64' }),
  };
}

function embed(model: Qwen3Model | BertModel, ids: Tensor, mask: Tensor): Tensor {
  return torch.tidy(() => finishEmbedding(lastTokenPool(model.forward(ids, mask), mask), {}));
}

test('init true: A is kaiming-uniform within ±1/√in (nn.Linear default), B is zero, so a new adapter leaves the model unchanged', () => {
  const model = Qwen3Model.load(QWEN);
  torch.manualSeed(11);
  const adapter = LoraAdapter.create(model, { r: 8 });
  try {
    torch.tidy(() => {
      const byFanIn = new Map<number, number[]>();
      for (const layer of adapter.layers.values()) {
        const fanIn = layer.A.size(1) as number;
        const bound = kaimingUniformBound(fanIn);
        assert.ok(Math.abs(bound - 1 / Math.sqrt(fanIn)) < 1e-12, 'kaiming-uniform(a=√5) bound is 1/√fan_in');
        assert.ok(layer.A.abs().max().item() <= bound, `${layer.module}: A within ±${bound}`);
        assert.equal(layer.B.abs().max().item(), 0, `${layer.module}: B is zero`);
        assert.equal(layer.A.dtype, 'float32');
        assert.ok(layer.A.requiresGrad && layer.B.requiresGrad, 'A and B are trainable');
        byFanIn.set(fanIn, [...(byFanIn.get(fanIn) ?? []), ...Array.from(layer.A.toTypedArray<'float32'>())]);
      }
      for (const [fanIn, samples] of byFanIn) {
        const bound = 1 / Math.sqrt(fanIn);
        const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
        const std = Math.sqrt(samples.reduce((a, b) => a + (b - mean) ** 2, 0) / samples.length);
        assert.ok(Math.abs(mean) < 0.05 * bound, `fan_in ${fanIn}: mean ${mean} ≈ 0`);
        assert.ok(Math.abs(std / (bound / Math.sqrt(3)) - 1) < 0.08, `fan_in ${fanIn}: std ${std} ≈ bound/√3 (uniform)`);
        assert.ok(Math.max(...samples.map(Math.abs)) > 0.95 * bound, 'the draws fill the range');
      }
      const { ids, mask } = smallBatch();
      const before = torch.noGrad(() => model.forward(ids, mask));
      model.attachAdapter(adapter);
      const after = torch.noGrad(() => model.forward(ids, mask));
      model.attachAdapter(undefined);
      assert.ok(identical(after, before), 'B = 0: the adapted model gives exactly the base output');
    });
  } finally {
    adapter.dispose();
    model.dispose();
  }
});

test("init 'gaussian': A ~ N(0, 1/r), B zero; init false: nn.Linear's default for both (B within ±1/√r, not zero)", () => {
  const model = Qwen3Model.load(QWEN);
  torch.manualSeed(12);
  const gaussian = LoraAdapter.create(model, { r: 4, init_lora_weights: 'gaussian' });
  const plain = LoraAdapter.create(model, { r: 4, init_lora_weights: false });
  try {
    torch.tidy(() => {
      const a = torch.cat(gaussian.parameters().filter((_, i) => i % 2 === 0).map((t) => t.reshape(-1)));
      const std = a.to('float64').sub(a.to('float64').mean()).square().mean().sqrt().item();
      assert.ok(Math.abs(std / 0.25 - 1) < 0.05, `A std ${std} ≈ 1/r = 0.25`);
      for (const layer of gaussian.layers.values()) assert.equal(layer.B.abs().max().item(), 0);
      for (const layer of plain.layers.values()) {
        const b = layer.B.abs().max().item();
        assert.ok(b > 0 && b <= kaimingUniformBound(4), `${layer.module}: B ${b} within ±1/√r and not zero`);
      }
    });
  } finally {
    gaussian.dispose();
    plain.dispose();
    model.dispose();
  }
});

/** An adapter with non-zero B, in eval mode. */
function trainedAdapter(model: Qwen3Model | BertModel, options: Parameters<typeof LoraAdapter.create>[1], seed = 5): LoraAdapter {
  torch.manualSeed(seed);
  const adapter = LoraAdapter.create(model, options);
  torch.noGrad(() => {
    for (const layer of adapter.layers.values()) layer.B.normal_(0, 0.2);
  });
  return adapter;
}

test('scaling is α/r, or α/√r with rsLoRA: the delta of the same A, B grows by √r', () => {
  const model = Qwen3Model.load(QWEN);
  const plain = trainedAdapter(model, { r: 4, lora_alpha: 8, target_modules: ['q_proj'] });
  const rs = trainedAdapter(model, { r: 4, lora_alpha: 8, target_modules: ['q_proj'], use_rslora: true });
  try {
    const module = 'layers.0.self_attn.q_proj';
    assert.equal(plain.layers.get(module)!.scaling, 2);
    assert.equal(rs.layers.get(module)!.scaling, 4);
    torch.tidy(() => {
      torch.noGrad(() => {
        rs.layers.get(module)!.A.copy_(plain.layers.get(module)!.A);
        rs.layers.get(module)!.B.copy_(plain.layers.get(module)!.B);
      });
      torch.manualSeed(1);
      const x = torch.randn([3, 32]);
      const base = F.linear(x, model.weights.get(`${module}.weight`));
      const layer = plain.layers.get(module)!;
      const expected = x.matmul(layer.A.transpose(0, 1)).matmul(layer.B.transpose(0, 1)).mul(2);
      assertClose(plain.adapt(module, x, base).sub(base), expected, { atol: 1e-6 }, 'y − base = (x·Aᵀ·Bᵀ)·α/r');
      assertClose(rs.adapt(module, x, base).sub(base), expected.mul(2), { atol: 1e-6 }, 'rsLoRA: (x·Aᵀ·Bᵀ)·α/√r');
      assert.ok(identical(plain.adapt('layers.0.self_attn.k_proj', x, base), base), 'an untargeted module is left alone');
    });
  } finally {
    plain.dispose();
    rs.dispose();
    model.dispose();
  }
});

test('rank_pattern, alpha_pattern and layers_to_transform pick per-module ranks, alphas and layers as PEFT does', () => {
  const model = Qwen3Model.load(QWEN);
  const adapter = LoraAdapter.create(model, { r: 4, lora_alpha: 8, rank_pattern: { q_proj: 2 }, alpha_pattern: { 'mlp\\.down_proj': 1 }, layers_to_transform: [1] });
  try {
    assert.deepEqual([...adapter.layers.keys()].map((k) => k.split('.')[1]), new Array(7).fill('1'), 'layer 1 only');
    const q = adapter.layers.get('layers.1.self_attn.q_proj')!;
    assert.deepEqual([q.r, q.scaling, q.A.shape], [2, 4, [2, 32]]);
    const down = adapter.layers.get('layers.1.mlp.down_proj')!;
    assert.deepEqual([down.r, down.scaling], [4, 0.25]);
    assert.equal(adapter.layers.get('layers.1.self_attn.k_proj')!.scaling, 2);
  } finally {
    adapter.dispose();
    model.dispose();
  }
});

test('dropout acts on the LoRA input in training mode only, and never on the base path', () => {
  const model = Qwen3Model.load(QWEN);
  const adapter = trainedAdapter(model, { r: 4, lora_alpha: 8, lora_dropout: 0.5, target_modules: ['q_proj'] });
  const zero = LoraAdapter.create(model, { r: 4, lora_alpha: 8, lora_dropout: 0.5, target_modules: ['q_proj'] });
  const module = 'layers.0.self_attn.q_proj';
  try {
    torch.tidy(() =>
      torch.noGrad(() => {
        torch.manualSeed(2);
        const x = torch.randn([1, 32]);
        const base = F.linear(x, model.weights.get(`${module}.weight`));
        const evalOut = adapter.adapt(module, x, base);
        assert.ok(identical(adapter.adapt(module, x, base), evalOut), 'eval mode (the default) is deterministic');
        const layer = adapter.layers.get(module)!;
        assertClose(evalOut.sub(base), x.matmul(layer.A.transpose(0, 1)).matmul(layer.B.transpose(0, 1)).mul(2), { atol: 1e-6 }, 'eval: no dropout');
        adapter.train();
        const draws = Array.from({ length: 2000 }, () => adapter.adapt(module, x, base));
        assert.ok(!identical(draws[0]!, draws[1]!), 'train mode: each pass draws a new mask');
        const mean = torch.stack(draws).mean(0);
        const error = mean.sub(evalOut).norm().item() / evalOut.sub(base).norm().item();
        assert.ok(error < 0.1, `inverted dropout is unbiased: mean of train outputs ≈ eval output (relative error ${error.toFixed(3)})`);
        zero.train();
        assert.ok(identical(zero.adapt(module, x, base), base), 'with B = 0 even a training-mode pass is exactly the base: the base path has no dropout');
        adapter.eval();
        assert.ok(identical(adapter.adapt(module, x, base), evalOut), 'back in eval mode');
        // Through the whole model: embeddings vary between passes in training mode only.
        model.attachAdapter(adapter);
        const { ids, mask } = smallBatch();
        assert.ok(identical(embed(model, ids, mask), embed(model, ids, mask)));
        adapter.train();
        assert.ok(!identical(embed(model, ids, mask), embed(model, ids, mask)));
        adapter.eval();
        model.attachAdapter(undefined);
      }),
    );
  } finally {
    adapter.dispose();
    zero.dispose();
    model.dispose();
  }
});

test('only A and B train: gradients reach every A and B, the frozen base gets none', () => {
  const model = BertModel.load(BERT);
  const adapter = trainedAdapter(model, { r: 2 });
  try {
    model.attachAdapter(adapter);
    torch.tidy(() => {
      const ids = torch.tensor([[101, 2769, 4263, 102, 0], [101, 1921, 3698, 3449, 102]], { dtype: 'int64' });
      const mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], { dtype: 'int64' });
      const hidden = torch.enableGrad(() => model.forward(ids, mask));
      const pooled = torch.enableGrad(() => model.pooler(hidden));
      torch.enableGrad(() => hidden.sum().add(pooled.sum())).backward();
      for (const [name, p] of adapter.namedParameters()) {
        const g = p.grad;
        assert.ok(g !== undefined && g.abs().max().item() > 0, `${name} has a gradient`);
      }
      for (const name of model.weights.keys()) {
        const w = model.weights.get(name);
        assert.equal(w.requiresGrad, false, `${name} is frozen`);
        assert.equal(w.grad, undefined, `${name} has no gradient`);
      }
    });
  } finally {
    model.attachAdapter(undefined);
    adapter.dispose();
    model.dispose();
  }
});

test('on a bfloat16 base the adapter is float32 (x cast up, the sum cast back): the output stays bfloat16 and close to float32', () => {
  const f32 = Qwen3Model.load(QWEN, 'float32');
  const bf16 = Qwen3Model.load(QWEN, 'bfloat16');
  const adapter32 = LoraAdapter.load(join(FIXTURES, 'models/qwen3-tiny-lora'), f32);
  const adapter16 = LoraAdapter.load(join(FIXTURES, 'models/qwen3-tiny-lora'), bf16);
  const golden = loadSafetensors(join(FIXTURES, 'goldens/embed_lora_left.safetensors'));
  try {
    assert.equal(adapter16.parameters()[0]!.dtype, 'float32');
    f32.attachAdapter(adapter32);
    bf16.attachAdapter(adapter16);
    torch.tidy(() =>
      torch.noGrad(() => {
        const [ids, mask] = [golden.get('input_ids')!, golden.get('attention_mask')!];
        const hidden = bf16.forward(ids, mask);
        assert.equal(hidden.dtype, 'bfloat16');
        const a = embed(f32, ids, mask);
        const b = finishEmbedding(lastTokenPool(hidden, mask).float(), {});
        assert.ok(a.mul(b).sum(-1).min().item() > 0.99, 'bfloat16 + float32 adapter ≈ float32');
      }),
    );
    // A fresh adapter on a bfloat16 base: float32 values that went through bfloat16 (PEFT casts to the base dtype first).
    torch.manualSeed(3);
    const fresh = LoraAdapter.create(bf16, { r: 4, target_modules: ['q_proj'] });
    try {
      const a = fresh.parameters()[0]!;
      assert.equal(a.dtype, 'float32');
      torch.tidy(() => assert.ok(identical(a, a.to('bfloat16').float()), 'A is bfloat16-representable'));
    } finally {
      fresh.dispose();
    }
  } finally {
    f32.attachAdapter(undefined);
    bf16.attachAdapter(undefined);
    for (const x of [adapter32, adapter16, f32, bf16]) x.dispose();
    torch.dispose([...golden.values()]);
  }
});

test('LoRA gradients through one Qwen3 decoder layer match float64 finite differences', () => {
  const model = Qwen3Model.load(QWEN, 'float64');
  const adapter = trainedAdapter(model, { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: ['q_proj', 'v_proj', 'down_proj'], layers_to_transform: [0] });
  try {
    assert.equal(adapter.parameters()[0]!.dtype, 'float64', 'a float64 base gets float64 adapters (PEFT casts to the base dtype)');
    model.attachAdapter(adapter);
    torch.tidy(() => {
      const { ids, mask } = smallBatch();
      const length = ids.size(1) as number;
      const hidden = torch.noGrad(() => F.embedding(ids, model.weights.get('embed_tokens.weight')));
      const [cos, sin] = rotaryCosSin(torch.arange(length), headDim(model.config), model.config.rope_theta, 'float64');
      const additive = causalPaddingMask(mask, 'float64');
      const layer0 = scoped(model.lookup(), 'layers.0');
      const inputs = adapter.parameters();
      // Only real tokens count: a pad query's row is saturated by the finfo.min mask (its output
      // does not move with q in floating point, while autograd still propagates through the
      // softmax), and padded positions are not normative anyway (fixtures/README.md §2).
      const real = mask.unsqueeze(-1).to('float64');
      const error = gradcheck(() => decoderLayer(layer0, model.config, hidden, cos, sin, additive).mul(real), inputs);
      assert.ok(error < 1e-6, `relative error ${error}`);
    });
  } finally {
    model.attachAdapter(undefined);
    adapter.dispose();
    model.dispose();
  }
});
