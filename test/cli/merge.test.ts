// The script contract of `embtune merge --model BASE --adapter A --output M`: it prints a line
// containing `parity:` and writes M/*.safetensors, M/tokenizer.json, M/modules.json (with a
// Normalize module), M/1_Pooling/config.json (pooling_mode_lasttoken for Qwen3); the weights are
// PEFT's merge_and_unload (fixtures/README.md §9, 1e-6) and the folder gives the merged goldens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { saveSafetensors } from '../../src/formats/safetensors_write.js';
import { Embedder } from '../../src/embed/embedder.js';
import { assertClose, FIXTURES, ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');
const MERGED = join(FIXTURES, 'models/qwen3-tiny-lora-merged');

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, EMBTUNE_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' } });
}

async function withTemp(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-merge-cli-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('embtune merge: the contract files, a passing parity line, and the shared merge goldens (tensors 1e-6, embeddings 1e-5)', async () => {
  await withTemp(async (dir) => {
    const out = join(dir, 'M');
    const r = embtune('merge', '--model', QWEN, '--adapter', ADAPTER, '--output', out);
    assert.equal(r.status, 0, r.stderr);
    const parity = r.stdout.split('\n').find((l) => l.includes('parity:'));
    assert.ok(parity, `a parity line on stdout: ${r.stdout}`);
    const m = /max \|Δ\| ([\d.e+-]+), min cosine ([\d.]+)/.exec(parity!);
    assert.ok(m && Number(m[1]) <= 1e-4 && Number(m[2]) >= 0.9999, parity);
    assert.match(parity!, /ok \(float32 tolerance 1e-4\)/);
    assert.doesNotMatch(r.stderr, /CHANGES NOTHING/, 'the fixture adapter has non-zero B: no warning');

    assert.ok(readdirSync(out).some((f) => f.endsWith('.safetensors')));
    assert.ok(existsSync(join(out, 'tokenizer.json')), 'an uncompressed tokenizer.json');
    JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8'));
    const modules = JSON.parse(readFileSync(join(out, 'modules.json'), 'utf8')) as { type: string }[];
    assert.ok(modules.some((x) => x.type === 'sentence_transformers.models.Normalize'));
    assert.equal(JSON.parse(readFileSync(join(out, '1_Pooling/config.json'), 'utf8')).pooling_mode_lasttoken, true);
    assert.ok(existsSync(join(out, 'README.md')));
    assert.match(readFileSync(join(out, 'README.md'), 'utf8'), /parity: max \|Δ\|/);

    // The shared goldens: PEFT's merged weights, and the merged model's embeddings.
    const got = loadSafetensors(join(out, 'model.safetensors'));
    const want = loadSafetensors(join(MERGED, 'model.safetensors'));
    try {
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), 'flat names, as the base checkpoint');
      for (const [name, t] of want) {
        assert.equal(got.get(name)!.dtype, 'float32', name);
        assertClose(got.get(name)!, t, { atol: 1e-6 }, name);
      }
    } finally {
      torch.dispose([...got.values(), ...want.values()]);
    }
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')), JSON.parse(readFileSync(join(MERGED, 'config.json'), 'utf8')), 'the base config with torch_dtype float32');
    const batch = JSON.parse(readFileSync(join(FIXTURES, 'goldens/qwen3_goldens.json'), 'utf8')).embed_batch as { kind: 'query' | 'document'; raw: string }[];
    const embedder = await Embedder.load(out);
    try {
      for (const side of ['left', 'right'] as const) {
        const golden = loadSafetensors(join(FIXTURES, `goldens/embed_merged_${side}.safetensors`));
        try {
          const expected = golden.get('pooled_normalized')!.tolist() as number[][];
          batch.forEach((item, i) => {
            const [v] = embedder.embed([item.raw], { kind: item.kind, paddingSide: side });
            assertClose(Array.from(v!), expected[i]!, { atol: 1e-5 }, `${side} ${i}`);
          });
        } finally {
          torch.dispose([...golden.values()]);
        }
      }
    } finally {
      embedder.dispose();
    }

    // --verify-only on the fixture's own PEFT-merged folder passes; on a corrupted copy it fails (exit 1).
    const ok = embtune('merge', '--model', QWEN, '--adapter', ADAPTER, '--output', MERGED, '--verify-only');
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /parity: .* ok/);
    const weights = loadSafetensors(join(out, 'model.safetensors'));
    try {
      const name = 'layers.1.mlp.down_proj.weight';
      const original = weights.get(name)!;
      weights.set(name, original.mul(1.05));
      original.dispose();
      saveSafetensors(join(out, 'model.safetensors'), weights, { format: 'pt' });
    } finally {
      torch.dispose([...weights.values()]);
    }
    const bad = embtune('merge', '--model', QWEN, '--adapter', ADAPTER, '--output', out, '--verify-only');
    assert.equal(bad.status, 1, `a corrupted merge fails the check: ${bad.stdout}${bad.stderr}`);
    assert.match(bad.stdout, /parity: .* FAILED/);
  });
});

test('embtune merge warns loudly about an adapter whose lora_B is all zero, and bad input is a usage error', async () => {
  await withTemp((dir) => {
    const zero = join(dir, 'zero');
    const tensors = loadSafetensors(join(ADAPTER, 'adapter_model.safetensors'));
    try {
      for (const [name, t] of tensors) {
        if (!name.includes('lora_B')) continue;
        tensors.set(name, torch.zeros_like(t));
        t.dispose();
      }
      mkdirSync(zero);
      saveSafetensors(join(zero, 'adapter_model.safetensors'), tensors, { format: 'pt' });
    } finally {
      torch.dispose([...tensors.values()]);
    }
    writeFileSync(join(zero, 'adapter_config.json'), readFileSync(join(ADAPTER, 'adapter_config.json')));
    const r = embtune('merge', '--model', QWEN, '--adapter', zero, '--output', join(dir, 'M'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /parity: /);
    assert.match(r.stderr, /WARNING: THE ADAPTER CHANGES NOTHING/);
    assert.match(r.stderr, /lora_B all zero/);
    // Target names that match no layer of the model: refused with the reason, nothing written.
    const wrong = join(dir, 'wrong');
    mkdirSync(wrong);
    writeFileSync(join(wrong, 'adapter_model.safetensors'), readFileSync(join(ADAPTER, 'adapter_model.safetensors')));
    writeFileSync(join(wrong, 'adapter_config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(ADAPTER, 'adapter_config.json'), 'utf8')), target_modules: ['c_attn', 'c_proj'] }));
    const refused = embtune('merge', '--model', QWEN, '--adapter', wrong, '--output', join(dir, 'W'));
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /target_modules \["c_attn","c_proj"\] does not select/);
    assert.ok(!existsSync(join(dir, 'W', 'model.safetensors')));
    const missing = embtune('merge', '--model', QWEN, '--adapter', join(dir, 'nope'), '--output', join(dir, 'X'));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--adapter .*no such folder/);
    const help = embtune('merge', '--help');
    for (const flag of ['--model', '--adapter', '--output', '--dtype', '--tolerance', '--verify-only']) assert.ok(help.stdout.includes(flag), flag);
  });
});
