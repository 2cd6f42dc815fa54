/**
 * split: the data as (question, document) examples, divided by datasets' train_test_split (NumPy's
 * permutation, src/data/split.ts) into the rows that train and the questions held out for
 * evaluation. A BEIR folder gives one example per query (its relevant documents); a pairs file one
 * per row (REFERENCE §1: the tutorial splits the parquet rows with test_size 0.95, seed 42).
 *
 * Writes `train.jsonl` ({query, response} rows for mining; one row per positive), the held-out
 * pairs `heldout.jsonl` (the trainer's eval set), `documents.jsonl` ({_id, title, text}, for stage
 * one's weak pairs), and the held-out set as a BEIR folder `heldout/` whose corpus is every distinct document of the data
 * (duplicate texts are one document, as mining treats them), so the held-out questions are
 * searched among all documents, including the ones training saw with other questions.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { locateBeir, readBeir } from '../../data/beir.js';
import { SkipLog, readRecords, writeRecords } from '../../data/records.js';
import { trainTestSplit } from '../../data/split.js';
import { writeFileAtomic } from '../../formats/atomic_write.js';
import type { PipelineConfig } from '../config.js';
import type { StageDefinition, StageOutputs } from '../stage.js';

export interface QaExample {
  query: string;
  positives: string[];
}

export interface SplitStatistics {
  examples: number;
  trainExamples: number;
  trainRows: number;
  heldOutQueries: number;
  documents: number;
  meanQueryChars: number;
  meanDocumentChars: number;
}

export const splitStage: StageDefinition = {
  name: 'split',
  needs: () => [],
  enabled: () => true,
  section: (c) => ({ ...c.data }),
  inputs: (c) => [c.data.beir ?? c.data.pairs!],
  async run(ctx) {
    const c = ctx.config;
    const all = await readExamples(c);
    const examples = c.data.maxExamples !== undefined ? all.slice(0, c.data.maxExamples) : all;
    if (examples.length < 2) throw new Error(`split: ${c.data.beir ?? c.data.pairs} has ${examples.length} example(s); at least 2 are needed to hold some out`);
    const testSize = c.data.testSize < 1 ? { fraction: c.data.testSize } : { count: c.data.testSize };
    const { train, test } = trainTestSplit(examples, { testSize, seed: c.data.seed });
    const heldOut = c.data.maxEvalQueries !== undefined ? test.slice(0, c.data.maxEvalQueries) : test;
    const trainRows = train.flatMap((e) => e.positives.map((p) => ({ query: e.query, response: p })));
    writeRecords(join(ctx.dir, 'train.jsonl'), trainRows, ['query', 'response']);
    const documents = distinctDocuments(examples);
    writeRecords(join(ctx.dir, 'documents.jsonl'), await documentRecords(c, documents), ['_id', 'title', 'text']);
    writeHeldOut(join(ctx.dir, 'heldout'), heldOut, documents);
    const heldOutRows = heldOut.flatMap((e) => e.positives.map((p) => ({ query: e.query, response: p })));
    writeRecords(join(ctx.dir, 'heldout.jsonl'), heldOutRows, ['query', 'response']);
    const statistics: SplitStatistics = {
      examples: examples.length,
      trainExamples: train.length,
      trainRows: trainRows.length,
      heldOutQueries: heldOut.length,
      documents: documents.length,
      meanQueryChars: mean(examples.map((e) => [...e.query].length)),
      meanDocumentChars: mean(documents.map((d) => [...d].length)),
    };
    ctx.say(`split: ${statistics.examples} examples → ${statistics.trainExamples} train (${statistics.trainRows} rows), ${statistics.heldOutQueries} held-out questions over ${statistics.documents} documents`);
    return { train: 'train.jsonl', heldout: 'heldout', heldoutPairs: 'heldout.jsonl', documents: 'documents.jsonl', statistics } satisfies StageOutputs;
  },
};

async function readExamples(c: PipelineConfig): Promise<QaExample[]> {
  const out: QaExample[] = [];
  if (c.data.beir) {
    const skipped = new SkipLog();
    for await (const { value } of readBeir(c.data.beir, { split: c.data.split }, skipped)) out.push({ query: value.query, positives: value.positives });
    return out;
  }
  const file = c.data.pairs!;
  const { queryColumn, positiveColumn } = c.data;
  for await (const { record, ...at } of readRecords(file)) {
    const q = record[queryColumn];
    const p = record[positiveColumn];
    const where = 'line' in at ? `line ${String(at.line)}` : `row ${String((at as { row?: number }).row)}`;
    if (typeof q !== 'string') throw new Error(`${file}: ${where}: no string column '${queryColumn}' (set data.query_column; fields: ${Object.keys(record).join(', ')})`);
    if (typeof p !== 'string') throw new Error(`${file}: ${where}: no string column '${positiveColumn}' (set data.positive_column; fields: ${Object.keys(record).join(', ')})`);
    out.push({ query: q, positives: [p] });
  }
  return out;
}

/**
 * The documents with their titles, for stage one's weak pairs: a BEIR corpus as it is (every
 * document, judged or not), else the distinct answers without titles.
 */
async function documentRecords(c: PipelineConfig, documents: readonly string[]): Promise<Record<string, unknown>[]> {
  if (!c.data.beir || c.data.maxExamples !== undefined) return documents.map((text, i) => ({ _id: `d${i}`, title: '', text }));
  const out: Record<string, unknown>[] = [];
  for (const file of locateBeir(c.data.beir, c.data.split).corpus) {
    for await (const { record } of readRecords(file)) out.push({ _id: String(record._id), title: typeof record.title === 'string' ? record.title : '', text: String(record.text ?? '') });
  }
  return out;
}

/** Every document text once, in first-seen order. */
export function distinctDocuments(examples: readonly QaExample[]): string[] {
  const seen = new Set<string>();
  for (const e of examples) for (const p of e.positives) seen.add(p);
  return [...seen];
}

/** corpus.jsonl (ids d0, d1, … in first-seen order), queries.jsonl (q0, …) and qrels/test.tsv. */
function writeHeldOut(folder: string, heldOut: readonly QaExample[], documents: readonly string[]): void {
  mkdirSync(join(folder, 'qrels'), { recursive: true });
  const docId = new Map(documents.map((d, i) => [d, `d${i}`]));
  writeRecords(join(folder, 'corpus.jsonl'), documents.map((text, i) => ({ _id: `d${i}`, title: '', text })), ['_id', 'title', 'text']);
  writeRecords(join(folder, 'queries.jsonl'), heldOut.map((e, i) => ({ _id: `q${i}`, text: e.query })), ['_id', 'text']);
  const lines = ['query-id\tcorpus-id\tscore\n', ...heldOut.flatMap((e, i) => e.positives.map((p) => `q${i}\t${docId.get(p)!}\t1\n`))];
  writeFileAtomic(join(folder, 'qrels', 'test.tsv'), (write) => write(Buffer.from(lines.join(''), 'utf8')));
}

function mean(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}
