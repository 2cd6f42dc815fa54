// `embtune mine` end to end: the tutorial's flags on the mining fixture, with the fixture's
// vectors given as precomputed tables, against sentence-transformers v6.0.0's own output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const MINING = join(FIXTURES, 'mining');

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, EMBTUNE_NUM_THREADS: '1', HF_HUB_OFFLINE: '1' } });
}

interface Case {
  stdout: string;
  output: { columns: string[]; rows: Record<string, unknown>[] };
}

function withTables(body: (dir: string, queries: string, documents: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-mine-cli-'));
  try {
    const fixture = JSON.parse(readFileSync(join(MINING, 'embeddings.json'), 'utf8')) as { queries: unknown[]; documents: unknown[] };
    const queries = join(dir, 'queries.jsonl');
    const documents = join(dir, 'documents.jsonl');
    writeFileSync(queries, fixture.queries.map((r) => JSON.stringify(r)).join('\n') + '\n');
    writeFileSync(documents, fixture.documents.map((r) => JSON.stringify(r)).join('\n') + '\n');
    body(dir, queries, documents);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CASE_A = ['--anchor-column', 'prompt', '--positive-column', 'response', '--num-negatives', '5', '--range-min', '2', '--range-max', '15', '--max-score', '0.8', '--absolute-margin', '0.1', '--sampling-strategy', 'top', '--output-format', 'labeled-list'];

test('embtune mine with precomputed vectors writes the rows and prints the statistics sentence-transformers v6 does', () => {
  const golden = JSON.parse(readFileSync(join(MINING, 'cases', 'v6.0.0', 'a_labeled_list.json'), 'utf8')) as Case;
  withTables((dir, queries, documents) => {
    const out = join(dir, 'mined.jsonl');
    const r = embtune('mine', '--input', join(MINING, 'dataset.jsonl'), '--output', out, '--query-embeddings', queries, '--corpus-embeddings', documents, ...CASE_A);
    assert.equal(r.status, 0, r.stderr);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, golden.output.rows.length);
    rows.forEach((row, i) => {
      assert.deepEqual(Object.keys(row), golden.output.columns);
      assert.deepEqual(row, golden.output.rows[i]);
    });
    // Exact except the eight statistic lines (README §7: last digit may differ near a rounding boundary).
    const printed = r.stdout.split('\n');
    const expected = golden.stdout.split('\n');
    assert.equal(printed.length, expected.length);
    expected.forEach((line, i) => {
      if (/^(Mean|Median|Std|Min|25%|50%|75%|Max) /.test(line)) {
        const want = line.trim().split(/\s+/).slice(1).map(Number);
        const got = printed[i]!.trim().split(/\s+/).slice(1).map(Number);
        want.forEach((w, j) => assert.ok(Math.abs(w - got[j]!) <= 5e-5 + 1e-6, `${line} vs ${printed[i]}`));
      } else assert.equal(printed[i], line);
    });
  });
});

test('embtune mine --swift writes the tutorial\'s ms-swift records', () => {
  const golden = readFileSync(join(MINING, 'swift', 'v6.0.0', 'a_labeled_list.swift.jsonl'), 'utf8');
  withTables((dir, queries, documents) => {
    const out = join(dir, 'swift.jsonl');
    const r = embtune('mine', '--input', join(MINING, 'dataset.jsonl'), '--output', out, '--query-embeddings', queries, '--corpus-embeddings', documents, '--swift', '--quiet', ...CASE_A);
    assert.equal(r.status, 0, r.stderr);
    const parse = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(parse(readFileSync(out, 'utf8')), parse(golden));
    assert.doesNotMatch(r.stdout, /Metric|Skipped|Could not find/, '--quiet prints no statistics');
  });
});

test('embtune mine --swift writes what mine then convert --from st-… --to swift writes, for triplet and n-tuple output too', () => {
  withTables((dir, queries, documents) => {
    const parse = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { query: string; response: string; rejected_response: string[] });
    for (const [format, from] of [['triplet', 'st-triplet'], ['n-tuple', 'st'], ['labeled-list', 'st-labeled-list']] as const) {
      const flags = ['--input', join(MINING, 'dataset.jsonl'), '--query-embeddings', queries, '--corpus-embeddings', documents, '--quiet', ...CASE_A.slice(0, -1), format];
      const mined = join(dir, `${format}.jsonl`);
      const direct = join(dir, `${format}.swift.jsonl`);
      const converted = join(dir, `${format}.converted.jsonl`);
      assert.equal(embtune('mine', ...flags, '--output', mined).status, 0);
      const r = embtune('mine', ...flags, '--output', direct, '--swift');
      assert.equal(r.status, 0, r.stderr);
      const c = embtune('convert', '--from', from, '--to', 'swift', '--input', mined, '--output', converted);
      assert.equal(c.status, 0, c.stderr);
      assert.deepEqual(parse(direct), parse(converted), format);
      if (format === 'triplet') {
        // One record per (query, positive) holding every negative of the pair, not one per triplet row.
        const pairs = new Set(readFileSync(mined, 'utf8').trim().split('\n').map((l) => { const row = JSON.parse(l) as Record<string, string>; return `${row.prompt}\u0000${row.response}`; }));
        assert.equal(parse(direct).length, pairs.size);
        assert.ok(parse(direct).some((record) => record.rejected_response.length > 1));
      }
    }
    const refused = embtune('mine', '--input', join(MINING, 'dataset.jsonl'), '--query-embeddings', queries, '--corpus-embeddings', documents, ...CASE_A, '--output-scores', '--swift', '--output', join(dir, 'x.jsonl'));
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /--output-scores replaces by scores/);
  });
});

