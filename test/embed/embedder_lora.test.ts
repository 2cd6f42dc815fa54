// Embedder and Reranker with a PEFT adapter applied without merging (fixtures/README.md §7, §9),
// and the differentiable encode the trainer uses: texts through the adapter give the
// adapter-active goldens; encodeTokens records autograd, embed does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { Embedder } from '../../src/embed/embedder.js';
import { Reranker } from '../../src/embed/reranker.js';
import { LoraAdapter } from '../../src/models/lora/index.js';
import { mergeAdapterFolder } from '../../src/merge/index.js';
import { assertClose, FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');
const goldens = JSON.parse(readFileSync(join(FIXTURES, 'goldens/qwen3_goldens.json'), 'utf8'));
const batch = goldens.embed_batch as { kind: 'query' | 'document'; raw: string; ids: number[] }[];

function goldenRows(file: string, tensor: string): number[][] {
  const g = loadSafetensors(join(FIXTURES, 'goldens', file));
  try {
    return g.get(tensor)!.tolist() as number[][];
  } finally {
    torch.dispose([...g.values()]);
  }
}

function embedBatch(embedder: Embedder): Float32Array[] {
  const out: Float32Array[] = [];
  for (const kind of ['query', 'document'] as const) {
    const items = batch.map((b, i) => ({ ...b, i })).filter((b) => b.kind === kind);
    embedder.embed(items.map((b) => b.raw), { kind }).forEach((v, k) => (out[items[k]!.i] = v));
  }
  return out;
}

test('Embedder.load with an adapter folder embeds texts as the adapter-active goldens; detaching gives the base goldens back', async () => {
  const embedder = await Embedder.load(QWEN, { adapter: ADAPTER });
  try {
    assert.ok(embedder.adapter instanceof LoraAdapter);
    const lora = goldenRows('embed_lora_left.safetensors', 'pooled_normalized');
    embedBatch(embedder).forEach((v, i) => assertClose(Array.from(v), lora[i]!, { atol: 1e-5 }, `row ${i}`));
    embedder.attachAdapter(undefined);
    assert.equal(embedder.adapter, undefined);
    const base = goldenRows('embed_base_left.safetensors', 'pooled_normalized');
    embedBatch(embedder).forEach((v, i) => assertClose(Array.from(v), base[i]!, { atol: 1e-5 }, `base row ${i}`));
  } finally {
    embedder.dispose();
  }
});

test('encodeTokens is the embedding with autograd: golden ids in, golden embeddings out, gradients reach the adapter; embed records none', async () => {
  const embedder = await Embedder.load(QWEN);
  const adapter = LoraAdapter.load(ADAPTER, embedder.encoder);
  const golden = loadSafetensors(join(FIXTURES, 'goldens/embed_lora_right.safetensors'));
  try {
    embedder.attachAdapter(adapter);
    assert.equal(embedder.adapter, adapter);
    // The trainer's tokenization: ms-swift's qwen3_emb input is text + <|endoftext|> (a document).
    const ids = embedder.tokenize(batch.map((b) => b.raw), 'document');
    assert.deepEqual(ids[3], batch[3]!.ids, 'a document: no prompt, one <|endoftext|>');
    torch.tidy(() => {
      const padded = embedder.pad(batch.map((b) => b.ids), 'right');
      assert.ok(torch.tidy(() => !padded.inputIds.ne(golden.get('input_ids')!).any().item()), 'pad() lays the batch out as the golden');
      const embeddings = torch.enableGrad(() => embedder.encodeTokens(padded.inputIds, padded.attentionMask));
      assert.ok(embeddings.requiresGrad);
      assertClose(embeddings, golden.get('pooled_normalized')!, { atol: 1e-5 }, 'pooled_normalized');
      const raw = torch.enableGrad(() => embedder.encodeTokens(padded.inputIds, padded.attentionMask, { normalize: false }));
      assertClose(raw, golden.get('pooled')!, { atol: 1e-5 }, 'pooled, not normalised');
      assert.deepEqual(torch.enableGrad(() => embedder.encodeTokens(padded.inputIds, padded.attentionMask, { dims: 8 })).shape, [6, 8]);
      embeddings.sum().backward();
      for (const [name, p] of adapter.namedParameters()) assert.ok(p.grad !== undefined && p.grad.abs().max().item() > 0, `${name} has a gradient`);
      for (const p of adapter.parameters()) p.grad = undefined;
    });
    torch.enableGrad(() => embedder.embed(['水稻稻瘟病怎么防治？']));
    assert.ok(adapter.parameters().every((p) => p.grad === undefined), 'embed() runs without autograd, even inside enableGrad');
  } finally {
    embedder.attachAdapter(undefined);
    adapter.dispose();
    embedder.dispose();
    torch.dispose([...golden.values()]);
  }
});

test('Reranker.load with an adapter scores as the merged model does, and differently from the base', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-rerank-lora-'));
  try {
    mergeAdapterFolder(QWEN, ADAPTER, join(dir, 'merged'));
    const pairs = (goldens.rerank.pairs as { query: string; document: string }[]).slice(0, 3);
    const score = async (folder: string, adapter?: string) => {
      const reranker = await Reranker.load(folder, { adapter });
      try {
        assert.equal(reranker.adapter !== undefined, adapter !== undefined);
        return reranker.scorePairs(pairs);
      } finally {
        reranker.dispose();
      }
    };
    const withAdapter = await score(QWEN, ADAPTER);
    assertClose(withAdapter, await score(join(dir, 'merged')), { atol: 2e-5 }, 'adapter vs merged');
    assert.ok(Math.max(...withAdapter.map((s, i) => Math.abs(s - goldens.rerank.p_yes[i]))) > 1e-3, 'the adapter changes the scores');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an adapter that does not fit the model is refused when loading the embedder', async () => {
  await assert.rejects(Embedder.load(join(FIXTURES, 'models/bert-tiny'), { adapter: ADAPTER }), /adapter_model\.safetensors: tensor 'base_model\.model\.model\.layers\.0\..*' is for module .* which the bert model/);
  await assert.rejects(Embedder.load(QWEN, { adapter: join(FIXTURES, 'models') }), /no adapter_config\.json/);
});
