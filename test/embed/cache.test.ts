// The on-disk embedding cache: a second run embeds nothing, prompt and model are part of the key,
// a damaged shard is a clear error, and concurrent writers in one process lose nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddingCache, cachedEmbed, modelContentKey, type EmbedTexts } from '../../src/embed/cache.js';
import { FIXTURES, ROOT } from '../helpers.js';

function withFolder(fn: (folder: string) => Promise<void> | void): Promise<void> | void {
  const folder = mkdtempSync(join(tmpdir(), 'embtune-cache-'));
  const done = () => rmSync(folder, { recursive: true, force: true });
  try {
    const result = fn(folder);
    if (result instanceof Promise) return result.finally(done);
    done();
  } catch (err) {
    done();
    throw err;
  }
}

/** A deterministic fake model that records every text it is asked to embed. */
function fakeModel(dim: number, salt = 0): { embed: EmbedTexts; calls: string[][] } {
  const calls: string[][] = [];
  const embed: EmbedTexts = async (texts) => {
    calls.push([...texts]);
    return texts.map((text) => Float32Array.from({ length: dim }, (_, d) => text.length * 0.5 + d + salt + text.charCodeAt(0) / 7));
  };
  return { embed, calls };
}

const texts = ['水稻', 'wheat rust', '玉米螟的防治', 'wheat rust', ''];

test('a second run over the same texts embeds nothing and returns the same vectors, across reopening', () =>
  withFolder(async (folder) => {
    const first = fakeModel(4);
    const cache = EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 4 });
    const counts: [number, number][] = [];
    const vectors = await cachedEmbed(cache, first.embed, { prompt: 'q: ', onLookup: (c, e) => counts.push([c, e]) })(texts);
    assert.deepEqual(first.calls, [['水稻', 'wheat rust', '玉米螟的防治', '']], 'each distinct missing text is embedded once');
    assert.deepEqual(counts, [[0, 4]]);
    assert.equal(vectors.length, 5);
    assert.deepEqual(vectors[3], vectors[1]);

    const second = fakeModel(4, 100); // different output: any vector it made would show
    const reopened = EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 4 });
    assert.equal(reopened.size, 4);
    const again = await cachedEmbed(reopened, second.embed, { prompt: 'q: ', onLookup: (c, e) => counts.push([c, e]) })([...texts].reverse());
    assert.deepEqual(second.calls, [], 'the second run embeds nothing');
    assert.deepEqual(counts[1], [5, 0]);
    assert.deepEqual(again, [...vectors].reverse());

    // A grown corpus embeds only the new text.
    await cachedEmbed(reopened, second.embed, { prompt: 'q: ' })(['水稻', 'new text']);
    assert.deepEqual(second.calls, [['new text']]);
  }));

test('a different prompt or model key misses; the same model key with another dim is refused', () =>
  withFolder(async (folder) => {
    const model = fakeModel(4);
    await cachedEmbed(EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 4 }), model.embed, { prompt: 'q: ' })(['水稻']);
    const cache = EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 4 });
    assert.deepEqual(cache.lookup(['水稻'], 'q: ').map((v) => v !== undefined), [true]);
    assert.deepEqual(cache.lookup(['水稻'], 'd: '), [undefined], 'another prompt');
    assert.deepEqual(cache.lookup(['水稻']), [undefined], 'no prompt');
    assert.deepEqual(EmbeddingCache.open(folder, { modelKey: 'fake@2', dim: 4 }).lookup(['水稻'], 'q: '), [undefined], 'another model');
    assert.throws(() => EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 8 }), /holds vectors of dim 4 for 'fake@1', but dim 8 was asked for/);
    // Prompt and text are delimited: ('a', 'bc') is not ('ab', 'c').
    cache.store(['bc'], 'a', [new Float32Array(4).fill(1)]);
    assert.deepEqual(cache.lookup(['c'], 'ab'), [undefined]);
  }));

