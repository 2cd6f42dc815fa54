/**
 * What `embtune eval` evaluates on: queries and a corpus (ids and texts) and graded qrels, from
 *
 * - a BEIR folder (corpus.jsonl or corpus.part*.jsonl `{_id, title, text}`, queries.jsonl
 *   `{_id, text}`, qrels/<split>.tsv or qrels_<split>.tsv — found by src/data/beir.ts), or such a
 *   folder with another qrels file (`qrelsFile`: BEIR TSV with its header, 3 tab-separated
 *   columns, or TREC's `qid iter docid rel`). A document's text is `title + ' ' + text` when it
 *   has a title (MTEB's join, as src/data/beir.ts);
 * - question–answer data in any record format src/data reads (JSONL, JSON, CSV/TSV, Parquet) and
 *   any example format it decodes (ms-swift ≤ 3.8 and ≥ 3.9, FlagEmbedding, sentence-transformers
 *   pairs / labeled lists), detected from the first record: each question's own answers are
 *   relevant (score 1); identical answer texts are one document and identical questions one query
 *   (their answers pooled), as mining de-duplicates its corpus (REFERENCE §2.2). Negatives, when
 *   the records have them, join the corpus as non-relevant documents;
 * - the held-out part of a training file (`splitDatasetRatio`, `dataSeed`): exactly the rows
 *   `embtune train --split-dataset-ratio R --data-seed S` holds out (REFERENCE §3.4:
 *   max(floor(n·R), 1) rows, datasets' `train_test_split` with NumPy's permutation, src/data/split.ts),
 *   evaluated against the held-out rows' own documents, as train's in-loop retrieval metrics are.
 *
 * Problems are errors naming the file and line: a duplicated id, a qrels line naming a query that
 * is not in queries.jsonl, an empty corpus. A qrels document id absent from the corpus is kept
 * (sentence-transformers counts it in recall/NDCG/MAP denominators; it can never be retrieved) and
 * reported in `notes`.
 */
