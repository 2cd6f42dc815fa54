// Every golden line of fixtures/tokenizers/{qwen3,bert}_ids.jsonl is reproduced exactly, from every
// fixture folder that carries a tokenizer (fixtures README §3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { loadTokenizer, type Tokenizer } from '../../src/tokenizers/index.js';
import {
  BERT_MODEL, BERT_TOKENIZER, GOLDEN_COUNT, QWEN_MERGED_MODEL, QWEN_MODEL, QWEN_TOKENIZER, bertGoldens, qwenGoldens,
} from './fixtures.js';

/** Asserts `actual(i)` equals `expected(i)` for every golden, reporting the first mismatches by id. */
function assertAllMatch<G extends { id: string }>(goldens: G[], what: string, actual: (g: G) => unknown, expected: (g: G) => unknown): void {
  assert.equal(goldens.length, GOLDEN_COUNT, `${what}: golden count`);
  const wrong = goldens.filter((g) => !isDeepStrictEqual(actual(g), expected(g)));
  if (wrong.length > 0) {
    const first = wrong[0]!;
    assert.fail(`${what}: ${wrong.length}/${goldens.length} differ (${wrong.slice(0, 5).map((g) => g.id).join(', ')}); `
      + `${first.id}: got ${JSON.stringify(actual(first))}, expected ${JSON.stringify(expected(first))}`);
  }
}

for (const folder of [QWEN_TOKENIZER, QWEN_MODEL, QWEN_MERGED_MODEL]) {
  test(`Qwen3 tokenizer of ${folder.split('/').slice(-2).join('/')} reproduces all 312 golden ids, with and without the appended <|endoftext|>`, async () => {
    const tok = await loadTokenizer(folder);
    assert.equal(tok.kind, 'byte-level-bpe');
    const goldens = qwenGoldens();
    assertAllMatch(goldens, 'ids (no special tokens)', (g) => tok.encode(g.text, { addSpecialTokens: false }), (g) => g.ids);
    assertAllMatch(goldens, 'ids_embedding (special tokens)', (g) => tok.encode(g.text), (g) => g.ids_embedding);
    assertAllMatch(goldens, 'ids_embedding is ids + [151643]', (g) => [...g.ids, 151643], (g) => g.ids_embedding);
  });
}

test('Qwen3 decode gives back the golden text of all 312 lines', async () => {
  const tok = await loadTokenizer(QWEN_TOKENIZER);
  const goldens = qwenGoldens();
  assertAllMatch(goldens, 'decoded', (g) => tok.decode(g.ids), (g) => g.decoded);
  assert.equal(tok.decode(tok.encode('水稻 rice'), { skipSpecialTokens: true }), '水稻 rice');
  assert.equal(tok.decode(tok.encode('水稻 rice')), '水稻 rice<|endoftext|>');
  assert.equal(tok.decode([]), '');
});

for (const folder of [BERT_TOKENIZER, BERT_MODEL]) {
  test(`BERT tokenizer of ${folder.split('/').slice(-2).join('/')} (vocab.txt) reproduces all 312 golden ids with [CLS] … [SEP]`, async () => {
    const tok = await loadTokenizer(folder);
    assert.equal(tok.kind, 'wordpiece');
    const goldens = bertGoldens();
    assertAllMatch(goldens, 'ids', (g) => tok.encode(g.text), (g) => g.ids);
    assertAllMatch(goldens, 'ids without specials', (g) => tok.encode(g.text, { addSpecialTokens: false }), (g) => g.ids.slice(1, -1));
    assertAllMatch(goldens, 'n_unk', (g) => tok.encode(g.text).filter((id) => id === 100).length, (g) => g.n_unk);
  });
}

test('BERT tokenizer read from a WordPiece tokenizer.json reproduces all 312 golden ids', async () => {
  // The tokenizer.json transformers' BertConverter writes for this vocab (REFERENCE §9.2).
  const lines = readFileSync(join(BERT_TOKENIZER, 'vocab.txt'), 'utf8').split('\n');
  lines.pop();
  const vocab = Object.fromEntries(lines.map((token, id) => [token, id]));
  const special = (content: string) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [101], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [102], tokens: ['[SEP]'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  const dir = mkdtempSync(join(tmpdir(), 'embtune-bert-json-'));
  try {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    const tok: Tokenizer = await loadTokenizer(dir);
    assert.equal(tok.kind, 'wordpiece');
    assert.equal(tok.padTokenId, 0);
    assertAllMatch(bertGoldens(), 'ids', (g) => tok.encode(g.text), (g) => g.ids);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a run of CJK Extension-B ideographs gives one [UNK] per ideograph (the case tokenizers.js gets wrong)', async () => {
  const tok = await loadTokenizer(BERT_TOKENIZER);
  const golden = bertGoldens().find((g) => g.id === 'edge:cjk_ext_b');
  assert.ok(golden, 'edge:cjk_ext_b is in bert_ids.jsonl');
  assert.deepEqual(tok.encode(golden.text), golden.ids);
  assert.deepEqual(tok.encode('\u{20000}\u{20001}\u{2A6A5}', { addSpecialTokens: false }), [100, 100, 100]);
});
