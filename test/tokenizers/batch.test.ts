// Batches: padding on either side with attention masks, proved against the padded golden batches
// (fixtures README §5 embed, §6 rerank, §8 InfoNCE, §10 BERT), and truncation that keeps the
// special tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadTokenizer, padRows } from '../../src/tokenizers/index.js';
import { BERT_MODEL, QWEN_TOKENIZER, bertGoldens, readGoldenJson, readInt64Rows } from './fixtures.js';

interface QwenGoldensJson {
  embed_batch: { text: string; ids: number[]; n_tokens: number }[];
  pad_id: number;
  rerank: { prefix: string; suffix: string; prefix_ids: number[]; suffix_ids: number[]; pairs: { body: string; n_tokens: number }[]; yes_id: number; no_id: number };
  infonce: { texts_in_batch_order: string[] };
}

const qwen = await loadTokenizer(QWEN_TOKENIZER);
const bert = await loadTokenizer(BERT_MODEL);
const golden = readGoldenJson<QwenGoldensJson>('qwen3_goldens.json');

for (const side of ['left', 'right'] as const) {
  test(`Qwen3 embedding batch padded on the ${side} reproduces the golden input_ids and attention_mask`, () => {
    const texts = golden.embed_batch.map((e) => e.text);
    assert.equal(texts.length, 6);
    golden.embed_batch.forEach((e) => assert.deepEqual(qwen.encode(e.text), e.ids));
    const { rows, metadata } = readInt64Rows(`embed_base_${side}.safetensors`, ['input_ids', 'attention_mask']);
    assert.equal(metadata.side, side);
    const batch = qwen.encodeBatch(texts, { padding: true, paddingSide: side });
    assert.equal(qwen.padTokenId, golden.pad_id);
    assert.deepEqual(batch.inputIds, rows.get('input_ids'));
    assert.deepEqual(batch.attentionMask, rows.get('attention_mask'));
  });
}

test('InfoNCE training batch (12 texts, right padding) reproduces the golden input_ids and attention_mask', () => {
  const texts = golden.infonce.texts_in_batch_order;
  assert.equal(texts.length, 12);
  const { rows } = readInt64Rows('infonce_step.safetensors', ['input_ids', 'attention_mask']);
  const batch = qwen.encodeBatch(texts, { padding: 'longest', paddingSide: 'right' });
  assert.equal(batch.inputIds[0]!.length, 131);
  assert.deepEqual(batch.inputIds, rows.get('input_ids'));
  assert.deepEqual(batch.attentionMask, rows.get('attention_mask'));
});

test('reranker inputs (prefix + body + suffix, no EOS, left padding) reproduce the golden batch', () => {
  const { rerank } = golden;
  assert.deepEqual(qwen.encode(rerank.prefix, { addSpecialTokens: false }), rerank.prefix_ids);
  assert.deepEqual(qwen.encode(rerank.suffix, { addSpecialTokens: false }), rerank.suffix_ids);
  assert.equal(qwen.tokenId('yes'), rerank.yes_id);
  assert.equal(qwen.tokenId('no'), rerank.no_id);
  const seqs = rerank.pairs.map((p) => [...rerank.prefix_ids, ...qwen.encode(p.body, { addSpecialTokens: false }), ...rerank.suffix_ids]);
  assert.deepEqual(seqs.map((s) => s.length), rerank.pairs.map((p) => p.n_tokens));
  const { rows } = readInt64Rows('rerank.safetensors', ['input_ids', 'attention_mask']);
  const batch = padRows(seqs, qwen.padTokenId, 'left', Math.max(...seqs.map((s) => s.length)));
  assert.deepEqual(batch.inputIds, rows.get('input_ids'));
  assert.deepEqual(batch.attentionMask, rows.get('attention_mask'));
});

test('BERT batch (right padding with [PAD] = 0) reproduces the golden input_ids and attention_mask', () => {
  const { texts, lengths } = readGoldenJson<{ texts: string[]; lengths: number[] }>('bert_goldens.json');
  assert.equal(texts.length, 6);
  const { rows } = readInt64Rows('bert_embed_right.safetensors', ['input_ids', 'attention_mask']);
  const batch = bert.encodeBatch(texts, { padding: true });
  assert.equal(bert.paddingSide, 'right');
  assert.deepEqual(batch.attentionMask.map((m) => m.reduce((a, b) => a + b, 0)), lengths);
  assert.deepEqual(batch.inputIds, rows.get('input_ids'));
  assert.deepEqual(batch.attentionMask, rows.get('attention_mask'));
});