import { createReadStream, existsSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { locateBeir } from '../data/beir.js';
import { DataError } from '../data/jsonl.js';
import { readRecords, type DataRecord } from '../data/records.js';
import { exampleDecoder, RecordProblem, type ExampleFormat, type RetrievalExample } from '../data/examples.js';
import { trainTestSplit } from '../data/split.js';
import type { GradedQrels } from './mteb.js';

/** Ids and texts, row i of each together. */
export interface TextItems {
  ids: string[];
  texts: string[];
}

export interface EvalDataset {
  /** Where it came from, for reports (e.g. `beir:…/agrieval/beir (split test)`). */
  source: string;
  /** The queries that have qrels, in the input's order. */
  queries: TextItems;
  /** Every query id of the input (precomputed query vectors may cover them all). */
  knownQueryIds: Set<string>;
  corpus: TextItems;
  /** Graded judgements: query id → document id → relevance. */
  qrels: Map<string, Map<string, number>>;
  /** Things the user should know (ids in the qrels that are not in the corpus, merged duplicates). */
  notes: string[];
}

export interface DatasetSpec {
  /** A BEIR folder, or a data file of question–answer records. */
  data: string;
  /** BEIR: the qrels split (default `test`, else the only one). */
  split?: string;
  /** BEIR: a qrels file to use instead of the folder's. */
  qrelsFile?: string;
  /** Records: their example format (default: detected from the first record). */
  format?: Exclude<ExampleFormat, 'beir'>;
  /** Records: evaluate only the rows `embtune train --split-dataset-ratio` holds out (0 or absent: every row). */
  splitDatasetRatio?: number;
  /** The seed of that split (default 42, train's `--data-seed` default). */
  dataSeed?: number;
  /** Records: read a .tsv with RFC 4180 quoting (default: tab-split, unquoted). */
  tsvQuoting?: boolean;
}

/** The relevant documents of each query as sentence-transformers sees them: relevance > 0. */
export function binaryRelevance(qrels: GradedQrels): Map<string, Set<string>> {
  return new Map([...qrels].map(([qid, docs]) => [qid, new Set([...docs].filter(([, rel]) => rel > 0).map(([id]) => id))]));
}

export async function loadEvalDataset(spec: DatasetSpec): Promise<EvalDataset> {
  if (!existsSync(spec.data)) throw new Error(`--data ${spec.data}: no such file or folder`);
  const isFolder = readdirSafe(spec.data) !== undefined;
  if (isFolder) {
    if (spec.splitDatasetRatio) throw new Error(`--split-dataset-ratio splits a training file of records; ${spec.data} is a folder (BEIR: choose the split with --split)`);
    return loadBeirDataset(spec.data, spec.split, spec.qrelsFile);
  }
  if (spec.qrelsFile) throw new Error(`--qrels goes with a BEIR folder (--data DIR); ${spec.data} is a file of records, whose own answers are the relevant documents`);
  return loadRecordDataset(spec);
}

function readdirSafe(path: string): string[] | undefined {
  try {
    return readdirSync(path);
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ BEIR

async function loadBeirDataset(folder: string, split: string | undefined, qrelsFile: string | undefined): Promise<EvalDataset> {
  let corpusFiles: string[];
  let queriesFile: string;
  let qrelsPath: string;
  let source: string;
  if (qrelsFile) {
    corpusFiles = beirCorpusFiles(folder);
    queriesFile = join(folder, 'queries.jsonl');
    if (!existsSync(queriesFile)) throw new DataError(folder, undefined, 'no queries.jsonl in this BEIR folder');
    if (!existsSync(qrelsFile)) throw new Error(`--qrels ${qrelsFile}: no such file`);
    qrelsPath = qrelsFile;
    source = `beir:${folder} (qrels ${qrelsFile})`;
  } else {
    const files = locateBeir(folder, split);
    corpusFiles = files.corpus;
    queriesFile = files.queries;
    qrelsPath = files.qrels;
    source = `beir:${folder} (split ${files.split})`;
  }
  const corpus: TextItems = { ids: [], texts: [] };
  const seenDocs = new Set<string>();
  for (const file of corpusFiles) await readIdTexts(file, true, corpus, seenDocs);
  if (corpus.ids.length === 0) throw new DataError(corpusFiles[0]!, undefined, 'the corpus is empty: there is nothing to retrieve');
  const allQueries: TextItems = { ids: [], texts: [] };
  await readIdTexts(queriesFile, false, allQueries, new Set());
  const qrels = await readQrels(qrelsPath, new Set(allQueries.ids));
  // Queries keep queries.jsonl's order (the evaluator's dict order); only those with qrels are used.
  const queries: TextItems = { ids: [], texts: [] };
  allQueries.ids.forEach((id, i) => {
    if (qrels.has(id)) {
      queries.ids.push(id);
      queries.texts.push(allQueries.texts[i]!);
    }
  });
  const notes: string[] = [];
  const unknown = new Set<string>();
  for (const docs of qrels.values()) for (const id of docs.keys()) if (!seenDocs.has(id)) unknown.add(id);
  if (unknown.size > 0) {
    const shown = [...unknown].slice(0, 5).map((id) => JSON.stringify(id)).join(', ');
    notes.push(`${qrelsPath}: ${unknown.size} judged document id${unknown.size === 1 ? ' is' : 's are'} not in the corpus (${shown}${unknown.size > 5 ? ', …' : ''}); they count as relevant but can never be retrieved, as in sentence-transformers`);
  }
  return { source, queries, knownQueryIds: new Set(allQueries.ids), corpus, qrels, notes };
}

function beirCorpusFiles(folder: string): string[] {
  const single = join(folder, 'corpus.jsonl');
  if (existsSync(single)) return [single];
  const parts = (readdirSafe(folder) ?? [])
    .map((name) => ({ name, part: /^corpus\.part(\d+)\.jsonl$/.exec(name)?.[1] }))
    .filter((p): p is { name: string; part: string } => p.part !== undefined)
    .sort((a, b) => Number(a.part) - Number(b.part));
  if (parts.length === 0) throw new DataError(folder, undefined, 'no corpus.jsonl (or corpus.part1.jsonl, …) in this BEIR folder');
  return parts.map((p) => join(folder, p.name));
}

function idOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

async function readIdTexts(file: string, withTitle: boolean, into: TextItems, seen: Set<string>): Promise<void> {
  for await (const { line, record } of readRecords(file, { format: 'jsonl', allowEmpty: true })) {
    const id = idOf(record._id);
    const text = record.text;
    if (id === undefined) throw new DataError(file, line, "no '_id' (a non-empty string or a number)");
    if (typeof text !== 'string') throw new DataError(file, line, `'${id}' has no string 'text'`);
    if (seen.has(id)) throw new DataError(file, line, `the id '${id}' appears twice`);
    seen.add(id);
    const title = withTitle && typeof record.title === 'string' ? record.title.trim() : '';
    into.ids.push(id);
    into.texts.push(title ? `${title} ${text}`.trim() : text);
  }
}

/**
 * Qrels lines: `query-id corpus-id score` (tab-separated, BEIR's header optional) or TREC's
 * `qid iter docid rel` (whitespace-separated). A repeated (query, document) pair: the first counts.
 */
async function readQrels(file: string, knownQueries: ReadonlySet<string>): Promise<Map<string, Map<string, number>>> {
  const qrels = new Map<string, Map<string, number>>();
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const raw of lines) {
    line++;
    const text = (line === 1 ? raw.replace(/^\uFEFF/, '') : raw).trim();
    if (text === '') continue;
    const fields = text.includes('\t') ? text.split('\t').map((f) => f.trim()) : text.split(/\s+/);
    if (line === 1 && fields.length >= 3 && !Number.isFinite(Number(fields[fields.length - 1]))) continue; // a header
    let qid: string, docId: string, rel: string;
    if (fields.length === 3) [qid, docId, rel] = fields as [string, string, string];
    else if (fields.length === 4) [qid, , docId, rel] = fields as [string, string, string, string];
    else throw new DataError(file, line, `expected 3 columns (query-id, corpus-id, score) or TREC's 4 (qid, iter, docid, rel), got ${fields.length}`);
    const score = Number(rel);
    if (!Number.isFinite(score)) throw new DataError(file, line, `the score '${rel}' is not a number`);
    if (!knownQueries.has(qid)) throw new DataError(file, line, `query '${qid}' is not in queries.jsonl (the qrels and the queries must come from the same data set)`);
    let docs = qrels.get(qid);
    if (!docs) qrels.set(qid, (docs = new Map()));
    if (!docs.has(docId)) docs.set(docId, score);
  }
  if (qrels.size === 0) throw new DataError(file, undefined, 'no qrels lines: no query has a judged document');
  return qrels;
}

// ------------------------------------------------------------------ records (QA pairs, training data)

/** The example format of a record, from its fields (`--data-format` overrides). */
export function detectExampleFormat(record: Record<string, unknown>): Exclude<ExampleFormat, 'beir'> {
  if ('messages' in record) return 'swift-messages';
  if ('pos' in record) return 'flag';
  if ('labels' in record) return 'st-labeled-list';
  if ('label' in record) return 'st-labeled-pair';
  const swiftQuery = ['query', 'prompt', 'input', 'instruction', 'question', 'problem'].some((k) => typeof record[k] === 'string');
  const swiftResponse = ['response', 'answer', 'output', 'targets', 'target', 'answer_key', 'answers', 'solution'].some((k) => record[k] !== undefined);
  return swiftQuery && swiftResponse ? 'swift' : 'st';
}

async function loadRecordDataset(spec: DatasetSpec): Promise<EvalDataset> {
  const examples: RetrievalExample[] = [];
  let format = spec.format;
  let decoder: ReturnType<typeof exampleDecoder> | undefined;
  const push = (record: DataRecord | undefined) => {
    try {
      const out = record ? decoder!.push(record) : decoder!.end();
      examples.push(...out.map((e) => e.value));
    } catch (err) {
      if (err instanceof RecordProblem) throw new DataError(spec.data, record ? (record.line !== undefined ? { line: record.line } : { row: record.row }) : undefined, `${err.message} (read as ${format}; choose the format with --data-format)`);
      throw err;
    }
  };
  for await (const record of readRecords(spec.data, { tsvQuoting: spec.tsvQuoting })) {
    if (!decoder) {
      format ??= detectExampleFormat(record.record);
      decoder = exampleDecoder(format);
    }
    push(record);
  }
  if (!decoder) throw new DataError(spec.data, undefined, 'no records');
  push(undefined);
  const ratio = spec.splitDatasetRatio ?? 0;
  let rows = examples;
  let source = `${spec.data} (${format}, ${examples.length.toLocaleString('en-US')} rows)`;
  if (ratio > 0) {
    rows = heldOutRows(examples, ratio, spec.dataSeed ?? 42);
    source = `${spec.data} (${format}): the ${rows.length.toLocaleString('en-US')} of ${examples.length.toLocaleString('en-US')} rows held out by --split-dataset-ratio ${ratio} --data-seed ${spec.dataSeed ?? 42}`;
  }
  return datasetOfExamples(rows, source);
}

/**
 * The rows `embtune train` holds out for `--split-dataset-ratio ratio --data-seed seed`
 * (src/train/dataset.ts `splitExamples`, REFERENCE §3.4): max(floor(n·ratio), 1) rows, the test
 * side of datasets' train_test_split with that seed.
 */
export function heldOutRows<T>(rows: readonly T[], ratio: number, seed: number): T[] {
  if (!(ratio > 0 && ratio < 1)) throw new Error(`--split-dataset-ratio must be in (0, 1), got ${ratio}`);
  const count = Math.max(Math.floor(rows.length * ratio), 1);
  if (count >= rows.length) throw new Error(`--split-dataset-ratio ${ratio} leaves no training rows out of ${rows.length}, so train would have refused it`);
  return trainTestSplit(rows, { testSize: { count }, seed }).test;
}

/** Queries, de-duplicated documents and qrels of retrieval examples (see the file comment). */
export function datasetOfExamples(examples: readonly RetrievalExample[], source: string): EvalDataset {
  const queryIds = new Map<string, string>();
  const docIds = new Map<string, string>();
  const qrels = new Map<string, Map<string, number>>();
  const docId = (text: string) => {
    let id = docIds.get(text);
    if (id === undefined) docIds.set(text, (id = `d${docIds.size}`));
    return id;
  };
  let repeatedQueries = 0;
  for (const example of examples) {
    let qid = queryIds.get(example.query);
    if (qid === undefined) queryIds.set(example.query, (qid = `q${queryIds.size}`));
    else repeatedQueries++;
    let judged = qrels.get(qid);
    if (!judged) qrels.set(qid, (judged = new Map()));
    for (const text of example.positives) judged.set(docId(text), 1);
    for (const text of example.negatives) docId(text);
  }
  if (docIds.size === 0) throw new Error(`${source}: no documents`);
  const notes: string[] = [];
  const documents = examples.reduce((n, e) => n + e.positives.length + e.negatives.length, 0);
  if (documents > docIds.size) notes.push(`${(documents - docIds.size).toLocaleString('en-US')} repeated document texts are one document each (${docIds.size.toLocaleString('en-US')} distinct)`);
  if (repeatedQueries > 0) notes.push(`${repeatedQueries.toLocaleString('en-US')} repeated questions are one query each, with their answers pooled (${queryIds.size.toLocaleString('en-US')} distinct)`);
  return {
    source,
    queries: { ids: [...queryIds.values()], texts: [...queryIds.keys()] },
    knownQueryIds: new Set(queryIds.values()),
    corpus: { ids: [...docIds.values()], texts: [...docIds.keys()] },
    qrels,
    notes,
  };
}
