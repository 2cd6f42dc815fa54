// The script contract of `embtune tokenize | embed | rerank`: files in, one JSON line per input
// line out, in order, with the goldens' numbers; bad input is a message and a non-zero exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { assertClose, FIXTURES, ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const goldens = JSON.parse(readFileSync(join(FIXTURES, 'goldens/qwen3_goldens.json'), 'utf8'));

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, EMBTUNE_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' } });
}

function jsonl(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

function goldenRows(file: string, tensor: string): number[][] | number[] {
  const g = loadSafetensors(join(FIXTURES, 'goldens', file));
  try {
    return g.get(tensor)!.tolist() as number[][];
  } finally {
    torch.dispose([...g.values()]);
  }
}

function withTemp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-cli-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('embtune tokenize writes {"ids"} per line, with and without special tokens, matching the goldens', () => {
  withTemp((dir) => {
    const lines = readFileSync(join(FIXTURES, 'tokenizers/qwen3_ids.jsonl'), 'utf8').trim().split('\n').slice(0, 40).map((l) => JSON.parse(l));
    const input = join(dir, 'texts.jsonl');
    writeFileSync(input, lines.map((l) => JSON.stringify({ body: l.text })).join('\n') + '\n');
    let run = embtune('tokenize', '--model', QWEN, '--input', input, '--text-field', 'body', '--output', join(dir, 'ids.jsonl'));
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(jsonl(join(dir, 'ids.jsonl')), lines.map((l) => ({ ids: l.ids_embedding })));
    run = embtune('tokenize', '--model', QWEN, '--input', input, '--text-field', 'body', '--no-special-tokens', '--output', join(dir, 'plain.jsonl'));
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(jsonl(join(dir, 'plain.jsonl')), lines.map((l) => ({ ids: l.ids })));
  });
});

test('embtune embed writes {"embedding"} per line equal to the golden embeddings, for queries and documents', () => {
  withTemp((dir) => {
    const batch = goldens.embed_batch as { kind: string; raw: string }[];
    const expected = goldenRows('embed_base_left.safetensors', 'pooled_normalized') as number[][];
    for (const kind of ['query', 'document']) {
      const rows = batch.map((b, i) => ({ ...b, i })).filter((b) => b.kind === kind);
      const input = join(dir, `${kind}.jsonl`);
      writeFileSync(input, rows.map((r) => JSON.stringify({ text: r.raw })).join('\n') + '\n');
      const output = join(dir, `${kind}-out.jsonl`);
      const run = embtune('embed', '--model', QWEN, '--input', input, '--kind', kind, '--padding-side', 'right', '--output', output);
      assert.equal(run.status, 0, run.stderr);
      const got = jsonl(output);
      assert.equal(got.length, rows.length);
      rows.forEach((r, k) => assertClose(got[k]!.embedding as number[], expected[r.i]!, { atol: 1e-5 }, `${kind} ${k}`));
    }
  });
});

test('embtune embed --dtype bfloat16 stays within bfloat16 error of the float32 goldens', () => {
  withTemp((dir) => {
    const batch = goldens.embed_batch as { kind: string; raw: string }[];
    const expected = goldenRows('embed_base_left.safetensors', 'pooled_normalized') as number[][];
    const docs = batch.map((b, i) => ({ ...b, i })).filter((b) => b.kind === 'document');
    const input = join(dir, 'docs.jsonl');
    writeFileSync(input, docs.map((r) => JSON.stringify({ text: r.raw })).join('\n') + '\n');
    const run = embtune('embed', '--model', QWEN, '--input', input, '--dtype', 'bfloat16', '--output', join(dir, 'out.jsonl'));
    assert.equal(run.status, 0, run.stderr);
    jsonl(join(dir, 'out.jsonl')).forEach((row, k) => {
      const v = row.embedding as number[];
      const cosine = v.reduce((sum, x, j) => sum + x * expected[docs[k]!.i]![j]!, 0);
      assert.ok(cosine > 0.999, `document ${k}: cosine ${cosine} to the float32 golden`);
    });
  });
});

test('embtune embed reads CSV input with --text-field as it reads JSONL', () => {
  withTemp((dir) => {
    const texts = ['水稻稻瘟病怎么防治？', 'a "quoted", text\nwith a newline'];
    writeFileSync(join(dir, 'in.jsonl'), texts.map((t) => JSON.stringify({ response: t })).join('\n') + '\n');
    writeFileSync(join(dir, 'in.csv'), 'id,response\n' + texts.map((t, i) => `${i},"${t.replace(/"/g, '""')}"`).join('\n') + '\n');
    for (const input of ['in.jsonl', 'in.csv']) {
      const run = embtune('embed', '--model', QWEN, '--input', join(dir, input), '--text-field', 'response', '--output', join(dir, `${input}.out.jsonl`));
      assert.equal(run.status, 0, run.stderr);
    }
    assert.deepEqual(jsonl(join(dir, 'in.csv.out.jsonl')), jsonl(join(dir, 'in.jsonl.out.jsonl')));
  });
});

test('embtune embed --dims and a .safetensors output', () => {
  withTemp((dir) => {
    const input = join(dir, 'texts.jsonl');
    writeFileSync(input, '{"text":"水稻稻瘟病怎么防治？"}\n{"text":"什么是冠层结构？"}\n{"text":"施肥"}\n');
    const run = embtune('embed', '--model', QWEN, '--input', input, '--dims', '8', '--output', join(dir, 'out.safetensors'));
    assert.equal(run.status, 0, run.stderr);
    const saved = loadSafetensors(join(dir, 'out.safetensors'));
    try {
      const matrix = saved.get('embeddings')!;
      assert.deepEqual(matrix.shape, [3, 8]);
      assertClose(matrix.norm(2, 1), [1, 1, 1], { atol: 1e-6 }, 'unit rows');
    } finally {
      torch.dispose([...saved.values()]);
    }
  });
});

test('embtune rerank writes {"score"} per pair equal to the golden P(yes)', () => {
  withTemp((dir) => {
    const pairs = goldens.rerank.pairs as { query: string; document: string }[];
    const input = join(dir, 'pairs.jsonl');
    writeFileSync(input, pairs.map((p) => JSON.stringify({ query: p.query, document: p.document })).join('\n') + '\n');
    const run = embtune('rerank', '--model', QWEN, '--input', input, '--output', join(dir, 'scores.jsonl'));
    assert.equal(run.status, 0, run.stderr);
    const scores = jsonl(join(dir, 'scores.jsonl')).map((r) => r.score as number);
    assertClose(scores, goldenRows('rerank.safetensors', 'p_yes') as number[], { atol: 2e-5 }, 'p_yes');
  });
});

test('bad input to the commands is a message naming the problem and a non-zero exit', () => {
  withTemp((dir) => {
    const input = join(dir, 'texts.jsonl');
    writeFileSync(input, '{"text":"a"}\n{"title":"b"}\n');
    let run = embtune('embed', '--model', QWEN, '--input', input, '--output', join(dir, 'o.jsonl'));
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /texts\.jsonl:2: no string field 'text'.*--text-field/);
    writeFileSync(input, '{"text":"a"}\nnot json\n');
    run = embtune('tokenize', '--model', QWEN, '--input', input, '--output', join(dir, 'o.jsonl'));
    assert.match(run.stderr, /texts\.jsonl:2: not valid JSON/);
    writeFileSync(input, '{"text":"a"}\n');
    run = embtune('embed', '--model', join(dir, 'missing'), '--input', input, '--output', join(dir, 'o.jsonl'));
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /no folder at/);
    run = embtune('embed', '--model', QWEN, '--input', input, '--output', join(dir, 'o.jsonl'), '--kind', 'passage');
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /--kind must be one of query, document/);
    run = embtune('rerank', '--model', join(FIXTURES, 'models/bert-tiny'), '--input', input, '--output', join(dir, 'o.jsonl'));
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /query.*document/);
  });
});

