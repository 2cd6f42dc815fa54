// `embtune train` as scripts use it: the contract of issue 5 (flags, checkpoint layout with PEFT
// names, logging.jsonl), a config file that flags override, snake_case flags, Ctrl-C, and
// errors for bad options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/formats/safetensors.js';
import { FIXTURES, ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const DATA = join(FIXTURES, 'mining/swift/v6.0.0/a_labeled_list.swift.jsonl');
const ENV = { ...process.env, EMBTUNE_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' };

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: ENV });
}

function withTemp(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-train-cli-'));
  return Promise.resolve(fn(dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** Every checkpoint-<step> folder under `dir`, at any depth. */
function checkpoints(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => /(^|\/)checkpoint-\d+$/.test(p)).map((p) => join(dir, p)).sort();
}

const SHORT = ['--max-length', '48', '--truncation-strategy', 'right', '--per-device-train-batch-size', '4', '--gradient-accumulation-steps', '1'];

test('embtune train keeps the script contract: checkpoint-<step>/adapter_model.safetensors with PEFT names, logging.jsonl with step, loss, lr', async () => {
  await withTemp((dir) => {
    const out = join(dir, 'out');
    const r = embtune('train', '--model', QWEN, '--dataset', DATA, '--train-type', 'lora', '--loss-type', 'infonce', '--max-steps', '4', '--save-steps', '2',
      '--logging-steps', '1', '--split-dataset-ratio', '0', '--dataset-shuffle', 'false', '--temperature', '0.05', '--max-grad-norm', '0', '--output-dir', out,
      '--learning-rate', '1e-3', ...SHORT);
    assert.equal(r.status, 0, r.stderr);
    const found = checkpoints(out);
    assert.deepEqual(found.map((p) => p.split('/').pop()), ['checkpoint-2', 'checkpoint-4']);
    for (const c of found) {
      const file = SafetensorsFile.open(join(c, 'adapter_model.safetensors'));
      try {
        const names = file.keys();
        assert.equal(names.length, 28);
        for (const n of names) assert.match(n, /^base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.[a-z_]+_proj\.lora_[AB]\.weight$/);
      } finally {
        file.close();
      }
      const config = JSON.parse(readFileSync(join(c, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(config.peft_type, 'LORA');
      assert.equal(config.r, 8);
      assert.equal(config.lora_alpha, 32);
    }
    const runDir = join(found[0]!, '..');
    const log = readFileSync(join(runDir, 'logging.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const steps = log.filter((r) => 'loss' in r);
    assert.deepEqual(steps.map((r) => r.step), [1, 2, 3, 4]);
    for (const s of steps) {
      assert.equal(typeof s.loss, 'number');
      assert.equal(typeof s.lr, 'number');
    }
    assert.ok(existsSync(join(runDir, 'report.html')));
    assert.ok(existsSync(join(runDir, 'charts', 'loss.svg')));
    // The checkpoint is a PEFT adapter embed --adapter applies.
    const texts = join(dir, 'texts.jsonl');
    writeFileSync(texts, '{"text": "什么是轮作？"}\n');
    const e = embtune('embed', '--model', QWEN, '--adapter', found[1]!, '--input', texts, '--output', join(dir, 'e.jsonl'));
    assert.equal(e.status, 0, e.stderr);
  });
});

test('embtune train reads a YAML config, flags (snake_case too) override it, and --adapter continues an adapter', async () => {
  await withTemp((dir) => {
    const yaml = join(dir, 'train.yaml');
    writeFileSync(yaml, `model: ${QWEN}\ndataset: ${DATA}\nmax_steps: 1\nlora_rank: 4\nsave_steps: 1\nsplit_dataset_ratio: 0\noutput_dir: ${join(dir, 'a')}\n`);
    const r = embtune('train', '--config', yaml, '--lora_rank', '2', ...SHORT);
    assert.equal(r.status, 0, r.stderr);
    const [first] = checkpoints(join(dir, 'a'));
    assert.equal((JSON.parse(readFileSync(join(first!, 'adapter_config.json'), 'utf8')) as { r: number }).r, 2, 'the flag beat the file');
    const args = JSON.parse(readFileSync(join(first!, '..', 'args.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(args.maxSteps, 1);

    const next = embtune('train', '--config', yaml, '--adapter', first!, '--lora-rank', '8', '--output-dir', join(dir, 'b'), ...SHORT);
    assert.equal(next.status, 0, next.stderr);
    const [second] = checkpoints(join(dir, 'b'));
    assert.equal((JSON.parse(readFileSync(join(second!, 'adapter_config.json'), 'utf8')) as { r: number }).r, 2, "the adapter's LoRA config wins");
  });
});

test('embtune train: a bad option value or an unknown config key is a usage error naming it', async () => {
  await withTemp((dir) => {
    const bad = embtune('train', '--model', QWEN, '--dataset', DATA, '--learning-rate', 'fast', '--output-dir', dir);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /learningRate: expected a number, got "fast"/);
    const yaml = join(dir, 'bad.yaml');
    writeFileSync(yaml, 'lerning_rate: 1e-4\n');
    const unknown = embtune('train', '--config', yaml, '--model', QWEN, '--dataset', DATA);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown option 'lerningRate'/);
    const missing = embtune('train', '--model', QWEN, '--dataset', join(dir, 'nope.jsonl'), '--output-dir', dir);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nope\.jsonl/);
  });
});

test('Ctrl-C during embtune train saves a checkpoint and exits cleanly', async () => {
  await withTemp(async (dir) => {
    const child = spawn(process.execPath, [CLI, 'train', '--model', QWEN, '--dataset', DATA, '--max-steps', '500', '--save-steps', '1000', '--split-dataset-ratio', '0', '--output-dir', dir, ...SHORT], { env: ENV });
    let stderr = '';
    const code = await new Promise<number | null>((done) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/train \[/.test(stderr) && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (c) => done(c));
    });
    assert.equal(code, 130, stderr);
    assert.match(stderr, /Ctrl-C/);
    const found = checkpoints(dir);
    assert.equal(found.length, 1, stderr);
    assert.ok(existsSync(join(found[0]!, 'adapter_model.safetensors')));
    assert.ok(existsSync(join(found[0]!, 'trainer_state.json')));
  });
});

test('embtune merge folds the fixture adapter into the base: the merged folder embeds as the adapter does', async () => {
  await withTemp((dir) => {
    const out = join(dir, 'merged');
    const m = embtune('merge', '--model', QWEN, '--adapter', join(FIXTURES, 'models/qwen3-tiny-lora'), '--output', out);
    assert.equal(m.status, 0, m.stderr);
    const texts = join(dir, 'texts.jsonl');
    writeFileSync(texts, '{"text": "什么是轮作？"}\n{"text": "水稻稻瘟病怎么防治"}\n');
    const viaAdapter = embtune('embed', '--model', QWEN, '--adapter', join(FIXTURES, 'models/qwen3-tiny-lora'), '--input', texts, '--output', join(dir, 'a.jsonl'));
    const viaMerged = embtune('embed', '--model', out, '--input', texts, '--output', join(dir, 'm.jsonl'));
    assert.equal(viaAdapter.status, 0, viaAdapter.stderr);
    assert.equal(viaMerged.status, 0, viaMerged.stderr);
    const rows = (f: string) => readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { embedding: number[] }).embedding);
    const [a, m2] = [rows('a.jsonl'), rows('m.jsonl')];
    a.forEach((v, i) => v.forEach((x, j) => assert.ok(Math.abs(x - m2[i]![j]!) < 2e-5, `row ${i} dim ${j}: ${x} vs ${m2[i]![j]}`)));
    const refused = embtune('merge', '--model', QWEN, '--adapter', join(FIXTURES, 'models/qwen3-tiny-lora'), '--output', QWEN);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /overwrite the base model folder/);
  });
});
