// Qwen3Model reproduces transformers on the tiny fixture model (fixtures/README.md §4–§6):
// hidden states, last-token pooled embeddings (left and right padding) and reranker logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Tensor, arange } from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { Qwen3Model } from '../../src/models/qwen3.js';
import { finishEmbedding, lastTokenPool, lastTokenPositions } from '../../src/models/pooling.js';
import { ModelLoadError } from '../../src/models/weights.js';
import { assertClose, FIXTURES } from '../helpers.js';

const MODEL = join(FIXTURES, 'models/qwen3-tiny');

/** Real-token rows of a [B, L, H] tensor, as one [N, H] tensor. */
export function realTokens(hidden: Tensor, mask: Tensor): Tensor {
  const flat = mask.reshape(-1);
  const positions = arange(flat.numel()).masked_fill(flat.eq(0), -1).sort(0, true)[0].slice(0, 0, flat.sum().item());
  return hidden.reshape(-1, hidden.size(-1) as number).index_select(0, positions);
}

for (const padding of ['left', 'right'] as const) {
  test(`Qwen3Model hidden states and pooled embeddings match transformers (${padding} padding)`, () => {
    const model = Qwen3Model.load(MODEL);
    const golden = loadSafetensors(join(FIXTURES, `goldens/embed_base_${padding}.safetensors`));
    try {
      torch.tidy(() =>
        torch.noGrad(() => {
          const mask = golden.get('attention_mask')!;
          const hidden = model.forward(golden.get('input_ids')!, mask);
          assertClose(realTokens(hidden, mask), realTokens(golden.get('last_hidden_state')!, mask), { atol: 2e-4 }, 'last_hidden_state');
          // Pad positions attend to nothing real; the finite mask keeps them NaN-free (Gotcha 19).
          assert.equal(hidden.ne(hidden).any().item(), false, 'no NaN anywhere, pad positions included');
          const pooled = lastTokenPool(hidden, mask);
          assertClose(pooled, golden.get('pooled')!, { atol: 1e-5 }, 'pooled');
          assertClose(finishEmbedding(pooled, {}), golden.get('pooled_normalized')!, { atol: 1e-5 }, 'pooled_normalized');
        }),
      );
    } finally {
      model.dispose();
      torch.dispose([...golden.values()]);
    }
  });
}

test('Qwen3 reranker logits at the last position match transformers (left padding)', () => {
  const model = Qwen3Model.load(MODEL);
  const golden = loadSafetensors(join(FIXTURES, 'goldens/rerank.safetensors'));
  try {
    torch.tidy(() =>
      torch.noGrad(() => {
        const hidden = model.forward(golden.get('input_ids')!, golden.get('attention_mask')!);
        const last = hidden.select(1, hidden.size(1) as number - 1);
        assertClose(last, golden.get('last_position_hidden')!, { atol: 2e-4 }, 'last_position_hidden');
        const logits = model.lmHead(last);
        assertClose(logits, golden.get('last_position_logits')!, { atol: 2e-4 }, 'last_position_logits');
      }),
    );
  } finally {
    model.dispose();
    torch.dispose([...golden.values()]);
  }
});

for (const padding of ['left', 'right'] as const) {
  test(`forward with outputPositions gives the pooled rows of the full forward, the last layer run for them alone (${padding} padding)`, () => {
    const model = Qwen3Model.load(MODEL);
    const golden = loadSafetensors(join(FIXTURES, `goldens/embed_base_${padding}.safetensors`));
    try {
      torch.tidy(() =>
        torch.noGrad(() => {
          const [ids, mask] = [golden.get('input_ids')!, golden.get('attention_mask')!];
          const positions = lastTokenPositions(mask);
          const picked = model.forward(ids, mask, { outputPositions: positions });
          assert.deepEqual(picked.shape, [ids.size(0), 1, model.config.hidden_size]);
          assertClose(picked.squeeze(1), lastTokenPool(model.forward(ids, mask), mask), { atol: 1e-6 }, 'rows');
          assertClose(picked.squeeze(1), golden.get('pooled')!, { atol: 1e-5 }, 'pooled golden');
        }),
      );
    } finally {
      model.dispose();
      torch.dispose([...golden.values()]);
    }
  });
}

test('bfloat16 inference stays close to float32 (error reported)', (t) => {
  const f32 = Qwen3Model.load(MODEL, 'float32');
  const bf16 = Qwen3Model.load(MODEL, 'bfloat16');
  const golden = loadSafetensors(join(FIXTURES, 'goldens/embed_base_left.safetensors'));
  try {
    torch.tidy(() =>
      torch.noGrad(() => {
        const [ids, mask] = [golden.get('input_ids')!, golden.get('attention_mask')!];
        const a = finishEmbedding(lastTokenPool(f32.forward(ids, mask), mask), {});
        const b = finishEmbedding(lastTokenPool(bf16.forward(ids, mask), mask).float(), {});
        const cosine = a.mul(b).sum(-1);
        const worst = cosine.min().item();
        const maxAbs = a.sub(b).abs().max().item();
        t.diagnostic(`bfloat16 vs float32 embeddings: min cosine ${worst.toFixed(6)}, max |Δ| ${maxAbs.toExponential(2)}`);
        assert.ok(worst > 0.99, `bfloat16 embeddings drifted: min cosine ${worst}`);
      }),
    );
  } finally {
    f32.dispose();
    bf16.dispose();
    torch.dispose([...golden.values()]);
  }
});

test('a model folder without weights, or with a misshapen tensor, is an error that names it', () => {
  assert.throws(() => Qwen3Model.load(join(FIXTURES, 'tokenizers/qwen3-embedding')), (err: Error) => err instanceof ModelLoadError && /config\.json/.test(err.message));
  assert.throws(() => Qwen3Model.load(join(FIXTURES, 'models/bert-tiny')), ModelLoadError);
});