const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');

test('embtune embed --adapter applies a PEFT adapter without merging: the adapter-active goldens', () => {
  withTemp((dir) => {
    const batch = goldens.embed_batch as { kind: string; raw: string }[];
    const expected = goldenRows('embed_lora_left.safetensors', 'pooled_normalized') as number[][];
    for (const kind of ['query', 'document']) {
      const rows = batch.map((b, i) => ({ ...b, i })).filter((b) => b.kind === kind);
      const input = join(dir, `${kind}.jsonl`);
      writeFileSync(input, rows.map((r) => JSON.stringify({ text: r.raw })).join('\n') + '\n');
      const output = join(dir, `${kind}-out.jsonl`);
      const run = embtune('embed', '--model', QWEN, '--adapter', ADAPTER, '--input', input, '--kind', kind, '--output', output);
      assert.equal(run.status, 0, run.stderr);
      jsonl(output).forEach((row, k) => assertClose(row.embedding as number[], expected[rows[k]!.i]!, { atol: 1e-5 }, `${kind} ${k}`));
    }
  });
});

test('embtune rerank --adapter changes the scores; --help documents --adapter; a bad adapter folder is a message and exit 1', () => {
  withTemp((dir) => {
    const pairs = (goldens.rerank.pairs as { query: string; document: string }[]).slice(0, 2);
    const input = join(dir, 'pairs.jsonl');
    writeFileSync(input, pairs.map((p) => JSON.stringify({ query: p.query, document: p.document })).join('\n') + '\n');
    let run = embtune('rerank', '--model', QWEN, '--adapter', ADAPTER, '--input', input, '--output', join(dir, 'scores.jsonl'));
    assert.equal(run.status, 0, run.stderr);
    const scores = jsonl(join(dir, 'scores.jsonl')).map((r) => r.score as number);
    const base = (goldenRows('rerank.safetensors', 'p_yes') as number[]).slice(0, 2);
    assert.ok(scores.some((s, i) => Math.abs(s - base[i]!) > 1e-3), `scores ${scores} differ from the base model's ${base}`);
    for (const command of ['embed', 'rerank']) {
      run = embtune(command, '--help');
      assert.match(run.stdout, /--adapter <dir>\s+PEFT LoRA adapter folder/, `${command} --help`);
    }
    run = embtune('embed', '--model', QWEN, '--adapter', dir, '--input', input, '--text-field', 'query', '--output', join(dir, 'o.jsonl'));
    assert.equal(run.status, 1);
    assert.match(run.stderr, /embtune: .*no adapter_config\.json/);
  });
});

test('every command that reads data files documents --tsv-quoting in its --help', () => {
  for (const command of ['embed', 'tokenize', 'mine', 'train', 'convert', 'pairs', 'eval', 'index']) {
    const res = embtune(command, '--help');
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /--tsv-quoting\s+read \.tsv files with RFC 4180 quoting/, command);
  }
});