test('a damaged shard makes open fail with the file and the fault named (it is never silently used)', () =>
  withFolder((folder) => {
    const cache = EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 3 });
    cache.store(['a', 'b'], '', [Float32Array.of(1, 2, 3), Float32Array.of(4, 5, 6)]);
    const shard = join(cache.folder, readdirSync(cache.folder).find((n) => n.endsWith('.emb'))!);
    const good = readFileSync(shard);

    const flipped = Buffer.from(good);
    flipped[flipped.length - 40]! ^= 1; // a bit inside the vectors
    writeFileSync(shard, flipped);
    assert.throws(() => EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 3 }), (err: Error) => err.message.includes(shard) && /is damaged \(checksum mismatch\); delete this file/.test(err.message));

    writeFileSync(shard, good);
    truncateSync(shard, good.length - 5);
    assert.throws(() => EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 3 }), /is damaged \(\d+ bytes, but its header \(dim 3, 2 entries\) needs \d+\)/);

    writeFileSync(shard, 'not a shard at all, just some text');
    assert.throws(() => EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 3 }), /wrong magic/);

    writeFileSync(shard, good);
    assert.deepEqual(EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 3 }).lookup(['b']), [Float32Array.of(4, 5, 6)], 'the intact shard reads back');

    writeFileSync(join(cache.folder, 'model.json'), '{ broken');
    assert.throws(() => EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 3 }), /model\.json is damaged/);
  }));

test('concurrent cached calls in one process keep every vector and store each entry once', () =>
  withFolder(async (folder) => {
    const cache = EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 2 });
    const slow: EmbedTexts = async (batch) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return batch.map((t) => Float32Array.of(t.length, 1));
    };
    const embed = cachedEmbed(cache, slow);
    const batches = [['a', 'bb'], ['bb', 'ccc'], ['a', 'dddd'], ['ccc']];
    const results = await Promise.all(batches.map((b) => embed(b)));
    results.forEach((vectors, i) => assert.deepEqual(vectors.map((v) => v[0]), batches[i]!.map((t) => t.length)));
    assert.equal(cache.size, 4);
    const reopened = EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 2 });
    assert.equal(reopened.size, 4, 'overlapping stores add no duplicate entries that matter');
    assert.deepEqual(reopened.lookup(['dddd', 'a']).map((v) => v?.[0]), [4, 1]);
    assert.ok(readdirSync(cache.folder).every((n) => !n.endsWith('.tmp')), 'no temporary files left');
  }));

test('store and cachedEmbed refuse vectors of the wrong length or count', () =>
  withFolder(async (folder) => {
    const cache = EmbeddingCache.open(folder, { modelKey: 'fake@1', dim: 3 });
    assert.throws(() => cache.store(['a'], '', [Float32Array.of(1, 2)]), /vector 0 has length 2, the cache of 'fake@1' holds dim 3/);
    assert.throws(() => cache.store(['a', 'b'], '', [Float32Array.of(1, 2, 3)]), /2 texts but 1 vectors/);
    await assert.rejects(cachedEmbed(cache, async () => [])(['x']), /returned 0 vectors for 1 texts/);
    assert.throws(() => EmbeddingCache.open(folder, { modelKey: '', dim: 3 }), /modelKey must be a non-empty string/);
    assert.throws(() => EmbeddingCache.open(folder, { modelKey: 'm', dim: 0 }), /dim must be a positive integer, got 0/);
  }));

// ------------------------------------------------------------------ content keys (issue 12: "Mining cache")

/** A model-like folder with a few files. */
function fakeModelFolder(root: string, name: string, weights: Buffer): string {
  const folder = join(root, name);
  mkdirSync(join(folder, '1_Pooling'), { recursive: true });
  writeFileSync(join(folder, 'config.json'), '{"model_type": "bert"}');
  writeFileSync(join(folder, 'model.safetensors'), weights);
  writeFileSync(join(folder, '1_Pooling', 'config.json'), '{"pooling_mode_mean_tokens": true}');
  writeFileSync(join(folder, 'README.md'), 'a model card does not change vectors');
  return folder;
}

