// Converting training data between sentence-transformers, ms-swift (≤3.8 and ≥3.9), FlagEmbedding
// and BEIR through one normalised form; the tutorial's labeled-list → ms-swift conversion against
// ../shared/fixtures/mining/swift (README §4.2) byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, SHARED } from '../helpers.js';
import { convertFile, convertRecords } from '../../src/data/convert.js';
import { EXAMPLE_FORMAT_NAMES, type ExampleFormat } from '../../src/data/examples.js';
import { readAllRecords, writeRecords } from '../../src/data/records.js';
import { parseColumnList, parseRename, runConvert } from '../../src/cli/convert.js';
import { tempDir } from './temp.js';

type RecordFormatName = Exclude<ExampleFormat, 'beir'>;
const RECORD_FORMATS = EXAMPLE_FORMAT_NAMES.filter((f): f is RecordFormatName => f !== 'beir');

/** Two examples in FlagEmbedding form (the closest to the normalised one). */
const FLAG = [
  { query: 'q1', pos: ['p1'], neg: ['n1', 'n2'] },
  { query: 'q2', pos: ['p2'], neg: ['n3', 'n1'] },
];

/** The same two examples, written by hand in every record format. */
const HAND_MADE: Record<RecordFormatName, Record<string, unknown>[]> = {
  flag: FLAG,
  st: [
    { anchor: 'q1', positive: 'p1', negative_1: 'n1', negative_2: 'n2' },
    { anchor: 'q2', positive: 'p2', negative_1: 'n3', negative_2: 'n1' },
  ],
  'st-triplet': [
    { anchor: 'q1', positive: 'p1', negative: 'n1' },
    { anchor: 'q1', positive: 'p1', negative: 'n2' },
    { anchor: 'q2', positive: 'p2', negative: 'n3' },
    { anchor: 'q2', positive: 'p2', negative: 'n1' },
  ],
  'st-labeled-list': [
    { anchor: 'q1', positive: ['p1', 'n1', 'n2'], labels: [1, 0, 0] },
    { anchor: 'q2', positive: ['p2', 'n3', 'n1'], labels: [1, 0, 0] },
  ],
  'st-labeled-pair': [
    { anchor: 'q1', positive: 'p1', label: 1 },
    { anchor: 'q1', positive: 'n1', label: 0 },
    { anchor: 'q1', positive: 'n2', label: 0 },
    { anchor: 'q2', positive: 'p2', label: 1 },
    { anchor: 'q2', positive: 'n3', label: 0 },
    { anchor: 'q2', positive: 'n1', label: 0 },
  ],
  swift: [
    { query: 'q1', response: 'p1', rejected_response: ['n1', 'n2'] },
    { query: 'q2', response: 'p2', rejected_response: ['n3', 'n1'] },
  ],
  'swift-messages': [
    {
      messages: [{ role: 'user', content: 'q1' }],
      positive_messages: [[{ role: 'user', content: 'p1' }]],
      negative_messages: [[{ role: 'user', content: 'n1' }], [{ role: 'user', content: 'n2' }]],
    },
    {
      messages: [{ role: 'user', content: 'q2' }],
      positive_messages: [[{ role: 'user', content: 'p2' }]],
      negative_messages: [[{ role: 'user', content: 'n3' }], [{ role: 'user', content: 'n1' }]],
    },
  ],
};

test('every record format decodes its hand-made records into the same examples, and encodes them back into those records', () => {
  for (const format of RECORD_FORMATS) {
    assert.deepEqual(convertRecords(HAND_MADE[format], format, 'flag').rows, FLAG, `${format} → flag`);
    assert.deepEqual(convertRecords(FLAG, 'flag', format).rows, HAND_MADE[format], `flag → ${format}`);
  }
});

test('every direction between the file formats converts through files (JSONL and Parquet) without losing anything', async (t) => {
  const { file, dir } = tempDir(t);
  for (const from of RECORD_FORMATS) {
    const input = file(`${from}.jsonl`);
    writeRecords(input, HAND_MADE[from], Object.keys(HAND_MADE[from][0]!));
    for (const to of [...RECORD_FORMATS, 'beir' as const]) {
      const extension = from.length % 2 === 0 ? 'parquet' : 'jsonl'; // both writers, alternately
      const output = to === 'beir' ? join(dir, `${from}-beir`) : file(`${from}-to-${to}.${extension}`);
      const report = await convertFile({ from, to, input, output });
      assert.equal(report.examples, 2, `${from} → ${to}: examples`);
      assert.equal(report.skipped.count, 0);
      if (to === 'beir') {
        const back = await convertFile({ from: 'beir', to: 'flag', input: output, output: file(`${from}-beir-back.jsonl`) });
        assert.equal(back.examples, 2);
        assert.deepEqual((await readAllRecords(file(`${from}-beir-back.jsonl`))).records.map((r) => r.record), FLAG, `${from} → beir → flag`);
        continue;
      }
      const written = (await readAllRecords(output)).records.map((r) => r.record);
      assert.deepEqual(written, HAND_MADE[to], `${from} → ${to}`);
    }
  }
});