test('embtune mine names a text the precomputed table lacks, and refuses half a pair of tables', () => {
  withTables((dir, queries, documents) => {
    const partial = join(dir, 'partial.jsonl');
    writeFileSync(partial, readFileSync(documents, 'utf8').split('\n').slice(1).join('\n'));
    const r = embtune('mine', '--input', join(MINING, 'dataset.jsonl'), '--output', join(dir, 'x.jsonl'), '--query-embeddings', queries, '--corpus-embeddings', partial, ...CASE_A);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--corpus-embeddings \(.*partial\.jsonl\) has no embedding for 1 of the 113 texts needed: "咀嚼式/);
    const half = embtune('mine', '--input', join(MINING, 'dataset.jsonl'), '--output', join(dir, 'x.jsonl'), '--query-embeddings', queries);
    assert.equal(half.status, 2);
    assert.match(half.stderr, /go together/);
  });
});

test('embtune mine --anchor-column that is not a column is a usage error listing the columns', () => {
  withTables((dir, queries, documents) => {
    const r = embtune('mine', '--input', join(MINING, 'dataset.jsonl'), '--output', join(dir, 'x.jsonl'), '--query-embeddings', queries, '--corpus-embeddings', documents, '--anchor-column', 'question');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no column 'question'.*columns: prompt, response/);
  });
});

test('embtune mine --cache-folder: a second run over the same texts embeds nothing and mines the same rows (Parquet output)', async () => {
  const { parquetReadObjects } = await import('hyparquet');
  const dir = mkdtempSync(join(tmpdir(), 'embtune-mine-cache-'));
  try {
    const pairs = join(dir, 'pairs.jsonl');
    const lines = readFileSync(join(MINING, 'dataset.jsonl'), 'utf8').trim().split('\n').slice(0, 30);
    writeFileSync(pairs, lines.join('\n') + '\n');
    const args = (out: string) => ['mine', '--model', join(FIXTURES, 'models/qwen3-tiny'), '--input', pairs, '--output', out, '--cache-folder', join(dir, 'cache'), '--num-negatives', '2', '--output-format', 'labeled-list'];
    const first = embtune(...args(join(dir, 'first.parquet')));
    assert.equal(first.status, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /cache: \d+ of/);
    const second = embtune(...args(join(dir, 'second.parquet')));
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stderr, /cache: 30 of 30 query vectors/);
    assert.match(second.stderr, /cache: \d+ of \d+ document vectors/);
    assert.doesNotMatch(second.stderr, /embed documents|embed queries/, 'no embedding progress on the second run');
    const read = async (f: string) => parquetReadObjects({ file: await fileBuffer(join(dir, f)) });
    const [a, b] = [await read('first.parquet'), await read('second.parquet')];
    assert.ok(a.length > 0);
    assert.deepEqual(b, a);
    assert.deepEqual(Object.keys(a[0]!), ['prompt', 'response', 'labels']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function fileBuffer(path: string): Promise<ArrayBuffer> {
  const bytes = readFileSync(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}
