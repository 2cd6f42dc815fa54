// The faster byte-level mapping (src/tokenizers/byte_level.ts) gives what tokenizers.js's own
// ByteLevel.pre_tokenize_text gives, on texts that reach every UTF-8 length, lone surrogates and
// long pre-tokens; and a Qwen3 tokenizer really uses it. (The 312 Qwen3 goldens, goldens.test.ts,
// run through it as well.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as TokenizersJs } from '@huggingface/tokenizers';
import { useFastByteLevel } from '../../src/tokenizers/byte_level.js';
import { readTokenizerJsonSync } from '../../src/tokenizers/load.js';
import { QWEN_MODEL, QWEN_TOKENIZER, qwenGoldens } from './fixtures.js';

interface PreTokenizer {
  pre_tokenize_text(text: string, options?: unknown): string[];
}

/** The tokenizers.js Tokenizer of a fixture folder, and its ByteLevel pre-tokenizer. */
function qwenByteLevel(folder: string): { hf: unknown; byteLevel: PreTokenizer } {
  const config = JSON.parse(readFileSync(join(folder, 'tokenizer_config.json'), 'utf8')) as object;
  const Hf = TokenizersJs as unknown as new (json: object, config: object) => { pre_tokenizer: { tokenizers: unknown[] } };
  const hf = new Hf(readTokenizerJsonSync(folder), config);
  const byteLevel = hf.pre_tokenizer.tokenizers.find((t) => (typeof t === 'object' || typeof t === 'function') && t !== null && 'byte_encoder' in t) as unknown as PreTokenizer;
  return { hf, byteLevel };
}

const TRICKY = [
  '',
  'plain ASCII, digits 0123 and punctuation!?',
  'Latin-1 é ü ß and Greek αβγ (two bytes)',
  '水稻稻瘟病怎么防治？ (three bytes)',
  'emoji 😀🌾 and a flag 🇨🇳 (four bytes, surrogate pairs)',
  'a lone high surrogate \ud800 here',
  'a lone low surrogate \udc00 here',
  'reversed pair \udc00\ud800 and one at the end \ud83d',
  'controls \u0000\u0001\u007f and tabs\t\tnewlines\r\n\n',
  ' '.repeat(20000) + 'x', // one pre-token longer than a fromCharCode slice
  '水'.repeat(5000),
];

test('the fast mapping equals tokenizers.js ByteLevel.pre_tokenize_text on every UTF-8 length, lone surrogates and long pre-tokens', () => {
  const { hf, byteLevel } = qwenByteLevel(QWEN_MODEL);
  const library = Object.getPrototypeOf(byteLevel) as PreTokenizer;
  const before = TRICKY.map((text) => library.pre_tokenize_text.call(byteLevel, text));
  assert.equal(useFastByteLevel(hf), 1, 'the Qwen3 pre-tokenizer (Split, ByteLevel) has one ByteLevel step');
  assert.ok(Object.hasOwn(byteLevel, 'pre_tokenize_text'), 'the instance now has its own, faster, method');
  TRICKY.forEach((text, i) => assert.deepEqual(byteLevel.pre_tokenize_text(text), before[i], `text ${i}: ${JSON.stringify(text.slice(0, 40))}`));
  for (const golden of qwenGoldens()) assert.deepEqual(byteLevel.pre_tokenize_text(golden.text), library.pre_tokenize_text.call(byteLevel, golden.text), golden.id);
});

test('a tokenizer without a ByteLevel step is left alone', () => {
  assert.equal(useFastByteLevel({}), 0);
  assert.equal(useFastByteLevel(null), 0);
  assert.equal(useFastByteLevel({ pre_tokenizer: { tokenizers: [{ pre_tokenize_text: () => [] }] } }), 0);
});

test('the Qwen3 tokenizer folder of the fixtures gets the fast mapping too', () => {
  const { hf } = qwenByteLevel(QWEN_TOKENIZER);
  assert.equal(useFastByteLevel(hf), 1);
});