test("the tutorial's conversion of mined labeled-list case a to ms-swift ≤3.8 equals the fixture byte for byte (v6.0.0 and v5.1.2)", async (t) => {
  const { file } = tempDir(t);
  for (const tag of ['v6.0.0', 'v5.1.2']) {
    const golden = JSON.parse(readFileSync(join(FIXTURES, 'mining', 'cases', tag, 'a_labeled_list.json'), 'utf8')) as { output: { columns: string[]; rows: Record<string, unknown>[] } };
    const mined = file(`mined-${tag}.jsonl`);
    writeRecords(mined, golden.output.rows, golden.output.columns);
    const output = file(`swift-${tag}.jsonl`);
    const report = await convertFile({ from: 'st-labeled-list', to: 'swift', input: mined, output });
    assert.equal(report.written, golden.output.rows.length);
    assert.equal(readFileSync(output, 'utf8'), readFileSync(join(FIXTURES, 'mining', 'swift', tag, 'a_labeled_list.swift.jsonl'), 'utf8'), tag);
  }
});

test('mined labeled-list case a re-encoded as triplets and n-tuples equals the library\'s own triplet and n-tuple outputs (cases b and c)', () => {
  const load = (name: string) => JSON.parse(readFileSync(join(FIXTURES, 'mining', 'cases', 'v6.0.0', `${name}.json`), 'utf8')) as { output: { columns: string[]; rows: Record<string, unknown>[] } };
  const mined = load('a_labeled_list').output.rows;
  const names = { anchorColumn: 'prompt', positiveColumn: 'response' };
  const triplets = convertRecords(mined, 'st-labeled-list', 'st-triplet', names);
  assert.deepEqual([triplets.columns, triplets.rows], [load('b_triplet').output.columns, load('b_triplet').output.rows]);
  // n-tuple keeps only rows with all 5 negatives: the others are skipped (and counted) here, dropped there.
  const tuples = convertRecords(mined, 'st-labeled-list', 'st', { ...names, onError: 'skip' });
  assert.deepEqual([tuples.columns, tuples.rows], [load('c_n_tuple').output.columns, load('c_n_tuple').output.rows]);
  assert.equal(tuples.skipped.count, mined.length - load('c_n_tuple').output.rows.length);
  assert.match(tuples.skipped.examples[0]!.message, /cannot be written as st: has \d negatives, but the n-tuple columns hold 5/);
});

test('several positives: one-positive formats get one record per positive; FlagEmbedding and labeled-pair keep one example', () => {
  const example = [{ query: 'q', pos: ['p1', 'p2'], neg: ['n'] }];
  assert.deepEqual(convertRecords(example, 'flag', 'swift').rows, [
    { query: 'q', response: 'p1', rejected_response: ['n'] },
    { query: 'q', response: 'p2', rejected_response: ['n'] },
  ]);
  const pairs = convertRecords(example, 'flag', 'st-labeled-pair').rows;
  assert.deepEqual(pairs.map((r) => r.label), [1, 1, 0]);
  assert.deepEqual(convertRecords(pairs, 'st-labeled-pair', 'flag').rows, example);
  assert.deepEqual(convertRecords([{ anchor: 'q', positive: ['p1', 'n', 'p2'], labels: [1, 0, 1] }], 'st-labeled-list', 'flag').rows, example);
});

test('reading follows each library\'s conventions: ms-swift column aliases, a system message folded as the Qwen3 template does, positional sentence-transformers columns', () => {
  assert.deepEqual(convertRecords([{ prompt: 'q', answer: 'a' }], 'swift', 'flag').rows, [{ query: 'q', pos: ['a'], neg: [] }]);
  assert.deepEqual(convertRecords([{ query: 'q', response: 'a', rejected_response: 'n' }], 'swift', 'flag').rows, [{ query: 'q', pos: ['a'], neg: ['n'] }]);
  const withSystem = {
    messages: [{ role: 'system', content: 'Find the answer.' }, { role: 'user', content: 'q' }],
    positive_messages: [[{ role: 'user', content: 'a' }]],
  };
  assert.deepEqual(convertRecords([withSystem], 'swift-messages', 'flag').rows, [{ query: 'Find the answer. q', pos: ['a'], neg: [] }]);
  // sentence-transformers reads columns by position; names do not matter, scores are dropped.
  assert.deepEqual(convertRecords([{ question: 'q', doc: 'a', hard: 'n', scores: [0.9, 0.5] }], 'st', 'flag').rows, [{ query: 'q', pos: ['a'], neg: ['n'] }]);
});

