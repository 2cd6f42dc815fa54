// BertModel reproduces transformers on the tiny fixture (fixtures/README.md §10): hidden states,
// every layer's output, mean/CLS pooling and the pooler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { BertModel } from '../../src/models/bert.js';
import { clsPool, finishEmbedding, meanPool } from '../../src/models/pooling.js';
import { assertClose, FIXTURES } from '../helpers.js';

test('BertModel hidden states, mean/CLS pooling and pooler match transformers', () => {
  const model = BertModel.load(join(FIXTURES, 'models/bert-tiny'));
  const golden = loadSafetensors(join(FIXTURES, 'goldens/bert_embed_right.safetensors'));
  try {
    torch.tidy(() =>
      torch.noGrad(() => {
        const mask = golden.get('attention_mask')!;
        const hidden = model.forward(golden.get('input_ids')!, mask, { tokenTypeIds: golden.get('token_type_ids')! });
        assertClose(hidden, golden.get('last_hidden_state')!, { atol: 1e-4 }, 'last_hidden_state');
        const mean = meanPool(hidden, mask);
        assertClose(mean, golden.get('mean_pooled')!, { atol: 1e-5 }, 'mean_pooled');
        assertClose(finishEmbedding(mean, {}), golden.get('mean_pooled_normalized')!, { atol: 1e-5 }, 'mean_pooled_normalized');
        assertClose(clsPool(hidden), golden.get('cls')!, { atol: 1e-4 }, 'cls');
        assertClose(model.pooler(hidden), golden.get('pooler_output')!, { atol: 1e-4 }, 'pooler_output');
      }),
    );
    assert.deepEqual(model.weights.unused(), [], 'every checkpoint tensor is used');
  } finally {
    model.dispose();
    torch.dispose([...golden.values()]);
  }
});

test('BertModel refuses inputs longer than max_position_embeddings with a message', () => {
  const model = BertModel.load(join(FIXTURES, 'models/bert-tiny'));
  try {
    torch.tidy(() => {
      const ids = torch.ones([1, 600], { dtype: 'int64' });
      assert.throws(() => model.forward(ids, ids), /at most 512 tokens/);
    });
  } finally {
    model.dispose();
  }
});
