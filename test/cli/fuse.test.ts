// The script contract of `embtune fuse --method slerp --t T --models A B --output F`: F/*.safetensors
// holds every tensor of A under A's names; t = 0 gives A (exactly), t = 1 gives B; a parity line is
// printed; the folder is complete (tokenizer.json, modules.json); bad input is a usage error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { SafetensorsCheckpoint } from '../../src/formats/checkpoint.js';
import { FIXTURES, ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');
const MERGED = join(FIXTURES, 'models/qwen3-tiny-lora-merged');

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, EMBTUNE_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' } });
}

/** Every tensor of `model` is in `fused` under the same name, equal (as float32) to `expected`'s. */
function assertTensorsOf(fused: string, model: string, expected: string): void {
  const f = SafetensorsCheckpoint.open(fused);
  const a = SafetensorsCheckpoint.open(model);
  const e = SafetensorsCheckpoint.open(expected);
  try {
    assert.deepEqual(f.keys().sort(), a.keys().sort(), 'the names of A');
    for (const name of a.keys()) {
      torch.tidy(() => assert.ok(!f.tensor(name).ne(e.tensor(name).to('float32')).any().item(), `${name} equals ${expected}'s exactly`));
    }
  } finally {
    for (const c of [f, a, e]) c.close();
  }
}

test('embtune fuse --method slerp --t 0 --models A B: every tensor of A under its names, t = 0 gives A and t = 1 gives B exactly, with a parity line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-fuse-cli-'));
  try {
    const zero = embtune('fuse', '--method', 'slerp', '--t', '0', '--models', MERGED, QWEN, '--output', join(dir, 'F0'));
    assert.equal(zero.status, 0, zero.stderr);
    assert.match(zero.stdout, /parity: max \|Δ\| .* ok/);
    assert.ok(readdirSync(join(dir, 'F0')).some((f) => f.endsWith('.safetensors')));
    for (const f of ['tokenizer.json', 'modules.json', '1_Pooling/config.json', 'config.json', 'README.md']) assert.ok(existsSync(join(dir, 'F0', f)), f);
    assertTensorsOf(join(dir, 'F0'), MERGED, MERGED);
    const one = embtune('fuse', '--method', 'slerp', '--t', '1', '--models', MERGED, QWEN, '--output', join(dir, 'F1'));
    assert.equal(one.status, 0, one.stderr);
    assertTensorsOf(join(dir, 'F1'), MERGED, QWEN);

    // Adapters over their base, written as an exact PEFT cat adapter.
    const cat = embtune('fuse', '--method', 'linear', '--adapters', ADAPTER, ADAPTER, '--weights', '1,3', '--model', QWEN, '--as-adapter', 'cat', '--output', join(dir, 'cat'));
    assert.equal(cat.status, 0, cat.stderr);
    assert.match(cat.stdout, /parity: .* ok/);
    assert.ok(existsSync(join(dir, 'cat', 'adapter_model.safetensors')));

    const help = embtune('fuse', '--help');
    for (const flag of ['--method', '--models', '--adapters', '--checkpoints', '--last', '--best', '--metric', '--model', '--weights', '--t', '--density', '--base', '--seed', '--lambda', '--normalize', '--as-adapter', '--rank', '--output', '--dtype', '--tolerance']) {
      assert.ok(help.stdout.includes(flag), `--help documents ${flag}`);
    }
    const both = embtune('fuse', '--method', 'linear', '--models', QWEN, QWEN, '--adapters', ADAPTER, '--output', join(dir, 'x'));
    assert.equal(both.status, 2);
    assert.match(both.stderr, /exactly one of --models/);
    const noBase = embtune('fuse', '--method', 'ties', '--models', QWEN, QWEN, '--output', join(dir, 'y'));
    assert.equal(noBase.status, 1);
    assert.match(noBase.stderr, /give --base/);
    const badT = embtune('fuse', '--method', 'slerp', '--t', 'half', '--models', QWEN, QWEN, '--output', join(dir, 'z'));
    assert.equal(badT.status, 2);
    assert.match(badT.stderr, /--t must be a number/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