test('records a format cannot hold or that are malformed are named with their row, and skipped and counted on request', () => {
  const problems: [RecordFormatName, Record<string, unknown>, RegExp][] = [
    ['flag', { query: 'q', pos: [] }, /row 1: no positive text/],
    ['flag', { query: '', pos: ['p'] }, /row 1: 'query' is empty/],
    ['flag', { query: 'q', pos: ['p', 3] }, /row 1: 'pos'\[1\] must be a string, got a number/],
    ['swift', { query: 'q' }, /row 1: no response column \(looked for response, answer, .*; columns: query\)/],
    ['swift', { query: 'q', response: 'a', rejected_response: 'a' }, /'rejected_response' equals the response/],
    ['swift-messages', { messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'x' }], positive_messages: [] }, /must hold one user message .*got roles user, assistant/],
    ['st', { anchor: 'q' }, /needs at least two text columns/],
    ['st', { anchor: 'q', positive: 'p', label: 1 }, /has a 'label' column: read labeled data with --from st-labeled-pair/],
    ['st', { anchor: 'q', positive: 'n', score: 0.41 }, /numeric 'score' column .*do not say which texts are positive/],
    ['st-labeled-list', { anchor: 'q', positive: ['p', 'n'], labels: [1, 0.5] }, /labels\[1\] must be 1 or 0, got 0\.5 \(graded labels/],
    ['st-labeled-list', { anchor: 'q', positive: ['p', 'n'], scores: [0.9, 0.1] }, /has 'scores' instead of 'labels'/],
    ['st-labeled-pair', { anchor: 'q', positive: 'n', label: 0 }, /row 1: no positive text/],
  ];
  for (const [format, record, message] of problems) {
    assert.throws(() => convertRecords([record], format, 'flag', { source: 'in.jsonl' }), message, `${format}: ${JSON.stringify(record)}`);
    const skipped = convertRecords([record, HAND_MADE[format][0]!], format, 'flag', { onError: 'skip' });
    assert.equal(skipped.skipped.count, 1, `${format}: skipped`);
  }
  assert.throws(() => convertRecords([{ query: 'q', pos: ['p'] }], 'flag', 'st-triplet'), /cannot be written as st-triplet: has no negatives, and a triplet needs one/);
});

test('a labeled-pair group without a positive is reported at its first row, and the next group is still read', () => {
  const rows = [
    { anchor: 'q0', positive: 'n0', label: 0 },
    { anchor: 'q0', positive: 'n1', label: 0 },
    { anchor: 'q1', positive: 'p1', label: 1 },
  ];
  assert.throws(() => convertRecords(rows, 'st-labeled-pair', 'flag', { source: 'pairs.jsonl' }), /pairs\.jsonl: row 1: no positive text/);
  const result = convertRecords(rows, 'st-labeled-pair', 'flag', { onError: 'skip' });
  assert.deepEqual([result.rows, result.skipped.count], [[{ query: 'q1', pos: ['p1'], neg: [] }], 1]);
});

test('BEIR SciFact (corpus in parts, qrels/<split>.tsv): one example per query with its cited abstracts, titles prefixed', async (t) => {
  const { file } = tempDir(t);
  const input = join(SHARED, 'data', 'en', 'scifact', 'beir');
  const output = file('scifact-test.jsonl');
  const report = await convertFile({ from: 'beir', to: 'flag', input, output });
  // PROVENANCE.md: test qrels 339 for 300 queries (all positive).
  assert.equal(report.examples, 300);
  const rows = (await readAllRecords(output)).records.map((r) => r.record as { query: string; pos: string[]; neg: string[] });
  assert.equal(rows.reduce((n, r) => n + r.pos.length, 0), 339);
  assert.ok(rows.every((r) => r.neg.length === 0));
  // The first test qrel is 1 → 31715818 (PROVENANCE.md); find that abstract in whichever part holds it.
  const parts = ['corpus.part1.jsonl', 'corpus.part2.jsonl', 'corpus.part3.jsonl'].flatMap((name) =>
    readFileSync(join(input, name), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as { _id: string; title: string; text: string }),
  );
  const cited = parts.find((d) => d._id === '31715818')!;
  assert.ok(cited, 'the cited abstract exists');
  assert.equal(rows[0]!.pos[0], `${cited.title} ${cited.text}`);
  await assert.rejects(convertFile({ from: 'beir', to: 'flag', input, output, beir: { split: 'dev' } }), /no qrels for split 'dev' \(splits: test, train\)/);
  const untitled = await convertFile({ from: 'beir', to: 'flag', input, output, beir: { split: 'train', includeTitle: false } });
  assert.equal(untitled.examples, 809, 'train qrels: 809 queries');
  assert.equal(((await readAllRecords(output)).records[0]!.record as { pos: string[] }).pos.some((p) => p.startsWith(cited.title)), false);
});

