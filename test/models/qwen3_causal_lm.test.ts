// Qwen3ForCausalLM on the tiny fixture model (tied LM head, float32): its logits are transformers'
// (fixtures README §6), and decoding with the KV cache gives the same logits and the same greedy
// tokens as a full forward over the whole sequence at every step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Tensor, fromTypedArray, noGrad, tidy } from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { Qwen3ForCausalLM, positionIdsFromMask } from '../../src/models/qwen3_causal_lm.js';
import { saveSafetensors } from '../../src/formats/safetensors_write.js';
import { ModelLoadError } from '../../src/models/weights.js';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { assertClose, FIXTURES } from '../helpers.js';

const MODEL = join(FIXTURES, 'models/qwen3-tiny');

function ids(rows: number[][]): Tensor {
  return fromTypedArray(BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);
}
const ones = (b: number, l: number) => torch.ones([b, l], { dtype: 'int64' });
const argmax = (logits: Tensor): number[] => Array.from(logits.argmax(-1).toTypedArray<'int64'>(), Number);

test('Qwen3ForCausalLM last-position logits match transformers Qwen3ForCausalLM (tied head, left padding)', () => {
  const lm = Qwen3ForCausalLM.load(MODEL);
  const golden = loadSafetensors(join(FIXTURES, 'goldens/rerank.safetensors'));
  try {
    assert.equal(lm.model.weights.has('lm_head.weight'), false, 'the fixture ties the head to embed_tokens');
    tidy(() =>
      noGrad(() => {
        const logits = lm.forward(golden.get('input_ids')!, golden.get('attention_mask')!, { lastOnly: true });
        assert.deepEqual(logits.shape, [6, 151669]);
        assertClose(logits, golden.get('last_position_logits')!, { atol: 2e-4 }, 'last_position_logits');
      }),
    );
  } finally {
    lm.dispose();
    torch.dispose([...golden.values()]);
  }
});

const PROMPT = [151644, 872, 198, 100644, 101042, 99882, 11319, 151645, 198, 151644, 77091, 198];

test('greedy decoding with the KV cache equals step-by-step full forwards: 32 tokens, same logits and tokens (float32)', () => {
  const lm = Qwen3ForCausalLM.load(MODEL);
  const cache = lm.newCache(8); // small on purpose: the cache must grow (doubling) mid-generation
  try {
    noGrad(() => {
      const seq = [...PROMPT];
      const cached: number[] = [];
      let logits = lm.forward(ids([seq]), ones(1, seq.length), { cache, lastOnly: true });
      for (let step = 0; step < 32; step++) {
        const full = tidy(() => lm.forward(ids([seq]), ones(1, seq.length), { lastOnly: true }));
        assertClose(logits, full, { atol: 1e-5, rtol: 1e-5 }, `step ${step} logits, cache vs full forward`);
        const [next] = argmax(logits);
        assert.equal(next, argmax(full)[0], `step ${step}: greedy token`);
        full.dispose();
        logits.dispose();
        cached.push(next!);
        seq.push(next!);
        assert.equal(cache.length, seq.length - 1);
        logits = lm.forward(ids([[next!]]), ones(1, seq.length), { cache, lastOnly: true });
      }
      logits.dispose();
      assert.equal(cached.length, 32);
      assert.ok(new Set(cached).size > 1, 'the 32 tokens are not one token repeated (the check would be weak)');
    });
  } finally {
    cache.dispose();
    lm.dispose();
  }
});

test('a prompt fed to the cache in chunks gives the logits of one full forward at every position', () => {
  const lm = Qwen3ForCausalLM.load(MODEL);
  const cache = lm.newCache();
  try {
    tidy(() =>
      noGrad(() => {
        const full = lm.forward(ids([PROMPT]), ones(1, PROMPT.length));
        const parts = [PROMPT.slice(0, 5), PROMPT.slice(5, 6), PROMPT.slice(6)];
        let done = 0;
        for (const part of parts) {
          const logits = lm.forward(ids([part]), ones(1, done + part.length), { cache });
          assertClose(logits, full.narrow(1, done, part.length), { atol: 1e-5, rtol: 1e-5 }, `chunk at ${done}`);
          done += part.length;
        }
      }),
    );
  } finally {
    cache.dispose();
    lm.dispose();
  }
});

