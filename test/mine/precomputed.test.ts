// Precomputed embedding tables: lookups in order, and an error naming the file and line (or the
// missing texts) for every way a table can be wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddingTable } from '../../src/mine/precomputed.js';

async function withTable(lines: (object | string)[], fn: (path: string) => Promise<void>): Promise<void> {
  const folder = mkdtempSync(join(tmpdir(), 'embtune-precomputed-'));
  try {
    const path = join(folder, 'vectors.jsonl');
    writeFileSync(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
    await fn(path);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

test('EmbeddingTable reads a JSONL table and looks texts up in order, as vectors or one matrix', () =>
  withTable([{ text: '水稻', embedding: [1, 0, 0.5] }, '', { text: 'wheat', embedding: [0, 1, 0.25], id: 7 }, { text: '水稻', embedding: [1, 0, 0.5] }], async (path) => {
    const table = await EmbeddingTable.read(path, { label: '--corpus-embeddings' });
    assert.equal(table.dim, 3);
    assert.equal(table.size, 2, 'a repeated text with the same vector is one entry');
    assert.deepEqual(table.lookup(['wheat', '水稻', 'wheat']), [Float32Array.of(0, 1, 0.25), Float32Array.of(1, 0, 0.5), Float32Array.of(0, 1, 0.25)]);
    assert.deepEqual(table.lookupMatrix(['水稻', 'wheat']), Float32Array.of(1, 0, 0.5, 0, 1, 0.25));
    assert.ok(table.has('wheat') && !table.has('rice'));
  }));

test('EmbeddingTable.fromRows pairs texts with vectors row by row (a shard folder and its input); a repeated text keeps its first row; unequal counts or widths are errors', () => {
  const table = EmbeddingTable.fromRows(['a', 'b', 'a'], [Float32Array.of(1, 0), Float32Array.of(0, 1), Float32Array.of(1, 1e-7)], { label: '--corpus-embeddings', file: '/shards' });
  assert.equal(table.dim, 2);
  assert.equal(table.size, 2);
  // The same text in another batch may differ by float32 rounding: the first row's vector is kept, no error.
  assert.deepEqual(table.lookup(['a', 'b']), [Float32Array.of(1, 0), Float32Array.of(0, 1)]);
  assert.throws(() => table.lookup(['c']), /^Error: --corpus-embeddings \(\/shards\) has no embedding for 1 of the 1 texts needed: "c"$/);
  assert.throws(() => EmbeddingTable.fromRows(['a'], [], { file: '/shards' }), /\/shards \(\/shards\): 0 vectors for 1 texts/);
  assert.throws(() => EmbeddingTable.fromRows(['a', 'b'], [Float32Array.of(1, 0), Float32Array.of(1)], { label: 'L', file: '/shards' }), /L \(\/shards\): row 1 has 1 dimensions, row 0 has 2/);
});

test('a text the table lacks is an error naming the first missing texts and their count', () =>
  withTable([{ text: 'a', embedding: [1] }], async (path) => {
    const table = await EmbeddingTable.read(path, { label: '--query-embeddings' });
    assert.throws(() => table.lookup(['a', 'b', 'b']), new RegExp(`^Error: --query-embeddings \\(${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\) has no embedding for 1 of the 2 texts needed: "b"$`));
    const many = Array.from({ length: 8 }, (_, i) => `missing ${i}`);
    assert.throws(() => table.lookupMatrix(['a', ...many]), /has no embedding for 8 of the 9 texts needed: "missing 0", "missing 1", "missing 2", "missing 3", "missing 4", and 3 more$/);
    assert.throws(() => table.lookup(['x'.repeat(200)]), /"x{80}…"$/, 'long texts are shortened');
  }));

test('a line whose dimension differs from the first is an error naming file:line and both sizes', () =>
  withTable([{ text: 'a', embedding: [1, 2] }, { text: 'b', embedding: [1, 2] }, { text: 'c', embedding: [1, 2, 3] }], async (path) => {
    await assert.rejects(EmbeddingTable.read(path), new RegExp(`vectors\\.jsonl:3: embedding has 3 dimensions, but line 1 has 2`));
  }));

test('a text listed twice with different vectors is an error naming both lines', () =>
  withTable([{ text: 'a', embedding: [1, 2] }, { text: 'b', embedding: [0, 0] }, { text: 'a', embedding: [1, 2.5] }], async (path) => {
    await assert.rejects(EmbeddingTable.read(path), /vectors\.jsonl:3: text "a" is listed again with a different embedding \(first at line 1\)/);
  }));

test('malformed lines are errors naming file:line and the fault', async () => {
  const cases: [(object | string)[], RegExp][] = [
    [['{"text": "a", "embedding": [1]'], /vectors\.jsonl:1(:\d+)?: not valid JSON/],
    [[{ text: 'a', embedding: [1] }, { embedding: [1] }], /vectors\.jsonl:2: no string field 'text' \(fields: embedding\)/],
    [[{ text: 'a' }], /vectors\.jsonl:1: 'embedding' must be an array of numbers, got nothing/],
    [[{ text: 'a', embedding: [] }], /vectors\.jsonl:1: 'embedding' is empty/],
    [[{ text: 'a', embedding: [1, '2'] }], /vectors\.jsonl:1: 'embedding'\[1\] is "2", not a finite number/],
    [[{ text: 'a', embedding: [1, null] }], /vectors\.jsonl:1: 'embedding'\[1\] is null, not a finite number/],
    [[{ text: 'a', embedding: [1e39] }], /vectors\.jsonl:1: 'embedding'\[0\] is 1e\+39, beyond float32's range/],
    [[''], /vectors\.jsonl: no embeddings/],
  ];
  for (const [lines, expected] of cases) await withTable(lines, (path) => assert.rejects(EmbeddingTable.read(path), expected));
});