test('BEIR AgriEval (qrels_test.tsv beside the files) converts to the ms-swift records of its 2,167 questions', async (t) => {
  const { file } = tempDir(t);
  const output = file('agri.parquet');
  const report = await convertFile({ from: 'beir', to: 'swift', input: join(SHARED, 'data', 'zh_agri', 'agrieval', 'beir'), output });
  assert.deepEqual([report.examples, report.written], [2167, 2167]);
  const first = (await readAllRecords(output)).records[0]!.record;
  assert.equal(first.query, '水产养殖动物病害防治过程中有哪些给药方法，分别简述它们在使用上的优缺点。');
  assert.deepEqual(first.rejected_response, []);
});

test('BEIR qrels naming an unknown document or query are named by line, and skipped on request', async (t) => {
  const { dir, file } = tempDir(t);
  file('corpus.jsonl', '{"_id": "d1", "title": "", "text": "doc one"}\n');
  file('queries.jsonl', '{"_id": "q1", "text": "query one"}\n{"_id": "q2", "text": "query two"}\n');
  file('qrels_test.tsv', 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td9\t1\nq3\td1\t1\n');
  const output = file('out.jsonl');
  await assert.rejects(convertFile({ from: 'beir', to: 'flag', input: dir, output }), /qrels_test\.tsv:3: document 'd9' is not in the corpus/);
  const report = await convertFile({ from: 'beir', to: 'flag', input: dir, output, onError: 'skip' });
  assert.deepEqual([report.examples, report.skipped.count], [1, 2]);
  assert.match(report.skipped.examples[1]!.message, /qrels_test\.tsv:4: query 'q3' is not in queries\.jsonl/);
});

test('FlagEmbedding real data (text2vec, 2,701 rows with 10 negatives) converts to n-tuples of width 10', async (t) => {
  const { file } = tempDir(t);
  const output = file('text2vec.parquet');
  const report = await convertFile({ from: 'flag', to: 'st', input: join(SHARED, 'data', 'zh_general', 'text2vec', 'bge_finetune_data.jsonl'), output, onError: 'skip' });
  assert.equal(report.examples, 2701);
  const { records, columns } = await readAllRecords(output);
  assert.deepEqual(columns, ['anchor', 'positive', ...Array.from({ length: 10 }, (_, i) => `negative_${i + 1}`)]);
  assert.equal(records.length + report.skipped.count, report.examples, 'every example is written or counted');
});

test('embtune convert\'s library function: flags for columns and renaming, the summary and the skipped count it prints', async (t) => {
  const { file } = tempDir(t);
  const input = file('tutorial.parquet');
  writeRecords(input, [{ id: 1, prompt: 'q1', answer: 'a1' }, { id: 2, prompt: 'q2', answer: '' }], ['id', 'prompt', 'answer']);
  const output = file('out.jsonl');
  const lines: string[] = [];
  const report = await runConvert(
    { from: 'swift', to: 'swift', input, output, onError: 'skip', columns: parseColumnList('query,response'), rename: parseRename('prompt=query, answer=response'), jsonStyle: 'python', title: true },
    (line) => lines.push(line),
  );
  assert.equal(report.written, 1);
  assert.equal(readFileSync(output, 'utf8'), '{"query": "q1", "response": "a1", "rejected_response": []}\n');
  assert.equal(lines[0], `converted 1 example (swift) → 1 record (swift) → ${output}`);
  assert.match(lines[1]!, /skipped 1 malformed records \(first: .*tutorial\.parquet: row 2: 'response' is empty\)/);
  assert.throws(() => parseRename('prompt'), /--rename takes old=new pairs/);
  assert.throws(() => parseRename('a=x,b=x'), /gives two columns the name 'x'/);
  assert.throws(() => parseColumnList('a,,b'), /--columns takes names separated by commas/);
  await assert.rejects(runConvert({ from: 'flag', to: 'swift', input, output: input, onError: 'stop', jsonStyle: 'python', title: true }), /would replace the input/);
});
