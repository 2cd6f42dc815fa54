// Sharded embedding (issue 13): `embtune embed --shard i/n` workers run at the same time over
// AgriEval's corpus (read in place from ../shared: non-commercial, never copied into the repo; the
// prefix the test embeds lives in a temp folder), `--merge-shards` joins them into what one
// `embtune embed` of the whole file writes, byte for byte; an incomplete or mixed folder is refused
// by name. Batch size 1 on both sides: with larger batches libtorch's GEMM rounds a row
// differently when the batch around it differs (src/embed/shards.ts), so only per-row batches can
// be compared bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { openParquet, readParquetRows } from '../../src/data/parquet.js';
import { mergeShards, parseShardSpec, readShards, shardRange, writeShard, type ShardManifest } from '../../src/embed/shards.js';
import { FIXTURES, SHARED, freePort, runCli, type CliRun } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const CORPUS = join(SHARED, 'data/zh_agri/agrieval/beir/corpus.jsonl');
const ROWS = 600;

function embtuneWith(extra: NodeJS.ProcessEnv, ...args: string[]): Promise<CliRun> {
  return runCli(args, extra);
}

function embtune(...args: string[]): Promise<CliRun> {
  return embtuneWith({}, ...args);
}

function embeddings(file: string): number[][] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { embedding: number[] }).embedding);
}

test('--shard i/n takes the row ranges of datasets shard(n, i, contiguous=True) and refuses i ≥ n', () => {
  // datasets: div = N // n, mod = N % n, start = i·div + min(i, mod), the first mod shards one row longer.
  assert.deepEqual([0, 1, 2].map((i) => shardRange(10, 3, i)), [[0, 4], [4, 7], [7, 10]]);
  assert.deepEqual([0, 1, 2, 3].map((i) => shardRange(2, 4, i)), [[0, 1], [1, 2], [2, 2], [2, 2]]);
  assert.deepEqual(parseShardSpec('2/3'), { index: 2, count: 3 });
  assert.throws(() => parseShardSpec('3/3'), /0 ≤ i < n/);
  assert.throws(() => parseShardSpec('1-3'), /i\/n/);
});