test('padding puts pad ids and mask 0 on the requested side, mask 1 on every real token', () => {
  const texts = ['水稻', '水稻的病虫害防治方法有哪些', ''];
  const lengths = texts.map((t) => qwen.encode(t).length);
  const longest = Math.max(...lengths);
  for (const side of ['left', 'right'] as const) {
    const { inputIds, attentionMask } = qwen.encodeBatch(texts, { padding: true, paddingSide: side });
    texts.forEach((text, i) => {
      const ids = qwen.encode(text);
      const pads = longest - ids.length;
      const padIds = new Array<number>(pads).fill(151643);
      const expectIds = side === 'left' ? [...padIds, ...ids] : [...ids, ...padIds];
      const ones = new Array<number>(ids.length).fill(1);
      const zeros = new Array<number>(pads).fill(0);
      assert.deepEqual(inputIds[i], expectIds, `${side} row ${i}`);
      assert.deepEqual(attentionMask[i], side === 'left' ? [...zeros, ...ones] : [...ones, ...zeros], `${side} mask ${i}`);
    });
  }
  // The empty text still has its appended <|endoftext|> as one real token.
  assert.deepEqual(qwen.encode(''), [151643]);
});

test('without padding rows keep their own lengths and masks are all ones; max_length pads to maxLength', () => {
  const texts = ['短', '一个较长的句子，用来测试'];
  const ragged = bert.encodeBatch(texts);
  assert.deepEqual(ragged.inputIds, texts.map((t) => bert.encode(t)));
  assert.deepEqual(ragged.attentionMask, ragged.inputIds.map((r) => r.map(() => 1)));
  const fixed = bert.encodeBatch(texts, { padding: 'max_length', maxLength: 20 });
  assert.deepEqual(fixed.inputIds.map((r) => r.length), [20, 20]);
  assert.deepEqual(fixed.inputIds[0], [101, bert.tokenId('短'), 102, ...new Array<number>(17).fill(0)]);
  assert.throws(() => bert.encodeBatch(texts, { padding: 'max_length' }), /max_length' needs maxLength/);
});

test('truncation keeps the appended <|endoftext|> last (Qwen3-Embedding)', () => {
  const text = '水稻纹枯病是由立枯丝核菌引起的一种真菌病害，在高温高湿条件下容易流行。';
  const content = qwen.encode(text, { addSpecialTokens: false });
  assert.ok(content.length > 10);
  const ids = qwen.encode(text, { maxLength: 8 });
  assert.deepEqual(ids, [...content.slice(0, 7), 151643]);
  const batch = qwen.encodeBatch([text, '短'], { maxLength: 8, padding: true, paddingSide: 'left' });
  assert.deepEqual(batch.inputIds[0], ids);
  assert.deepEqual(batch.inputIds[1], [...new Array<number>(6).fill(151643), ...qwen.encode('短')]);
  assert.deepEqual(batch.attentionMask[1], [0, 0, 0, 0, 0, 0, 1, 1]);
  // Without special tokens the first maxLength content tokens are kept.
  assert.deepEqual(qwen.encode(text, { addSpecialTokens: false, maxLength: 8 }), content.slice(0, 8));
  // A text shorter than the limit is unchanged.
  assert.deepEqual(qwen.encode('短', { maxLength: 8 }), qwen.encode('短'));
});

test('truncation keeps [CLS] first and [SEP] last (BERT), and defaults to model_max_length 512', () => {
  const long = bertGoldens().find((g) => g.id === 'edge:long_3000_zh');
  assert.ok(long && long.ids.length > 512, 'the 3000-char golden exceeds 512 tokens');
  const ids = bert.encode(long.text, { maxLength: 16 });
  assert.deepEqual(ids, [...long.ids.slice(0, 15), 102]);
  assert.equal(bert.modelMaxLength, 512);
  const [row] = bert.encodeBatch([long.text], { truncation: true }).inputIds;
  assert.deepEqual(row, [...long.ids.slice(0, 511), 102]);
  // truncation: false ignores maxLength for cutting (HF behaviour).
  assert.equal(bert.encodeBatch([long.text], { truncation: false, maxLength: 16 }).inputIds[0]!.length, long.ids.length);
});

test('a maxLength with no room for the special tokens is an error', () => {
  assert.throws(() => bert.encode('水稻', { maxLength: 1 }), /maxLength 1 leaves no room for the 2 special tokens/);
  assert.deepEqual(bert.encode('水稻', { maxLength: 2 }), [101, 102]);
  assert.throws(() => qwen.encode('水稻', { maxLength: -1 }), /non-negative integer/);
});
