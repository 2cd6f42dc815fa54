/**
 * BEIR folders as retrieval examples. A BEIR data set is a folder with
 *   corpus.jsonl   {"_id", "title", "text", ...}   (here also corpus.part1.jsonl, corpus.part2.jsonl, …,
 *                                                   read in order — ../shared/data/en/scifact/beir is split so)
 *   queries.jsonl  {"_id", "text", ...}
 *   qrels/<split>.tsv  query-id <TAB> corpus-id <TAB> score, with that header (also qrels_<split>.tsv)
 * Reading: one example per query, in the order the qrels first name it; documents with score > 0
 * are its positives and those judged 0 (or less) its negatives, in qrels order. A document's text is
 * `title + ' ' + text` when it has a title (as MTEB joins them), else its text.
 * Writing: the same layout; ids are q0, q1, … and d0, d1, … (texts de-duplicated), positives get
 * score 1 and negatives score 0.
 *
 * The corpus is held in memory (a Map from id to text) while the qrels are read.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';
import type { Located, RetrievalExample } from './examples.js';
import { DataError } from './jsonl.js';
import { readRecords, writeRecords, type SkipLog } from './records.js';

export interface BeirReadOptions {
  /** Which qrels to read (default: 'test' if present, else the only split). */
  split?: string;
  /** Prefix a document's title to its text (default true). */
  includeTitle?: boolean;
  /** 'stop' (default) or 'skip' malformed lines and qrels that name unknown ids. */
  onError?: 'stop' | 'skip';
}

export interface BeirFiles {
  corpus: string[];
  queries: string;
  qrels: string;
  split: string;
}

function qrelsFiles(folder: string): Map<string, string> {
  const splits = new Map<string, string>();
  const qrelsFolder = join(folder, 'qrels');
  if (existsSync(qrelsFolder) && statSync(qrelsFolder).isDirectory()) {
    for (const name of readdirSync(qrelsFolder)) if (name.endsWith('.tsv')) splits.set(name.slice(0, -4), join(qrelsFolder, name));
  }
  for (const name of readdirSync(folder)) {
    const match = /^qrels_(.+)\.tsv$/.exec(name);
    if (match) splits.set(match[1]!, join(folder, name));
  }
  return splits;
}

function corpusFiles(folder: string): string[] {
  const single = join(folder, 'corpus.jsonl');
  if (existsSync(single)) return [single];
  const parts = readdirSync(folder)
    .map((name) => ({ name, part: /^corpus\.part(\d+)\.jsonl$/.exec(name)?.[1] }))
    .filter((p): p is { name: string; part: string } => p.part !== undefined)
    .sort((a, b) => Number(a.part) - Number(b.part));
  return parts.map((p) => join(folder, p.name));
}

/** Finds the files of a BEIR folder, or says what is missing. */
export function locateBeir(folder: string, split?: string): BeirFiles {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new DataError(folder, undefined, 'a BEIR input must be a folder (with corpus.jsonl, queries.jsonl and qrels/<split>.tsv)');
  const corpus = corpusFiles(folder);
  if (corpus.length === 0) throw new DataError(folder, undefined, 'no corpus.jsonl (or corpus.part1.jsonl, …) in this BEIR folder');
  const queries = join(folder, 'queries.jsonl');
  if (!existsSync(queries)) throw new DataError(folder, undefined, 'no queries.jsonl in this BEIR folder');
  const splits = qrelsFiles(folder);
  const available = [...splits.keys()].sort();
  if (available.length === 0) throw new DataError(folder, undefined, 'no qrels (qrels/<split>.tsv or qrels_<split>.tsv) in this BEIR folder');
  const chosen = split ?? (splits.has('test') ? 'test' : available.length === 1 ? available[0]! : undefined);
  if (chosen === undefined) throw new DataError(folder, undefined, `several qrels splits (${available.join(', ')}): choose one`);
  const qrels = splits.get(chosen);
  if (!qrels) throw new DataError(folder, undefined, `no qrels for split '${chosen}' (splits: ${available.join(', ')})`);
  return { corpus, queries, qrels, split: chosen };
}

function idOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/** Reads {_id, text[, title]} records into a Map from id to text. */
async function readIdTexts(file: string, options: BeirReadOptions, skipped: SkipLog, withTitle: boolean, into: Map<string, string>): Promise<void> {
  const reader = readRecords(file, { format: 'jsonl', onError: options.onError });
  for await (const { line, record } of reader) {
    const id = idOf(record._id);
    const text = record.text;
    const title = withTitle && typeof record.title === 'string' ? record.title.trim() : '';
    const problem =
      id === undefined ? "no '_id' (a non-empty string)" : typeof text !== 'string' ? "no string 'text'" : into.has(id) ? `the id '${id}' appears twice` : undefined;
    if (problem) {
      fail(new DataError(file, line, problem), options, skipped);
      continue;
    }
    into.set(id!, title ? `${title} ${text as string}`.trim() : (text as string));
  }
  skipped.merge(reader.skipped);
}

