// Eval data sets: BEIR folders (titles, graded and TREC qrels), QA records (duplicates merged as
// mining does), and the held-out split of a training file — the very rows `embtune train` holds out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binaryRelevance, detectExampleFormat, heldOutRows, loadEvalDataset } from '../../src/eval/dataset.js';
import { loadTrainExamples, splitExamples } from '../../src/train/dataset.js';

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-eval-data-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

test('held-out rows are the ones embtune train holds out (same ratio, same data seed)', () =>
  withDir(async (dir) => {
    const file = join(dir, 'train.jsonl');
    const rows = Array.from({ length: 137 }, (_, i) => ({ query: `question ${i}`, response: `answer ${i % 120}`, rejected_response: [`negative ${i}`] }));
    writeFileSync(file, jsonl(rows));
    for (const [ratio, seed] of [[0.05, 42], [0.2, 7], [0.01, 0]] as const) {
      const trainHeldOut = splitExamples(await loadTrainExamples([file], { onError: 'stop' }), ratio, seed).evalSet;
      const data = await loadEvalDataset({ data: file, splitDatasetRatio: ratio, dataSeed: seed });
      assert.deepEqual(data.queries.texts, trainHeldOut.map((e) => e.query), `ratio ${ratio} seed ${seed}`);
      // The corpus: the held-out rows' own documents (positives and negatives), as train's in-loop eval.
      const docs = new Set(trainHeldOut.flatMap((e) => [e.positive, ...e.negatives]));
      assert.deepEqual(new Set(data.corpus.texts), docs);
      data.queries.ids.forEach((qid, i) => {
        const positive = trainHeldOut[i]!.positive;
        assert.deepEqual([...data.qrels.get(qid)!.keys()], [data.corpus.ids[data.corpus.texts.indexOf(positive)]]);
      });
    }
    assert.deepEqual(heldOutRows([1, 2, 3, 4], 0.1, 42).length, 1, 'at least one row');
    assert.throws(() => heldOutRows([1], 0.5, 42), /leaves no training rows/);
  }));

test('QA records: each question\'s answer is relevant; repeated answers are one document, repeated questions one query', () =>
  withDir(async (dir) => {
    const file = join(dir, 'qa.json');
    writeFileSync(file, JSON.stringify([
      { id: 1, question: '水稻怎么施肥？', answer: '分次施肥。', domain: { type: '农学' } },
      { id: 2, question: '小麦何时播种？', answer: '秋季。' },
      { id: 3, question: '玉米何时播种？', answer: '秋季。' },
      { id: 4, question: '水稻怎么施肥？', answer: '看苗施肥。' },
    ]));
    const data = await loadEvalDataset({ data: file });
    assert.deepEqual(data.queries.texts, ['水稻怎么施肥？', '小麦何时播种？', '玉米何时播种？']);
    assert.deepEqual(data.corpus.texts, ['分次施肥。', '秋季。', '看苗施肥。']);
    assert.deepEqual([...data.qrels.get('q0')!.keys()], ['d0', 'd2']);
    assert.deepEqual([...data.qrels.get('q1')!.keys()], ['d1']);
    assert.deepEqual([...data.qrels.get('q2')!.keys()], ['d1']);
    assert.equal(data.notes.length, 2);
    assert.match(data.notes.join('\n'), /1 repeated document texts are one document each/);
  }));

test('formats are detected from the first record', () => {
  assert.equal(detectExampleFormat({ query: 'q', response: 'r' }), 'swift');
  assert.equal(detectExampleFormat({ question: 'q', answer: 'a', id: 3 }), 'swift');
  assert.equal(detectExampleFormat({ messages: [], positive_messages: [] }), 'swift-messages');
  assert.equal(detectExampleFormat({ query: 'q', pos: ['p'] }), 'flag');
  assert.equal(detectExampleFormat({ anchor: 'q', positive: ['p'], labels: [1] }), 'st-labeled-list');
  assert.equal(detectExampleFormat({ anchor: 'q', positive: 'p' }), 'st');
});

test('BEIR: title + text, graded qrels (TREC format too), queries without qrels left out, unknown documents noted', () =>
  withDir(async (dir) => {
    mkdirSync(join(dir, 'qrels'));
    writeFileSync(join(dir, 'corpus.jsonl'), jsonl([{ _id: 'd1', title: 'Rice', text: 'blast' }, { _id: 2, title: '', text: 'wheat' }]));
    writeFileSync(join(dir, 'queries.jsonl'), jsonl([{ _id: 'q1', text: 'rice?' }, { _id: 'q2', text: 'wheat?' }, { _id: 'q3', text: 'none' }]));
    writeFileSync(join(dir, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq2\t2\t2\nq1\td1\t1\nq1\tgone\t1\nq2\td1\t0\n');
    const data = await loadEvalDataset({ data: dir });
    assert.deepEqual(data.corpus.texts, ['Rice blast', 'wheat']);
    assert.deepEqual(data.queries.ids, ['q1', 'q2'], "queries.jsonl's order; q3 has no qrels");
    assert.deepEqual(data.knownQueryIds, new Set(['q1', 'q2', 'q3']));
    assert.deepEqual([...data.qrels.get('q2')!], [['2', 2], ['d1', 0]]);
    assert.deepEqual(binaryRelevance(data.qrels).get('q2'), new Set(['2']));
    assert.match(data.notes[0]!, /1 judged document id is not in the corpus \("gone"\)/);
    const trec = join(dir, 'trec.txt');
    writeFileSync(trec, 'q1 0 d1 3\nq2 0 2 1\n');
    const other = await loadEvalDataset({ data: dir, qrelsFile: trec });
    assert.deepEqual([...other.qrels.get('q1')!], [['d1', 3]]);
    writeFileSync(trec, 'q1 d1\n');
    await assert.rejects(loadEvalDataset({ data: dir, qrelsFile: trec }), /trec\.txt:1: expected 3 columns/);
    writeFileSync(join(dir, 'queries.jsonl'), jsonl([{ _id: 'q1', text: 'a' }, { _id: 'q1', text: 'b' }]));
    await assert.rejects(loadEvalDataset({ data: dir }), /queries\.jsonl:2: the id 'q1' appears twice/);
    await assert.rejects(loadEvalDataset({ data: join(dir, 'nothing') }), /no such file or folder/);
  }));
