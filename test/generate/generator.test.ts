// The Generator on the tiny fixture Qwen3 (float32): greedy decoding with the KV cache equals
// step-by-step full forwards token for token; a batch equals its rows one by one (greedy and
// seeded sampling); streaming deltas add up to the text; stop strings, stop ids, eos, max_tokens
// and abort end generation as documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Generator, type GenerationRequest } from '../../src/generate/generator.js';
import { ChatTemplate } from '../../src/generate/chat_template.js';
import type { GenerationChunk } from '../../src/generate/types.js';
import { FIXTURES } from '../helpers.js';

const MODEL = join(FIXTURES, 'models/qwen3-tiny');
const generator = await Generator.load(MODEL);
const template = ChatTemplate.fromFolder(MODEL);
const prompt = (q: string, thinking?: boolean) =>
  generator.tokenizer.encode(template.render([{ role: 'user', content: q }], thinking === undefined ? {} : { enableThinking: thinking }), { addSpecialTokens: false });

const P1 = prompt('水稻稻瘟病怎么防治？');
const P2 = prompt('What is rice blast?', false);
const P3 = prompt('hi');

test('eos ids: config.json eos_token_id and the tokenizer eos_token <|im_end|>', () => {
  assert.deepEqual(generator.defaults.eosTokenIds.sort(), [151643, 151645]);
  assert.equal(generator.defaults.maxPositions, 512);
});

test('greedy decoding with the KV cache equals step-by-step full forwards, token for token (32 tokens, float32)', () => {
  const request: GenerationRequest = { promptIds: P1, maxTokens: 32, temperature: 0, ignoreEos: true };
  const cached = generator.generate(request);
  const full = generator.generate(request, { useCache: false });
  assert.equal(cached.tokenIds.length, 32);
  assert.deepEqual(cached.tokenIds, full.tokenIds);
  assert.equal(cached.text, full.text);
  assert.equal(cached.finishReason, 'length');
  assert.deepEqual(cached.usage, { promptTokens: P1.length, completionTokens: 32 });
  assert.ok(new Set(cached.tokenIds).size > 4, 'varied tokens: the comparison is not trivial');
  assert.equal(cached.text, generator.tokenizer.decode(cached.tokenIds, { skipSpecialTokens: true }));
});

test('batched generation (left padding, rows finishing at different steps) equals one-by-one', () => {
  const requests: GenerationRequest[] = [
    { promptIds: P1, maxTokens: 20, temperature: 0, ignoreEos: true },
    { promptIds: P2, maxTokens: 7, temperature: 0, ignoreEos: true },
    { promptIds: P3, maxTokens: 14, temperature: 0.9, topK: 40, topP: 0.9, repetitionPenalty: 1.3, seed: 11, ignoreEos: true },
    { promptIds: P2, maxTokens: 12, temperature: 1.2, seed: 5, ignoreEos: true },
  ];
  assert.notEqual(P1.length, P2.length);
  const batched = generator.generateBatch(requests);
  const alone = requests.map((r) => generator.generate(r));
  assert.deepEqual(batched, alone);
  assert.deepEqual(batched.map((r) => r.tokenIds.length), [20, 7, 14, 12]);
  const fullBatched = generator.generateBatch(requests, { useCache: false });
  assert.deepEqual(fullBatched, alone, 'and the uncached batch too');
});

test('streaming: deltas are whole characters, add up to the text, and the event loop runs between tokens', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  const chunks: GenerationChunk[] = [];
  try {
    for await (const chunk of generator.stream({ promptIds: P1, maxTokens: 24, temperature: 0, ignoreEos: true })) chunks.push(chunk);
  } finally {
    clearInterval(timer);
  }
  const done = chunks.at(-1)!;
  assert.equal(done.type, 'done');
  const deltas = chunks.filter((c): c is { type: 'delta'; text: string } => c.type === 'delta').map((c) => c.text);
  assert.ok(deltas.length > 1);
  if (done.type === 'done') {
    assert.equal(deltas.join(''), done.result.text);
    assert.deepEqual(done.result, generator.generate({ promptIds: P1, maxTokens: 24, temperature: 0, ignoreEos: true }));
  }
  // No lone surrogate, and no U+FFFD that the whole text does not have (a split byte sequence would show as one).
  const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
  for (const d of deltas) assert.ok(d.length > 0 && !loneSurrogate.test(d), `delta ${JSON.stringify(d)}`);
  assert.equal(deltas.join('').split('\uFFFD').length, generator.tokenizer.decode(done.type === 'done' ? done.result.tokenIds : [], { skipSpecialTokens: true }).split('\uFFFD').length);
  assert.ok(ticks > 0, 'timers fired while generating');
});