function fail(error: DataError, options: BeirReadOptions, skipped: SkipLog): void {
  if (options.onError === 'skip') skipped.add(error);
  else throw error;
}

/** The examples of a BEIR folder (see the file comment); problems go to `skipped` with onError 'skip'. */
export async function* readBeir(folder: string, options: BeirReadOptions, skipped: SkipLog): AsyncGenerator<Located<RetrievalExample>> {
  const files = locateBeir(folder, options.split);
  const corpus = new Map<string, string>();
  for (const file of files.corpus) await readIdTexts(file, options, skipped, options.includeTitle ?? true, corpus);
  const queries = new Map<string, string>();
  await readIdTexts(files.queries, options, skipped, false, queries);

  const byQuery = new Map<string, Located<RetrievalExample> & { seen: Set<string> }>();
  const reader = readRecords(files.qrels, { format: 'tsv', columns: ['query-id', 'corpus-id', 'score'], onError: options.onError });
  for await (const { line, record } of reader) {
    const queryId = String(record['query-id']);
    const docId = String(record['corpus-id']);
    const score = Number(record.score);
    const query = queries.get(queryId);
    const doc = corpus.get(docId);
    const problem =
      query === undefined ? `query '${queryId}' is not in queries.jsonl` : doc === undefined ? `document '${docId}' is not in the corpus` : Number.isNaN(score) ? `score '${String(record.score)}' is not a number` : undefined;
    if (problem) {
      fail(new DataError(files.qrels, line, problem), options, skipped);
      continue;
    }
    let example = byQuery.get(queryId);
    if (!example) {
      example = { value: { query: query!, positives: [], negatives: [] }, at: { line }, seen: new Set() };
      byQuery.set(queryId, example);
    }
    if (example.seen.has(docId)) continue; // a repeated judgement: the first one counts
    example.seen.add(docId);
    (score > 0 ? example.value.positives : example.value.negatives).push(doc!);
  }
  skipped.merge(reader.skipped);
  for (const [queryId, { value, at }] of byQuery) {
    if (value.positives.length === 0) {
      fail(new DataError(files.qrels, at, `query '${queryId}' has no relevant document (score > 0)`), options, skipped);
      continue;
    }
    yield { value, at: { ...at } };
  }
}

/** Collects examples and writes them as a BEIR folder. */
export class BeirWriter {
  private readonly queryIds = new Map<string, string>();
  private readonly docIds = new Map<string, string>();
  private readonly qrels = new Map<string, number>();

  constructor(
    private readonly folder: string,
    private readonly split = 'test',
  ) {}

  add(example: RetrievalExample): void {
    const queryId = this.idFor(this.queryIds, 'q', example.query);
    for (const [texts, score] of [[example.positives, 1], [example.negatives, 0]] as const) {
      for (const text of texts) {
        const key = `${queryId}\t${this.idFor(this.docIds, 'd', text)}`;
        // A text that is a positive of the query anywhere stays a positive.
        this.qrels.set(key, Math.max(this.qrels.get(key) ?? 0, score));
      }
    }
  }

  /** Writes corpus.jsonl, queries.jsonl and qrels/<split>.tsv; returns the counts. */
  finish(): { queries: number; documents: number; qrels: number } {
    mkdirSync(join(this.folder, 'qrels'), { recursive: true });
    writeRecords(join(this.folder, 'corpus.jsonl'), Array.from(this.docIds, ([text, id]) => ({ _id: id, title: '', text })), ['_id', 'title', 'text']);
    writeRecords(join(this.folder, 'queries.jsonl'), Array.from(this.queryIds, ([text, id]) => ({ _id: id, text })), ['_id', 'text']);
    const encoder = new TextEncoder();
    writeFileAtomic(join(this.folder, 'qrels', `${this.split}.tsv`), (write) => {
      let lines = ['query-id\tcorpus-id\tscore\n'];
      for (const [key, score] of this.qrels) {
        lines.push(`${key}\t${score}\n`);
        if (lines.length >= 65536) {
          write(encoder.encode(lines.join('')));
          lines = [];
        }
      }
      write(encoder.encode(lines.join('')));
    });
    return { queries: this.queryIds.size, documents: this.docIds.size, qrels: this.qrels.size };
  }

  private idFor(ids: Map<string, string>, prefix: string, text: string): string {
    let id = ids.get(text);
    if (id === undefined) {
      id = `${prefix}${ids.size}`;
      ids.set(text, id);
    }
    return id;
  }
}
