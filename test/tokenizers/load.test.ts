// loadTokenizer picks the tokenizer from the folder's files, prefers a plain tokenizer.json to
// the .gz, and names the folder and the expected files when something is missing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { loadTokenizer, loadTokenizerSync } from '../../src/tokenizers/index.js';
import { BERT_MODEL, BERT_TOKENIZER, QWEN_TOKENIZER } from './fixtures.js';

const scratch = mkdtempSync(join(tmpdir(), 'embtune-tokenizers-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function folder(name: string, files: Record<string, string | Buffer>): string {
  const dir = join(scratch, name);
  mkdirSync(dir);
  for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), content);
  return dir;
}

test('a folder that does not exist is an error naming it', async () => {
  const missing = join(scratch, 'no-such-model');
  await assert.rejects(loadTokenizer(missing), (err: Error) => err.message.includes(missing) && /does not exist/.test(err.message));
  assert.throws(() => loadTokenizerSync(missing), /does not exist/);
});

test('a folder without tokenizer files is an error naming the folder and the files expected', async () => {
  const dir = folder('empty', { 'tokenizer_config.json': '{}', 'config.json': '{}' });
  await assert.rejects(loadTokenizer(dir), (err: Error) => {
    assert.ok(err.message.includes(dir), err.message);
    for (const name of ['tokenizer.json', 'tokenizer.json.gz', 'vocab.txt']) assert.ok(err.message.includes(name), `${err.message} names ${name}`);
    return true;
  });
});

test('a Qwen3 tokenizer.json without tokenizer_config.json is an error naming the missing pad token setting', async () => {
  const dir = folder('qwen-no-config', {});
  copyFileSync(join(QWEN_TOKENIZER, 'tokenizer.json.gz'), join(dir, 'tokenizer.json.gz'));
  await assert.rejects(loadTokenizer(dir), (err: Error) => err.message.includes(dir) && /pad_token in .*tokenizer_config\.json/.test(err.message));
});

test('a corrupt tokenizer.json.gz or tokenizer_config.json is an error naming the file', async () => {
  const gz = folder('bad-gz', { 'tokenizer.json.gz': 'not gzip' });
  await assert.rejects(loadTokenizer(gz), (err: Error) => err.message.includes(join(gz, 'tokenizer.json.gz')) && /not a valid gzip/.test(err.message));
  assert.throws(() => loadTokenizerSync(gz), /not a valid gzip/);
  const cfg = folder('bad-config', { 'vocab.txt': readFileSync(join(BERT_TOKENIZER, 'vocab.txt')), 'tokenizer_config.json': '{"do_lower_case": ' });
  await assert.rejects(loadTokenizer(cfg), (err: Error) => err.message.includes(join(cfg, 'tokenizer_config.json')) && /not valid JSON/.test(err.message));
});

test('a plain tokenizer.json is preferred to tokenizer.json.gz', async () => {
  const plain = gunzipSync(readFileSync(join(QWEN_TOKENIZER, 'tokenizer.json.gz')));
  const dir = folder('qwen-plain', {
    'tokenizer.json': plain,
    'tokenizer.json.gz': 'a broken gzip that must not be read',
    'tokenizer_config.json': readFileSync(join(QWEN_TOKENIZER, 'tokenizer_config.json')),
  });
  const tok = await loadTokenizer(dir);
  assert.equal(tok.kind, 'byte-level-bpe');
  assert.deepEqual(tok.encode('什么是萎缩？'), [106582, 112821, 11319, 151643]);
});

test('loadTokenizer and loadTokenizerSync give the same tokenizer, with the expected vocabulary facts', async () => {
  const text = 'Instruct: 水稻 blast (Magnaporthe oryzae)\nQuery:什么是稻瘟病？<|im_end|>';
  for (const dir of [QWEN_TOKENIZER, BERT_TOKENIZER, BERT_MODEL]) {
    const a = await loadTokenizer(dir);
    const b = loadTokenizerSync(dir);
    assert.deepEqual(a.encode(text), b.encode(text));
    assert.equal(a.vocabSize, b.vocabSize);
    assert.equal(a.source, dir);
  }
  const qwen = loadTokenizerSync(QWEN_TOKENIZER);
  assert.equal(qwen.vocabSize, 151669); // REFERENCE §9.1: tokenizer length = embedding vocab_size
  assert.equal(qwen.padTokenId, 151643);
  assert.equal(qwen.tokenId('<|endoftext|>'), 151643);
  assert.equal(qwen.tokenId('<think>'), 151667);
  assert.equal(qwen.idToken(151645), '<|im_end|>');
  assert.deepEqual(qwen.template, { prefix: [], suffix: [151643] });
  const bert = loadTokenizerSync(BERT_TOKENIZER);
  assert.equal(bert.vocabSize, 21128);
  assert.equal(bert.padTokenId, 0);
  assert.deepEqual([bert.tokenId('[UNK]'), bert.tokenId('[CLS]'), bert.tokenId('[SEP]'), bert.tokenId('[MASK]')], [100, 101, 102, 103]);
  assert.deepEqual(bert.template, { prefix: [101], suffix: [102] });
  assert.equal(bert.decode(bert.encode('Hello, World! 水稻'), { skipSpecialTokens: true }), 'hello, world! 水 稻');
});