test('a stop string ends generation before it; a stop token id ends it before that token; max_tokens gives length', () => {
  const free = generator.generate({ promptIds: P1, maxTokens: 32, temperature: 0, ignoreEos: true });
  // A stop string taken from the middle of the free-running text.
  const at = Math.floor(free.text.length / 2);
  const stop = free.text.slice(at, at + 3);
  const first = free.text.indexOf(stop);
  const deltas: string[] = [];
  const stopped = generator.generate({ promptIds: P1, maxTokens: 32, temperature: 0, ignoreEos: true, stop: [stop] }, { onDelta: (_, t) => deltas.push(t) });
  assert.equal(stopped.finishReason, 'stop');
  assert.equal(stopped.text, free.text.slice(0, first));
  assert.equal(deltas.join(''), stopped.text, 'nothing streamed beyond the stop string');
  assert.deepEqual(stopped.tokenIds, free.tokenIds.slice(0, stopped.tokenIds.length));
  // A stop token id: the first occurrence of the 6th token.
  const token = free.tokenIds[5]!;
  const index = free.tokenIds.indexOf(token);
  const byId = generator.generate({ promptIds: P1, maxTokens: 32, temperature: 0, ignoreEos: true, stopTokenIds: [token] });
  assert.equal(byId.finishReason, 'stop');
  assert.deepEqual(byId.tokenIds, free.tokenIds.slice(0, index));
  const short = generator.generate({ promptIds: P1, maxTokens: 3, temperature: 0, ignoreEos: true });
  assert.deepEqual(short.tokenIds, free.tokenIds.slice(0, 3));
  assert.equal(short.finishReason, 'length');
});

test('the eos id ends generation unless ignoreEos; abort ends it with finishReason abort', () => {
  const free = generator.generate({ promptIds: P2, maxTokens: 16, temperature: 0, ignoreEos: true });
  // Make the model's own 4th token an eos id through a generator with that eos.
  const eos = free.tokenIds[3]!;
  const g = new Generator(generator.lm, generator.tokenizer, { ...generator.defaults, eosTokenIds: [eos] });
  const ended = g.generate({ promptIds: P2, maxTokens: 16, temperature: 0 });
  assert.equal(ended.finishReason, 'stop');
  assert.deepEqual(ended.tokenIds, free.tokenIds.slice(0, free.tokenIds.indexOf(eos)));
  assert.equal(g.generate({ promptIds: P2, maxTokens: 16, temperature: 0, ignoreEos: true }).tokenIds.length, 16);
  const controller = new AbortController();
  const aborted = generator.generate({ promptIds: P2, maxTokens: 16, temperature: 0, ignoreEos: true, signal: controller.signal }, { onDelta: () => controller.abort() });
  assert.equal(aborted.finishReason, 'abort');
  assert.ok(aborted.tokenIds.length < 16);
});

test('bad requests are refused with what is wrong', () => {
  assert.throws(() => generator.generate({ promptIds: [] }), /request 0: the prompt has no tokens/);
  assert.throws(() => generator.generate({ promptIds: [1, 151669] }), /prompt token 151669 is not an id of this model's vocabulary \(0 … 151668\)/);
  assert.throws(() => generator.generate({ promptIds: P1, maxTokens: 0 }), /maxTokens must be an integer ≥ 1, got 0/);
  assert.throws(() => generator.generate({ promptIds: new Array<number>(512).fill(11) }), /the prompt has 512 tokens, the model's context is 512/);
  assert.throws(() => generator.generate({ promptIds: P1, stop: [''] }), /stop strings must be non-empty/);
  assert.throws(() => generator.generateBatch([]), /no requests/);
  const nearEnd = generator.generate({ promptIds: new Array<number>(508).fill(11), maxTokens: 50, temperature: 0, ignoreEos: true });
  assert.equal(nearEnd.tokenIds.length, 4, 'max_tokens is capped by the context');
});