test('a left-padded batch with mask-derived positions and a cache equals each row alone; rows can leave the cache', () => {
  const lm = Qwen3ForCausalLM.load(MODEL);
  const rows = [PROMPT, PROMPT.slice(3), PROMPT.slice(7)];
  const cache = lm.newCache();
  try {
    tidy(() =>
      noGrad(() => {
        const length = PROMPT.length;
        const padded = rows.map((r) => [...new Array<number>(length - r.length).fill(151643), ...r]);
        const mask = ids(rows.map((r) => [...new Array<number>(length - r.length).fill(0), ...new Array<number>(r.length).fill(1)]));
        const logits = lm.forward(ids(padded), mask, { cache, positionIds: positionIdsFromMask(mask), lastOnly: true });
        const alone = rows.map((r) => lm.forward(ids([r]), ones(1, r.length), { lastOnly: true }));
        alone.forEach((a, i) => assertClose(logits.narrow(0, i, 1), a, { atol: 1e-5, rtol: 1e-5 }, `row ${i} prefill`));
        // One step more for rows 2 and 0 only (row 1 finished): the cache drops row 1.
        const keep = fromTypedArray(new BigInt64Array([2n, 0n]));
        cache.selectRows(keep);
        const next = [[11], [13]];
        const stepMask = torch.cat([mask.index_select(0, keep), ones(2, 1)], 1);
        const lastPos = positionIdsFromMask(stepMask).narrow(1, length, 1);
        const stepped = lm.forward(ids(next), stepMask, { cache, positionIds: lastPos, lastOnly: true });
        [2, 0].forEach((r, k) => {
          const ref = lm.forward(ids([[...rows[r]!, next[k]![0]!]]), ones(1, rows[r]!.length + 1), { lastOnly: true });
          assertClose(stepped.narrow(0, k, 1), ref, { atol: 1e-5, rtol: 1e-5 }, `row ${r} after selectRows`);
        });
      }),
    );
  } finally {
    cache.dispose();
    lm.dispose();
  }
});

test('the cache refuses a mask that does not span cached + new tokens, and writes under autograd', () => {
  const lm = Qwen3ForCausalLM.load(MODEL);
  const cache = lm.newCache();
  try {
    noGrad(() => tidy(() => lm.forward(ids([PROMPT.slice(0, 4)]), ones(1, 4), { cache })));
    assert.throws(() => noGrad(() => lm.forward(ids([[5]]), ones(1, 1), { cache })), /attention_mask is \[1, 1\]; with 4 cached tokens and input_ids \[1, 1\] it must be \[1, 5\]/);
    assert.throws(() => tidy(() => lm.forward(ids([[5]]), ones(1, 5), { cache })), /run generation under noGrad/);
  } finally {
    cache.dispose();
    lm.dispose();
  }
});

test('an untied checkpoint saved from Qwen3ForCausalLM (model. prefix, lm_head.weight) uses its own head; a missing head is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-causal-lm-'));
  const golden = loadSafetensors(join(MODEL, 'model.safetensors'));
  try {
    torch.manualSeed(3);
    const head = torch.randn([151669, 32]).mul(0.1);
    const tensors = new Map<string, Tensor>([...golden].map(([k, v]) => [`model.${k}`, v] as [string, Tensor]));
    tensors.set('lm_head.weight', head);
    saveSafetensors(join(dir, 'model.safetensors'), tensors);
    const config = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: false }));
    const lm = Qwen3ForCausalLM.load(dir, 'float32');
    try {
      tidy(() =>
        noGrad(() => {
          const input = ids([PROMPT]);
          const hidden = lm.model.forward(input, ones(1, PROMPT.length));
          const logits = lm.forward(input, ones(1, PROMPT.length), { lastOnly: true });
          assertClose(logits, torch.F.linear(hidden.select(1, PROMPT.length - 1), head), { atol: 1e-5 }, 'logits = h · lm_headᵀ');
          const tied = torch.F.linear(hidden.select(1, PROMPT.length - 1), lm.model.weights.get('embed_tokens.weight'));
          assert.ok(logits.sub(tied).abs().max().item() > 0.1, 'not the tied head');
        }),
      );
    } finally {
      lm.dispose();
    }
    tensors.delete('lm_head.weight');
    saveSafetensors(join(dir, 'model.safetensors'), tensors);
    assert.throws(() => Qwen3ForCausalLM.load(dir), (err: Error) => err instanceof ModelLoadError && /tie_word_embeddings false but the checkpoint has no lm_head\.weight/.test(err.message));
    head.dispose();
  } finally {
    torch.dispose([...golden.values()]);
    rmSync(dir, { recursive: true, force: true });
  }
});
