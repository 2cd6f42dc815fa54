/**
 * Sharded checkpoints (src/formats/checkpoint.ts): huggingface_hub's shard split, transformers'
 * file names and index text, lazy reading, round trips, and errors that name the index.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { SafetensorsCheckpoint, indexJson, planShards, saveSharded } from '../../src/formats/checkpoint.js';
import { SafetensorsError, loadSafetensors } from '../../src/formats/safetensors.js';
import { type RawTensor, saveSafetensors } from '../../src/formats/safetensors_write.js';
import { FIXTURES } from '../helpers.js';
import { mulberry32 } from './prng.js';

const dir = mkdtempSync(join(tmpdir(), 'embtune-ckpt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const bytes = (n: number): RawTensor => ({ dtype: 'U8', shape: [n], data: new Uint8Array(n) });

function bytesOf(t: Tensor): Buffer {
  const a = t.toTypedArray();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** A small model-like state dict: float32, bfloat16 and int64 tensors of assorted sizes. */
function stateDict(seed: number): Map<string, Tensor> {
  torch.manualSeed(seed);
  const random = mulberry32(seed);
  const out = new Map<string, Tensor>();
  out.set('embed_tokens.weight', torch.randn([50, 16]).to('bfloat16'));
  for (let i = 0; i < 4; i++) {
    out.set(`layers.${i}.self_attn.q_proj.weight`, torch.randn([16, 16]));
    out.set(`layers.${i}.mlp.up_proj.weight`, torch.randn([32, 16]).to('bfloat16'));
    out.set(`layers.${i}.input_layernorm.weight`, torch.randn([16]));
    out.set(`layers.${i}.step`, torch.full([], Math.floor(random() * 1000), { dtype: 'int64' }));
  }
  out.set('norm.weight', torch.randn([16]));
  return out;
}

test('shards are split as huggingface_hub does, in the caller’s order', () => {
  // max 80: a+b fill one shard; c starts the next; d (100) is over the limit and gets a shard
  // of its own, placed before c's shard is closed; e joins c.
  const plan = planShards(new Map([['a', bytes(40)], ['b', bytes(40)], ['c', bytes(30)], ['d', bytes(100)], ['e', bytes(10)]]), 80);
  assert.deepEqual(plan.shards, [['a', 'b'], ['d'], ['c', 'e']]);
  assert.equal(plan.totalSize, 220);
  assert.deepEqual(planShards({}, 10).shards, [[]]);
  assert.throws(() => planShards({ a: bytes(1) }, 0), /maxShardBytes must be positive/);
});

test('the index text is what transformers writes (json.dumps indent=2, sort_keys, ensure_ascii)', () => {
  const names = ['b', 'a', 'é', '\uFFFD', '😀', 'q"uote', 'back\\slash', 'del\u007f', 'ctl\u0001\n', '10', '2', 'Z'];
  const map = new Map(names.map((n, i) => [n, `model-0000${(i % 2) + 1}-of-00002.safetensors`]));
  // Produced by Python 3.11: json.dumps({"metadata": {"total_size": 12345}, "weight_map": …}, indent=2, sort_keys=True) + "\n"
  const python = String.raw`{
  "metadata": {
    "total_size": 12345
  },
  "weight_map": {
    "10": "model-00002-of-00002.safetensors",
    "2": "model-00001-of-00002.safetensors",
    "Z": "model-00002-of-00002.safetensors",
    "a": "model-00002-of-00002.safetensors",
    "b": "model-00001-of-00002.safetensors",
    "back\\slash": "model-00001-of-00002.safetensors",
    "ctl\u0001\n": "model-00001-of-00002.safetensors",
    "del\u007f": "model-00002-of-00002.safetensors",
    "q\"uote": "model-00002-of-00002.safetensors",
    "\u00e9": "model-00001-of-00002.safetensors",
    "\ufffd": "model-00002-of-00002.safetensors",
    "\ud83d\ude00": "model-00001-of-00002.safetensors"
  }
}
`;
  assert.equal(indexJson(map, 12345), python);
  assert.equal(indexJson(new Map(), 0), '{\n  "metadata": {\n    "total_size": 0\n  },\n  "weight_map": {}\n}\n');
});