test('the model key is the content: the same bytes elsewhere give the same key; a rewrite with size and mtime restored misses', () =>
  withFolder((root) => {
    const weights = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 31) % 256));
    const a = fakeModelFolder(root, 'a', weights);
    const b = fakeModelFolder(root, 'b', weights);
    const memoFolder = join(root, 'cache');
    const hashed: string[] = [];
    const onHash = (path: string) => hashed.push(path);
    const key = modelContentKey(a, { memoFolder, onHash, settings: { dtype: 'float32' } });
    assert.equal(modelContentKey(b, { memoFolder, settings: { dtype: 'float32' } }), key, 'another path, the same content');
    assert.notEqual(modelContentKey(a, { memoFolder, settings: { dtype: 'bfloat16' } }), key, 'settings are part of the key');
    assert.deepEqual(JSON.parse(key).model['1_Pooling/config.json'].length, 64, 'sentence-transformers modules are hashed');
    assert.equal(JSON.parse(key).model['README.md'], undefined, 'the model card is not');

    hashed.length = 0;
    modelContentKey(a, { memoFolder, onHash });
    assert.deepEqual(hashed, [], 'an unchanged file is not read again');
    assert.ok(readFileSync(join(memoFolder, 'file-hashes.json'), 'utf8').includes(createHash('sha256').update(weights).digest('hex')), 'hashes are remembered in the cache folder');

    // "Retraining into the same folder": one byte changes, size and mtime are put back.
    const path = join(a, 'model.safetensors');
    const { mtime } = statSync(path);
    const changed = Buffer.from(weights);
    changed[100]! ^= 1;
    writeFileSync(path, changed);
    utimesSync(path, mtime, mtime);
    const retrained = modelContentKey(a, { memoFolder, onHash, settings: { dtype: 'float32' } });
    assert.notEqual(retrained, key);
    assert.deepEqual(hashed, [path], 'only the rewritten file is hashed again');
    const adapter = join(root, 'adapter');
    mkdirSync(adapter);
    writeFileSync(join(adapter, 'adapter_model.safetensors'), 'lora');
    assert.notEqual(modelContentKey(a, { memoFolder, adapter, settings: { dtype: 'float32' } }), retrained, 'the adapter is part of the key');
  }));

/** The mining CLI on a copy of the tiny Qwen3 fixture, with the cache on. */
test('embtune mine --cache-folder: an unchanged model hits the cache; retraining into the same folder re-embeds', () =>
  withFolder((root) => {
    const model = join(root, 'model');
    cpSync(join(FIXTURES, 'models', 'qwen3-tiny'), model, { recursive: true });
    for (const file of readdirSync(model)) chmodSync(join(model, file), 0o644);
    const input = join(root, 'pairs.jsonl');
    const pairs = ['水稻', '小麦', '玉米', '大豆', '棉花', '油菜'].map((crop, i) => ({ prompt: `${crop}怎么种？`, response: `${crop}的种法 ${i}` }));
    writeFileSync(input, pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
    const cache = join(root, 'cache');
    const mine = () =>
      spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'mine', '--model', model, '--input', input, '--output', join(root, 'mined.jsonl'), '--num-negatives', '1', '--cache-folder', cache, '--quiet'], {
        encoding: 'utf8',
        env: { ...process.env, EMBTUNE_NUM_THREADS: '1', HF_HUB_OFFLINE: '1' },
      });
    const first = mine();
    assert.equal(first.status, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /cache: \d+ of/, 'nothing cached yet');
    const second = mine();
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stderr, /cache: 6 of 6 document vectors/);
    assert.match(second.stderr, /cache: 6 of 6 query vectors/);
    // Retrain into the same folder: other weights, same file name, same size.
    const weights = join(model, 'model.safetensors');
    const bytes = readFileSync(weights);
    const dataStart = 8 + Number(bytes.readBigUInt64LE(0));
    for (let i = dataStart + 3; i < bytes.length; i += 4 * 97) bytes[i]! ^= 0x01;
    writeFileSync(weights, bytes);
    const third = mine();
    assert.equal(third.status, 0, third.stderr);
    assert.doesNotMatch(third.stderr, /cache: \d+ of/, 'the retrained model misses');
    const fourth = mine();
    assert.match(fourth.stderr, /cache: 6 of 6 document vectors/, 'and is cached in turn');
  }));
