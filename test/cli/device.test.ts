// `--device cpu|cuda[:N]` on the commands that run a model: `cpu` changes nothing (same bytes
// out), CUDA asked of this CPU-only build is a clear message and exit 1 (no stack trace), a
// malformed device is a usage error naming the accepted forms (exit 2), and `embtune doctor`
// lists the devices. The CUDA paths themselves need a GPU machine; none is here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');
const TRAIN_DATA = join(FIXTURES, 'mining/swift/v6.0.0/a_labeled_list.swift.jsonl');
const ENV = { ...process.env, EMBTUNE_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' };

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: ENV });
}

function withTemp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-device-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const TEXTS = ['水稻稻瘟病怎么防治？', 'Rice blast is controlled with resistant varieties and timely fungicide.', '玉米 大豆 轮作'];

/** Each command's arguments, with `--device` to be appended; inputs exist, so only the device can fail. */
function commands(dir: string): Record<string, string[]> {
  const texts = join(dir, 'texts.jsonl');
  writeFileSync(texts, TEXTS.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  const pairs = join(dir, 'pairs.jsonl');
  writeFileSync(pairs, TEXTS.map((document) => JSON.stringify({ query: '稻瘟病', document })).join('\n') + '\n');
  const mine = join(dir, 'mine.jsonl');
  writeFileSync(mine, TEXTS.map((t, i) => JSON.stringify({ query: `q${i} ${t}`, answer: t })).join('\n') + '\n');
  return {
    embed: ['embed', '--model', QWEN, '--input', texts, '--output', join(dir, 'out.jsonl')],
    rerank: ['rerank', '--model', QWEN, '--input', pairs, '--output', join(dir, 'scores.jsonl')],
    mine: ['mine', '--model', QWEN, '--input', mine, '--output', join(dir, 'mined.jsonl')],
    train: ['train', '--model', QWEN, '--dataset', TRAIN_DATA, '--max-steps', '1', '--output-dir', join(dir, 'run')],
    merge: ['merge', '--model', QWEN, '--adapter', ADAPTER, '--output', join(dir, 'merged')],
    eval: ['eval', '--data', mine, '--model', QWEN, '--output-dir', join(dir, 'eval')],
    index: ['index', '--model', QWEN, '--docs', texts, '--db', join(dir, 'db')],
    // Refused before the model worker starts, so the server never listens.
    serve: ['serve', '--model', QWEN, '--port', '0'],
  };
}

const NO_STACK = /^\s+at .+\(.+:\d+:\d+\)$/m;

test('embtune embed --device cpu writes the same bytes as no --device, for Qwen3 and BERT', () => {
  withTemp((dir) => {
    const input = join(dir, 'texts.jsonl');
    writeFileSync(input, TEXTS.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    for (const [name, model] of [['qwen3', QWEN], ['bert', BERT]] as const) {
      for (const kind of ['query', 'document']) {
        const plain = join(dir, `${name}-${kind}.jsonl`);
        const onCpu = join(dir, `${name}-${kind}-cpu.jsonl`);
        const a = embtune('embed', '--model', model, '--input', input, '--kind', kind, '--output', plain);
        assert.equal(a.status, 0, a.stderr);
        const b = embtune('embed', '--model', model, '--input', input, '--kind', kind, '--device', 'cpu', '--output', onCpu);
        assert.equal(b.status, 0, b.stderr);
        assert.equal(readFileSync(onCpu, 'utf8'), readFileSync(plain, 'utf8'), `${name} ${kind}`);
      }
    }
    // The safetensors output too (the [N, D] matrix the CLI builds from the vectors).
    const a = embtune('embed', '--model', BERT, '--input', input, '--output', join(dir, 'plain.safetensors'));
    const b = embtune('embed', '--model', BERT, '--input', input, '--device', 'cpu', '--output', join(dir, 'cpu.safetensors'));
    assert.equal(a.status, 0, a.stderr);
    assert.equal(b.status, 0, b.stderr);
    assert.ok(readFileSync(join(dir, 'cpu.safetensors')).equals(readFileSync(join(dir, 'plain.safetensors'))));
  });
});

test('embtune train --device cpu saves the same adapter as no --device', () => {
  withTemp((dir) => {
    const args = ['train', '--model', QWEN, '--dataset', TRAIN_DATA, '--max-steps', '2', '--save-steps', '2', '--split-dataset-ratio', '0',
      '--max-length', '48', '--truncation-strategy', 'right', '--per-device-train-batch-size', '2', '--gradient-accumulation-steps', '1'];
    const adapters: Buffer[] = [];
    for (const extra of [[], ['--device', 'cpu']]) {
      const out = join(dir, `run${adapters.length}`);
      const r = embtune(...args, '--output-dir', out, ...extra);
      assert.equal(r.status, 0, r.stderr);
      const run = readdirSync(out)[0]!;
      adapters.push(readFileSync(join(out, run, 'checkpoint-2', 'adapter_model.safetensors')));
    }
    assert.ok(adapters[1]!.equals(adapters[0]!), 'identical adapter bytes');
  });
});

test('--device cuda and cuda:3 on this CPU-only build: embed, rerank, mine, train, merge, eval, index and serve exit 1 with the device named and how to build with CUDA', () => {
  withTemp((dir) => {
    for (const [name, args] of Object.entries(commands(dir))) {
      for (const device of ['cuda', 'cuda:3']) {
        const r = embtune(...args, '--device', device);
        const what = `${name} --device ${device}`;
        assert.equal(r.status, 1, `${what}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`^embtune: device '${device}' was asked for, but CUDA is not available: the embtune addon was built against a CPU-only libtorch \\(/`), what);
        assert.match(r.stderr, /set LIBTORCH to an unpacked CUDA libtorch archive/, what);
        assert.match(r.stderr, /CUDA build of PyTorch that python3 imports/, what);
        assert.match(r.stderr, /npm run build:native/, what);
        assert.doesNotMatch(r.stderr, NO_STACK, `${what}: no stack trace`);
        assert.equal(r.stdout, '', `${what}: nothing was computed`);
      }
    }
  });
});

test('a malformed --device (gpu, cuda:x) is a usage error naming the accepted forms, on every command', () => {
  withTemp((dir) => {
    for (const [name, args] of Object.entries(commands(dir))) {
      for (const device of ['gpu', 'cuda:x']) {
        const r = embtune(...args, '--device', device);
        const what = `${name} --device ${device}`;
        assert.equal(r.status, 2, `${what}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`device must be 'cpu', 'cuda' \\(= cuda:0\\) or 'cuda:N' \\(N = 0, 1, …\\), got '${device}'`), what);
        assert.doesNotMatch(r.stderr, NO_STACK, what);
      }
    }
  });
});

test('--help of embed, rerank, mine, train, merge, eval, index and serve documents --device', () => {
  for (const command of ['embed', 'rerank', 'mine', 'train', 'merge', 'eval', 'index', 'serve']) {
    const r = embtune(command, '--help');
    assert.equal(r.status, 0, r.stderr);
    const help = r.stdout.replace(/\s+/g, ' ');
    assert.match(help, /--device <device> .*'cpu' \(default\), 'cuda' \(= cuda:0\) or 'cuda:N'/, command);
  }
});

test('embtune doctor lists cpu and says CUDA is not available in this build, with how to get it; --json has the device list', () => {
  const text = embtune('doctor');
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^ {2}devices {4}cpu$/m);
  assert.match(text.stdout, /^ {2}cuda {7}CUDA is not available in this build: the addon was built against a CPU-only libtorch \(\/.+\); to use a GPU, rebuild against a CUDA libtorch \(LIBTORCH=/m);
  const json = embtune('doctor', '--json');
  assert.equal(json.status, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { devices: string[]; cudaDevices: unknown[]; cuda: { compiled: boolean; devices: number } };
  assert.deepEqual(report.devices, ['cpu']);
  assert.deepEqual(report.cudaDevices, []);
  assert.deepEqual(report.cuda, { compiled: false, devices: 0 });
});