test('saveSharded → SafetensorsCheckpoint round-trips every tensor bit-exactly', () => {
  torch.tidy(() => {
    const tensors = stateDict(3);
    const folder = join(dir, 'sharded');
    const totalSize = [...tensors.values()].reduce((s, t) => s + bytesOf(t).length, 0);
    const saved = saveSharded(folder, tensors, { maxShardBytes: 2500 });
    assert.equal(saved.totalSize, totalSize);
    assert.ok(saved.files.length >= 3, `${saved.files.length} shards`);
    saved.files.forEach((f, i) => assert.equal(f, `model-${String(i + 1).padStart(5, '0')}-of-${String(saved.files.length).padStart(5, '0')}.safetensors`));
    assert.deepEqual(readdirSync(folder).sort(), [...saved.files, 'model.safetensors.index.json'].sort());

    const index = JSON.parse(readFileSync(saved.index!, 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    assert.deepEqual(index.metadata, { total_size: totalSize });
    assert.deepEqual(new Set(Object.keys(index.weight_map)), new Set(tensors.keys()));
    for (const file of saved.files) {
      const inShard = loadSafetensors(join(folder, file));
      // Each shard is a plain safetensors file with transformers' metadata and ≤ maxShardBytes.
      const size = [...inShard.values()].reduce((s, t) => s + bytesOf(t).length, 0);
      assert.ok(size <= 2500, `${file}: ${size} bytes`);
      for (const name of inShard.keys()) assert.equal(index.weight_map[name], file);
    }

    using ckpt = SafetensorsCheckpoint.open(folder);
    assert.equal(ckpt.totalSize, totalSize);
    assert.deepEqual(ckpt.shardFiles(), saved.files);
    assert.deepEqual(new Set(ckpt.keys()), new Set(tensors.keys()));
    ckpt.verify();
    for (const [name, t] of tensors) {
      const back = ckpt.tensor(name);
      assert.equal(back.dtype, t.dtype, name);
      assert.deepEqual(back.shape, t.shape, name);
      assert.deepEqual(bytesOf(back), bytesOf(t), name);
    }
  });
});

test('shards are opened lazily; a missing shard is an error naming the index, the shard and the tensor', () => {
  torch.tidy(() => {
    const tensors = new Map([['a', torch.zeros([100])], ['b', torch.ones([100])]]);
    const folder = join(dir, 'lazy');
    const saved = saveSharded(folder, tensors, { maxShardBytes: 400 });
    assert.deepEqual(saved.files, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    using ckpt = SafetensorsCheckpoint.open(folder);
    unlinkSync(join(folder, saved.files[1]!));
    // Shard 1 was never needed before the deletion and still loads.
    assert.deepEqual([...ckpt.tensor('a').toTypedArray()].slice(0, 3), [0, 0, 0]);
    assert.throws(
      () => ckpt.tensor('b'),
      (err: unknown) =>
        err instanceof SafetensorsError &&
        err.message.startsWith(`${saved.index}: shard model-00002-of-00002.safetensors is missing`) &&
        err.message.includes('(it holds tensor "b")'),
    );
    assert.throws(() => ckpt.tensor('c'), (err: Error) => err.message === `${saved.index}: no tensor named "c"`);
  });
});

test('an index that maps a tensor to a file without it, or is malformed, is an error naming the index', () => {
  torch.tidy(() => {
    const folder = join(dir, 'wrongmap');
    const saved = saveSharded(folder, new Map([['a', torch.zeros([100])], ['b', torch.ones([100])]]), { maxShardBytes: 400 });
    const index = saved.index!;
    const text = readFileSync(index, 'utf8');
    writeFileSync(index, text.replace('"b": "model-00002-of-00002.safetensors"', '"b": "model-00001-of-00002.safetensors"'));
    using wrong = SafetensorsCheckpoint.open(folder);
    assert.throws(() => wrong.tensor('b'), (err: Error) => err.message === `${index}: tensor "b" is mapped to model-00001-of-00002.safetensors, but that file has no such tensor`);
    assert.throws(() => wrong.verify(), /model-00001-of-00002\.safetensors, but that file has no such tensor/);

    const cases: [string, RegExp][] = [
      ['{"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}}', /the index is not valid JSON: duplicate key "a"/],
      ['{"metadata": {}}', /the index has no "weight_map" object/],
      ['[]', /the index is not a JSON object/],
      ['{"weight_map": {"a": 1}}', /weight_map\["a"\] must be a file name/],
      ['{"weight_map": {"a": "../elsewhere.safetensors"}}', /is not a file inside the checkpoint folder/],
      ['{"weight_map": {"a": "/etc/passwd"}}', /is not a file inside the checkpoint folder/],
      ['{"metadata": 5, "weight_map": {}}', /"metadata" must be an object/],
      ['{"weight_map": {', /the index is not valid JSON/],
    ];
    for (const [json, pattern] of cases) {
      writeFileSync(index, json);
      assert.throws(() => SafetensorsCheckpoint.open(folder), (err: Error) => err.message.startsWith(`${index}: `) && pattern.test(err.message), json);
    }

    // A corrupt shard: the error names the index, the shard and what is wrong with it.
    writeFileSync(index, text);
    writeFileSync(join(folder, saved.files[0]!), Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 0x5b, 0x5d, 32, 32, 32, 32, 32, 32]));
    using corrupt = SafetensorsCheckpoint.open(folder);
    assert.throws(() => corrupt.tensor('a'), (err: Error) => err.message.startsWith(`${index}: shard model-00001-of-00002.safetensors (it holds tensor "a"): `) && /does not start with '\{'/.test(err.message));
  });
});

test('verify() catches a shard tensor the index does not list', () => {
  const folder = join(dir, 'unlisted');
  const saved = saveSharded(folder, new Map([['a', bytes(10)], ['b', bytes(10)]]), { maxShardBytes: 10 });
  saveSafetensors(join(folder, saved.files[0]!), { a: bytes(10), extra: bytes(1) }, { format: 'pt' });
  using ckpt = SafetensorsCheckpoint.open(folder);
  assert.throws(() => ckpt.verify(), (err: Error) => err.message === `${saved.index}: ${saved.files[0]} holds tensor "extra", which the index does not list`);
});

test('one shard is model.safetensors without an index; re-saving removes the other layout’s leftovers', () => {
  torch.tidy(() => {
    const folder = join(dir, 'resave');
    const tensors = stateDict(5);
    const three = saveSharded(folder, tensors, { maxShardBytes: 3000 });
    assert.ok(three.files.length >= 2);
    writeFileSync(join(folder, 'config.json'), '{}');

    const single = saveSharded(folder, tensors);
    assert.deepEqual(single, { files: ['model.safetensors'], totalSize: three.totalSize });
    assert.deepEqual(readdirSync(folder).sort(), ['config.json', 'model.safetensors']);
    const file = loadSafetensors(join(folder, 'model.safetensors'));
    assert.equal(file.size, tensors.size);

    // Back to shards: a stale model.safetensors would shadow the index in transformers' loader.
    const again = saveSharded(folder, tensors, { maxShardBytes: 3000 });
    assert.ok(!existsSync(join(folder, 'model.safetensors')));
    assert.deepEqual(readdirSync(folder).sort(), ['config.json', ...again.files, 'model.safetensors.index.json'].sort());
    using ckpt = SafetensorsCheckpoint.open(folder);
    ckpt.verify();

    // Fewer shards than before: the extra shard files go.
    const two = saveSharded(folder, tensors, { maxShardBytes: 6000 });
    assert.ok(two.files.length < again.files.length);
    assert.deepEqual(readdirSync(folder).sort(), ['config.json', ...two.files, 'model.safetensors.index.json'].sort());
  });
});

test('a fixture model folder opens as a one-file checkpoint', () => {
  using ckpt = SafetensorsCheckpoint.open(join(FIXTURES, 'models', 'qwen3-tiny'));
  assert.equal(ckpt.keys().length, 24);
  assert.equal(ckpt.totalSize, undefined);
  ckpt.verify();
  torch.tidy(() => {
    const t = ckpt.tensor('norm.weight');
    assert.equal(t.dtype, 'bfloat16');
    assert.deepEqual(t.shape, [32]);
  });
  assert.throws(() => SafetensorsCheckpoint.open(join(dir, 'nowhere')), /no model\.safetensors and no model\.safetensors\.index\.json/);
});