test('3 concurrent --shard workers over AgriEval, merged, equal one embtune embed of the whole file byte for byte; a missing shard or one of another model is refused by name', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-shards-'));
  try {
    const lines = readFileSync(CORPUS, 'utf8').split('\n').slice(0, ROWS);
    assert.equal(lines.length, ROWS);
    const input = join(dir, 'corpus.jsonl');
    writeFileSync(input, lines.join('\n') + '\n');
    const shards = join(dir, 'shards');
    const common = ['--model', QWEN, '--input', input, '--batch-size', '1'];
    // The three workers and the whole-file run at the same time.
    const runs = await Promise.all([
      ...[0, 1, 2].map((i) => embtune('embed', ...common, '--shard', `${i}/3`, '--output', shards)),
      embtune('embed', ...common, '--output', join(dir, 'whole.jsonl')),
    ]);
    for (const run of runs) assert.equal(run.status, 0, run.stderr);

    // Each shard file holds its own rows with their global indices.
    const parquet = await openParquet(join(shards, 'shard-00001-of-00003.parquet'));
    const indices: unknown[] = [];
    for await (const { value } of readParquetRows(parquet, ['row'])) indices.push(value.row);
    assert.deepEqual(indices, Array.from({ length: 200 }, (_, k) => 200 + k));

    let run = await embtune('embed', '--merge-shards', shards, '--output', join(dir, 'merged.jsonl'));
    assert.equal(run.status, 0, run.stderr);
    assert.ok(readFileSync(join(dir, 'merged.jsonl')).equals(readFileSync(join(dir, 'whole.jsonl'))), 'merged JSONL differs from the whole-file run');
    run = await embtune('embed', '--merge-shards', shards, '--output', join(dir, 'merged.safetensors'));
    assert.equal(run.status, 0, run.stderr);
    const tensors = loadSafetensors(join(dir, 'merged.safetensors'));
    try {
      const matrix = tensors.get('embeddings')!;
      assert.deepEqual(matrix.shape, [ROWS, 32]);
      assert.deepEqual(Array.from(matrix.toTypedArray<'float32'>()), embeddings(join(dir, 'whole.jsonl')).flat());
    } finally {
      torch.dispose([...tensors.values()]);
    }

    const manifest = JSON.parse(readFileSync(join(shards, 'manifest.json'), 'utf8')) as ShardManifest;
    assert.equal(manifest.totalRows, ROWS);
    assert.equal(manifest.numShards, 3);
    assert.equal(manifest.input, input);
    assert.equal(manifest.model, QWEN);
    assert.match(manifest.modelKey, /^[0-9a-f]{64}$/);
    assert.deepEqual(manifest.shards, [0, 1, 2].map((i) => ({ index: i, start: 200 * i, end: 200 * (i + 1), file: `shard-0000${i}-of-00003.parquet`, rows: 200 })));

    // Shard 2 gone: the merge names it and its rows, and writes nothing.
    unlinkSync(join(shards, 'shard-00002-of-00003.json'));
    unlinkSync(join(shards, 'shard-00002-of-00003.parquet'));
    run = await embtune('embed', '--merge-shards', shards, '--output', join(dir, 'partial.jsonl'));
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /missing shard 2\/3 \(rows 400–599\)/);
    assert.equal(existsSync(join(dir, 'partial.jsonl')), false);

    // Shard 2 redone with another model (same input, same flags): refused as another model.
    run = await embtune('embed', '--model', BERT, '--input', input, '--batch-size', '1', '--shard', '2/3', '--output', shards);
    assert.equal(run.status, 0, run.stderr);
    run = await embtune('embed', '--merge-shards', shards, '--output', join(dir, 'mixed.jsonl'));
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /shard 2\/3 was embedded with another model or settings \(.*bert-tiny\)/);
    assert.equal(existsSync(join(dir, 'mixed.jsonl')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeShard/mergeShards: an empty shard (2 rows over 3 shards) merges, a range that overlaps its neighbour is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-shards-lib-'));
  try {
    const base = { model: 'm', modelKey: 'k', input: '/in.jsonl', inputSha256: 'h', totalRows: 2, numShards: 3 };
    const rows = [Float32Array.of(0.1, -2.5, 1 / 3), Float32Array.of(7, 8, 9)];
    for (const index of [2, 0, 1]) {
      const [start, end] = shardRange(2, 3, index);
      await writeShard(dir, { ...base, index, start, end }, rows.slice(start, end));
    }
    const { manifest, vectors } = await mergeShards(dir);
    assert.deepEqual(manifest.shards.map((s) => [s.start, s.end, s.rows]), [[0, 1, 1], [1, 2, 1], [2, 2, 0]]);
    assert.equal(manifest.dims, 3);
    assert.deepEqual(vectors, rows);
    // Shard 1 claims rows [0, 2): it overlaps shard 0 and is not datasets' range.
    await writeShard(dir, { ...base, index: 1, start: 0, end: 2 }, rows);
    await assert.rejects(mergeShards(dir), /shard 1\/3 holds rows \[0, 2\) \(2\), expected \[1, 2\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readShards reads a checked folder in place, writing nothing; shards that read another text field of the input are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-shards-read-'));
  try {
    const base = { model: 'm', modelKey: 'k', weightsKey: 'w', input: '/in.jsonl', inputSha256: 'h', textField: 'body', tsvQuoting: false, totalRows: 3, numShards: 2 };
    const rows = [Float32Array.of(1, 2), Float32Array.of(3, 4), Float32Array.of(5, 6)];
    for (const index of [0, 1]) {
      const [start, end] = shardRange(3, 2, index);
      await writeShard(dir, { ...base, index, start, end }, rows.slice(start, end));
    }
    unlinkSync(join(dir, 'manifest.json'));
    const { manifest, vectors } = await readShards(dir);
    assert.deepEqual(vectors, rows);
    assert.equal(manifest.textField, 'body');
    assert.equal(manifest.weightsKey, 'w');
    assert.equal(existsSync(join(dir, 'manifest.json')), false, 'reading a folder leaves it as it was');
    // Shard 1 redone reading the input's 'text' field: other texts for the same rows.
    await writeShard(dir, { ...base, textField: 'text', index: 1, start: 2, end: 3 }, rows.slice(2));
    await assert.rejects(readShards(dir), /shard 1\/2 read the texts of its input as field 'text', shard 0\/2 as 'body'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('3 workers of a torch.distributed group claim 6 shards through its c10d store, each shard once; merged, they equal one whole-file embed byte for byte', { skip: torch.distributed.isAvailable() ? false : 'the addon was built without Gloo' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-claims-'));
  try {
    const input = join(dir, 'corpus.jsonl');
    writeFileSync(input, readFileSync(CORPUS, 'utf8').split('\n').slice(0, 300).join('\n') + '\n');
    const shards = join(dir, 'shards');
    const common = ['--model', QWEN, '--input', input, '--batch-size', '1'];
    const port = String(await freePort());
    const runs = await Promise.all([
      ...[0, 1, 2].map((rank) => embtuneWith({ RANK: String(rank), WORLD_SIZE: '3', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port }, 'embed', ...common, '--claim-shards', '6', '--output', shards)),
      embtune('embed', ...common, '--output', join(dir, 'whole.jsonl')),
    ]);
    for (const run of runs) assert.equal(run.status, 0, run.stderr);
    // Which rank embedded which shard, from each worker's lines.
    const claimed = runs.slice(0, 3).flatMap((run) => [...run.stderr.matchAll(/embedded shard (\d+)\/6: .*\(rank (\d+)\)/g)].map((m) => Number(m[1])));
    assert.deepEqual([...claimed].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5], `claims: ${claimed.join(', ')}`);
    const run = await embtune('embed', '--merge-shards', shards, '--output', join(dir, 'merged.jsonl'));
    assert.equal(run.status, 0, run.stderr);
    assert.ok(readFileSync(join(dir, 'merged.jsonl')).equals(readFileSync(join(dir, 'whole.jsonl'))), 'merged JSONL differs from the whole-file run');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
