// The model worker's dynamic-batching queue: a batch is the oldest request plus later ones of
// its group within the token and request budgets; other groups (adapters, kinds) batch apart and
// keep their place; the oldest request always goes; a cancelled request leaves the queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchQueue, type Queued } from '../../src/serve/batch_queue.js';

function queue(items: [number, string, number][]): BatchQueue<Queued> {
  const q = new BatchQueue<Queued>();
  for (const [id, key, tokens] of items) q.push({ id, key, tokens });
  return q;
}

const ids = (batch: Queued[]) => batch.map((b) => b.id);

test('requests of one group share a batch up to the token budget, in arrival order', () => {
  const q = queue([
    [1, 'a', 10],
    [2, 'a', 10],
    [3, 'a', 10],
    [4, 'a', 1],
  ]);
  assert.deepEqual(ids(q.next({ maxTokens: 25, maxRequests: undefined })), [1, 2]);
  // 4 would fit after 2 but waits behind 3: arrival order within a group.
  assert.deepEqual(ids(q.next({ maxTokens: 25, maxRequests: undefined })), [3, 4]);
  assert.equal(q.size, 0);
  assert.deepEqual(q.next({ maxTokens: 25, maxRequests: undefined }), []);
});

test('different adapters or kinds batch apart; the other group keeps its place', () => {
  const q = queue([
    [1, 'embed|base|document', 5],
    [2, 'embed|agri|document', 5],
    [3, 'embed|base|document', 5],
    [4, 'embed|base|query', 5],
    [5, 'embed|agri|document', 5],
  ]);
  const budget = { maxTokens: 100, maxRequests: undefined };
  assert.deepEqual(ids(q.next(budget)), [1, 3]);
  assert.deepEqual(ids(q.next(budget)), [2, 5]);
  assert.deepEqual(ids(q.next(budget)), [4]);
});

test('the request budget caps a batch; the oldest request goes even alone past the token budget', () => {
  const q = queue([
    [1, 'a', 1000],
    [2, 'a', 1],
    [3, 'a', 1],
    [4, 'a', 1],
  ]);
  assert.deepEqual(ids(q.next({ maxTokens: 10, maxRequests: 2 })), [1]);
  assert.deepEqual(ids(q.next({ maxTokens: 10, maxRequests: 2 })), [2, 3]);
  assert.deepEqual(ids(q.next({ maxTokens: 10, maxRequests: 2 })), [4]);
});

test('a cancelled request leaves the queue; one not waiting is reported so', () => {
  const q = queue([
    [1, 'a', 1],
    [2, 'a', 1],
  ]);
  assert.equal(q.remove(1), true);
  assert.equal(q.remove(1), false);
  assert.deepEqual(ids(q.next({ maxTokens: 10, maxRequests: undefined })), [2]);
});
