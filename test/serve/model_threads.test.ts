// The model worker's default thread count: the cores less the HTTP thread and the tokenizer
// worker (at least one), unless EMBTUNE_NUM_THREADS says otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultServeThreads } from '../../src/serve/model_threads.js';

test('without EMBTUNE_NUM_THREADS the model worker leaves two cores to the HTTP and tokenizer threads', () => {
  assert.equal(defaultServeThreads(undefined, 16), 14);
  assert.equal(defaultServeThreads(undefined, 4), 2);
  assert.equal(defaultServeThreads(undefined, 2), 1);
  assert.equal(defaultServeThreads(undefined, 1), 1);
});

test('EMBTUNE_NUM_THREADS, a positive integer, overrides the default; anything else is ignored', () => {
  assert.equal(defaultServeThreads('3', 2), 3);
  assert.equal(defaultServeThreads('0', 8), 6);
  assert.equal(defaultServeThreads('two', 8), 6);
  assert.equal(defaultServeThreads('', 8), 6);
});
