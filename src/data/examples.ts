/**
 * The training-data formats users have, and one normalised form between them: a
 * RetrievalExample is a query with its positive and negative texts. Each format has a decoder
 * (records → examples) and an encoder (example → records); converting is decoding one and encoding
 * the other. The formats (REFERENCE §0 "version question", §2.5, §3.1; ../shared/fixtures/mining/README.md
 * §4–5):
 *
 * | name | record | notes |
 * |---|---|---|
 * | `st` | sentence-transformers columns by position: anchor, positive, negative… (`negative`, or `negative_1`…`negative_N` as n-tuple mining writes them) | ST reads columns by position, so do we; a `scores`/`score` column (output_scores) is dropped. Writes n-tuple rows: one per positive. |
 * | `st-triplet` | (anchor, positive, negative) rows | consecutive rows with the same anchor and positive are one example; writes one row per (positive, negative) |
 * | `st-labeled-list` | `{anchor, positive: [texts], labels: [1, 0, …]}` | mining's labeled-list; label 1 = positive, 0 = negative; writes one row per positive: `[positive, negatives…]` |
 * | `st-labeled-pair` | `{anchor, positive: text, label: 1/0}` rows | consecutive rows with the same anchor are one example; writes positives (1) then negatives (0) |
 * | `swift` | ms-swift ≤ 3.8 `{query, response, rejected_response: [...]}` | reading accepts ms-swift's column aliases (query ← prompt, input, …; response ← answer, output, …); one record per positive |
 * | `swift-messages` | ms-swift ≥ 3.9 `{messages, positive_messages: [[…]], negative_messages: [[…], …]}` | a system message is folded into the text as the Qwen3 embedding template does (`system + ' ' + user`); one record per positive (ms-swift requires exactly one) |
 * | `flag` | FlagEmbedding `{query, pos: [...], neg: [...]}` | `prompt`, `type` and score fields are not carried over |
 * | `beir` | a folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv | see ./beir.ts |
 *
 * Every text must be a non-empty string; an example needs at least one positive. A record that
 * breaks these rules is a DataError for its line/row, which the caller may skip.
 */
import type { DataLocation } from './jsonl.js';
import type { DataRecord } from './records.js';

/** A query with the texts that answer it (positives) and texts that do not (negatives). */
export interface RetrievalExample {
  query: string;
  positives: string[];
  negatives: string[];
}

/** A value and where in the input it came from (for error messages). */
export interface Located<T> {
  value: T;
  at: DataLocation;
}

export type ExampleFormat = 'st' | 'st-triplet' | 'st-labeled-list' | 'st-labeled-pair' | 'swift' | 'swift-messages' | 'flag' | 'beir';

/** One line per format, for --help. */
export const EXAMPLE_FORMATS: Readonly<Record<ExampleFormat, string>> = {
  st: 'sentence-transformers columns by position: anchor, positive[, negative | negative_1..negative_N] (writes n-tuple rows, one per positive)',
  'st-triplet': 'sentence-transformers (anchor, positive, negative) rows; consecutive rows with the same anchor and positive form one example',
  'st-labeled-list': 'sentence-transformers labeled-list {anchor, positive: [texts], labels: [1, 0, ...]} (mining output; one row per positive)',
  'st-labeled-pair': 'sentence-transformers labeled-pair {anchor, positive, label: 1|0}; consecutive rows with the same anchor form one example',
  swift: 'ms-swift <= 3.8 {query, response, rejected_response: [...]} (the tutorial format; one record per positive)',
  'swift-messages': 'ms-swift >= 3.9 {messages, positive_messages: [[...]], negative_messages: [[...], ...]} (one record per positive)',
  flag: 'FlagEmbedding {query, pos: [...], neg: [...]}',
  beir: 'BEIR folder: corpus.jsonl (or corpus.part*.jsonl), queries.jsonl, qrels/<split>.tsv (score > 0 = positive, 0 = negative)',
};

export const EXAMPLE_FORMAT_NAMES = Object.keys(EXAMPLE_FORMATS) as ExampleFormat[];

/** A record-level problem; the caller turns it into a DataError with the record's location. */
export class RecordProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordProblem';
  }
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the decoders

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new RecordProblem(`${what} must be a string, got ${describe(value)}`);
  if (value.trim() === '') throw new RecordProblem(`${what} is empty`);
  return value;
}

function texts(value: unknown, what: string, { allowMissing = false, allowString = false } = {}): string[] {
  if ((value === undefined || value === null) && allowMissing) return [];
  if (typeof value === 'string' && allowString) return [text(value, what)];
  if (!Array.isArray(value)) throw new RecordProblem(`${what} must be a list of strings, got ${describe(value)}`);
  return value.map((item, i) => text(item, `${what}[${i}]`));
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing (missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `a string`;
  return `a ${typeof value}`;
}

function checked(example: RetrievalExample): RetrievalExample {
  if (example.positives.length === 0) throw new RecordProblem('no positive text (an example needs at least one)');
  return example;
}

/** 1 → true, 0 → false (also booleans and 1.0/0.0); anything else is a graded label we cannot map. */
function binaryLabel(value: unknown, what: string): boolean {
  if (value === 1 || value === true) return true;
  if (value === 0 || value === false) return false;
  throw new RecordProblem(`${what} must be 1 or 0, got ${JSON.stringify(value)} (graded labels cannot be split into positives and negatives)`);
}

// ---------------------------------------------------------------------------------------------
// Decoders

/** Turns records into examples; a grouping decoder holds the current group until it ends. */
export interface ExampleDecoder {
  push(record: DataRecord): Located<RetrievalExample>[];
  end(): Located<RetrievalExample>[];
}

function locationOf(record: DataRecord): DataLocation {
  return record.line !== undefined ? { line: record.line } : { row: record.row };
}

/** sentence-transformers' special columns (not inputs): labels and scores. */
const ST_LABEL_COLUMNS = new Set(['label', 'labels']);
const ST_SCORE_COLUMNS = new Set(['score', 'scores']);

function stInputColumns(record: Record<string, unknown>): string[] {
  const columns = Object.keys(record);
  const label = columns.find((c) => ST_LABEL_COLUMNS.has(c));
  if (label) throw new RecordProblem(`has a '${label}' column: read labeled data with --from ${label === 'labels' ? 'st-labeled-list' : 'st-labeled-pair'}`);
  // A single numeric score replaces the label of labeled-pair rows (output_scores=True): such rows
  // hold negatives too, so reading them as pairs would make every negative a positive.
  if (typeof record.score === 'number') throw new RecordProblem("has a numeric 'score' column (labeled-pair rows with output_scores): scores do not say which texts are positive");
  const inputs = columns.filter((c) => !ST_SCORE_COLUMNS.has(c));
  if (inputs.length < 2) throw new RecordProblem(`needs at least two text columns (anchor, positive), has ${inputs.length} (${columns.join(', ') || 'none'})`);
  return inputs;
}

function stExample(record: Record<string, unknown>): RetrievalExample {
  const [anchor, positive, ...negatives] = stInputColumns(record);
  return {
    query: text(record[anchor!], `column '${anchor}' (anchor)`),
    positives: [text(record[positive!], `column '${positive}' (positive)`)],
    negatives: negatives.map((c) => text(record[c], `column '${c}' (negative)`)),
  };
}

/** Groups consecutive examples with the same key into one, concatenating positives/negatives. */
class GroupingDecoder implements ExampleDecoder {
  private current: Located<RetrievalExample> | undefined;
  private currentKey: string | undefined;

  constructor(private readonly decode: (record: Record<string, unknown>) => { key: string; example: RetrievalExample }) {}

  push(record: DataRecord): Located<RetrievalExample>[] {
    const { key, example } = this.decode(record.record);
    if (this.current && key === this.currentKey) {
      for (const p of example.positives) if (!this.current.value.positives.includes(p)) this.current.value.positives.push(p);
      this.current.value.negatives.push(...example.negatives);
      return [];
    }
    const previous = this.current;
    this.current = { value: example, at: locationOf(record) };
    this.currentKey = key;
    return finishGroup(previous);
  }

  end(): Located<RetrievalExample>[] {
    const previous = this.current;
    this.current = undefined;
    this.currentKey = undefined;
    return finishGroup(previous);
  }
}

/** A finished group, checked as a whole (labeled-pair: its positives may come after its negatives). */
function finishGroup(group: Located<RetrievalExample> | undefined): Located<RetrievalExample>[] {
  if (!group) return [];
  try {
    checked(group.value);
  } catch (err) {
    throw new GroupProblem((err as Error).message, group.at);
  }
  return [group];
}

/** A problem with a finished group, reported at the group's first record. */
export class GroupProblem extends RecordProblem {
  constructor(
    message: string,
    readonly at: DataLocation,
  ) {
    super(message);
  }
}

function oneByOne(decode: (record: Record<string, unknown>) => RetrievalExample): ExampleDecoder {
  return {
    push: (record) => [{ value: checked(decode(record.record)), at: locationOf(record) }],
    end: () => [],
  };
}

/** ms-swift ≤ 3.8's column aliases (REFERENCE §3.1, AutoPreprocessor). */
const SWIFT_QUERY_ALIASES = ['query', 'prompt', 'input', 'instruction', 'question', 'problem'];
const SWIFT_RESPONSE_ALIASES = ['response', 'answer', 'output', 'targets', 'target', 'answer_key', 'answers', 'solution'];

function firstPresent(record: Record<string, unknown>, names: readonly string[], what: string): string {
  const name = names.find((n) => record[n] !== undefined);
  if (!name) throw new RecordProblem(`no ${what} column (looked for ${names.join(', ')}; columns: ${Object.keys(record).join(', ') || 'none'})`);
  return name;
}

function swiftExample(record: Record<string, unknown>): RetrievalExample {
  const queryColumn = firstPresent(record, SWIFT_QUERY_ALIASES, 'query');
  const responseColumn = firstPresent(record, SWIFT_RESPONSE_ALIASES, 'response');
  const response = text(record[responseColumn], `'${responseColumn}'`);
  const negatives = texts(record.rejected_response, "'rejected_response'", { allowMissing: true, allowString: true });
  // ms-swift rejects a string rejected_response equal to the response (REFERENCE §3.1).
  if (typeof record.rejected_response === 'string' && record.rejected_response === response) throw new RecordProblem("'rejected_response' equals the response");
  return { query: text(record[queryColumn], `'${queryColumn}'`), positives: [response], negatives };
}

interface Message {
  role: string;
  content: string;
}

/** The text the Qwen3 embedding template embeds for a single-turn conversation: `[system + ' '] + user`. */
function conversationText(value: unknown, what: string): string {
  if (!Array.isArray(value)) throw new RecordProblem(`${what} must be a list of messages, got ${describe(value)}`);
  const messages = value.map((m, i): Message => {
    if (typeof m !== 'object' || m === null || typeof (m as Message).role !== 'string') throw new RecordProblem(`${what}[${i}] must be a message {role, content}`);
    return { role: (m as Message).role, content: text((m as Message).content, `${what}[${i}].content`) };
  });
  const system = messages.filter((m) => m.role === 'system');
  const user = messages.filter((m) => m.role === 'user');
  const other = messages.filter((m) => m.role !== 'system' && m.role !== 'user');
  if (user.length !== 1 || system.length > 1 || other.length > 0) {
    throw new RecordProblem(`${what} must hold one user message (and at most one system message), got roles ${messages.map((m) => m.role).join(', ') || 'none'}`);
  }
  return system.length === 1 ? `${system[0]!.content} ${user[0]!.content}` : user[0]!.content;
}

function conversations(value: unknown, what: string, allowMissing: boolean): string[] {
  if ((value === undefined || value === null) && allowMissing) return [];
  if (!Array.isArray(value)) throw new RecordProblem(`${what} must be a list of conversations (a list of message lists), got ${describe(value)}`);
  return value.map((conversation, i) => conversationText(conversation, `${what}[${i}]`));
}

function swiftMessagesExample(record: Record<string, unknown>): RetrievalExample {
  return {
    query: conversationText(record.messages, "'messages'"),
    positives: conversations(record.positive_messages, "'positive_messages'", false),
    negatives: conversations(record.negative_messages, "'negative_messages'", true),
  };
}

function flagExample(record: Record<string, unknown>): RetrievalExample {
  return {
    query: text(record.query, "'query'"),
    positives: texts(record.pos, "'pos'", { allowString: true }),
    negatives: texts(record.neg, "'neg'", { allowMissing: true, allowString: true }),
  };
}

/** The two input columns of a labeled format (anchor, then the text column) besides its label column. */
function labeledColumns(record: Record<string, unknown>, labelColumn: string): [string, string] {
  const columns = Object.keys(record);
  if (!columns.includes(labelColumn)) {
    const scores = columns.find((c) => ST_SCORE_COLUMNS.has(c));
    throw new RecordProblem(
      scores
        ? `has '${scores}' instead of '${labelColumn}': scores (output_scores=True) do not say which texts are positive`
        : `no '${labelColumn}' column (columns: ${columns.join(', ') || 'none'})`,
    );
  }
  const inputs = columns.filter((c) => c !== labelColumn && !ST_SCORE_COLUMNS.has(c));
  if (inputs.length !== 2) throw new RecordProblem(`needs two columns besides '${labelColumn}' (anchor and texts), has ${inputs.length} (${columns.join(', ')})`);
  return inputs as [string, string];
}

function labeledListExample(record: Record<string, unknown>): RetrievalExample {
  const [anchor, list] = labeledColumns(record, 'labels');
  const items = texts(record[list], `column '${list}'`);
  const labels = record.labels;
  if (!Array.isArray(labels) || labels.length !== items.length) {
    throw new RecordProblem(`'labels' must be a list as long as '${list}' (${items.length}), got ${Array.isArray(labels) ? `${labels.length} labels` : describe(labels)}`);
  }
  const example: RetrievalExample = { query: text(record[anchor], `column '${anchor}' (anchor)`), positives: [], negatives: [] };
  items.forEach((item, i) => (binaryLabel(labels[i], `labels[${i}]`) ? example.positives : example.negatives).push(item));
  return example;
}

function labeledPairExample(record: Record<string, unknown>): { key: string; example: RetrievalExample } {
  const [anchor, document] = labeledColumns(record, 'label');
  const query = text(record[anchor], `column '${anchor}' (anchor)`);
  const item = text(record[document], `column '${document}'`);
  const positive = binaryLabel(record.label, "'label'");
  return { key: query, example: { query, positives: positive ? [item] : [], negatives: positive ? [] : [item] } };
}

/** The decoder of a record-based format (BEIR is a folder: see ./beir.ts). */
export function exampleDecoder(format: Exclude<ExampleFormat, 'beir'>): ExampleDecoder {
  switch (format) {
    case 'st':
      return oneByOne(stExample);
    case 'st-triplet':
      return new GroupingDecoder((record) => {
        const example = stExample(record);
        return { key: JSON.stringify([example.query, example.positives[0]]), example };
      });
    case 'st-labeled-list':
      return oneByOne(labeledListExample);
    case 'st-labeled-pair':
      return new GroupingDecoder(labeledPairExample);
    case 'swift':
      return oneByOne(swiftExample);
    case 'swift-messages':
      return oneByOne(swiftMessagesExample);
    case 'flag':
      return oneByOne(flagExample);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoders

export interface EncoderOptions {
  /** sentence-transformers outputs: the anchor column's name (default 'anchor'; the tutorial's is 'prompt'). */
  anchorColumn?: string;
  /** sentence-transformers outputs: the positive column's name (default 'positive'; the tutorial's is 'response'). */
  positiveColumn?: string;
}

/** Turns examples into output records with fixed columns. */
export interface ExampleEncoder {
  /** The output columns; `first` is the first example (the n-tuple width comes from it). */
  columns(first: RetrievalExample | undefined): string[];
  /** The records of one example (throws a RecordProblem if the format cannot hold it). */
  encode(example: RetrievalExample): Record<string, unknown>[];
}

const userConversation = (content: string) => [{ role: 'user', content }];

export function exampleEncoder(format: Exclude<ExampleFormat, 'beir'>, options: EncoderOptions = {}): ExampleEncoder {
  const anchor = options.anchorColumn ?? 'anchor';
  const positive = options.positiveColumn ?? 'positive';
  const fixed = (columns: string[], encode: (e: RetrievalExample) => Record<string, unknown>[]): ExampleEncoder => ({ columns: () => columns, encode });
  switch (format) {
    case 'st':
      return nTupleEncoder(anchor, positive);
    case 'st-triplet':
      return fixed([anchor, positive, 'negative'], (e) => {
        if (e.negatives.length === 0) throw new RecordProblem('has no negatives, and a triplet needs one (write pairs with --to st)');
        return e.positives.flatMap((p) => e.negatives.map((n) => ({ [anchor]: e.query, [positive]: p, negative: n })));
      });
    case 'st-labeled-list':
      return fixed([anchor, positive, 'labels'], (e) =>
        e.positives.map((p) => ({ [anchor]: e.query, [positive]: [p, ...e.negatives], labels: [1, ...e.negatives.map(() => 0)] })),
      );
    case 'st-labeled-pair':
      return fixed([anchor, positive, 'label'], (e) => [
        ...e.positives.map((p) => ({ [anchor]: e.query, [positive]: p, label: 1 })),
        ...e.negatives.map((n) => ({ [anchor]: e.query, [positive]: n, label: 0 })),
      ]);
    case 'swift':
      // The tutorial's conversion (REFERENCE §2.5): {query, response: positive, rejected_response: negatives}.
      return fixed(['query', 'response', 'rejected_response'], (e) => e.positives.map((p) => ({ query: e.query, response: p, rejected_response: [...e.negatives] })));
    case 'swift-messages':
      return fixed(['messages', 'positive_messages', 'negative_messages'], (e) =>
        e.positives.map((p) => ({
          messages: userConversation(e.query),
          positive_messages: [userConversation(p)],
          negative_messages: e.negatives.map(userConversation),
        })),
      );
    case 'flag':
      return fixed(['query', 'pos', 'neg'], (e) => [{ query: e.query, pos: [...e.positives], neg: [...e.negatives] }]);
  }
}

/** n-tuple rows: anchor, positive, negative_1..negative_N, N fixed by the first example (columns are fixed in a table). */
function nTupleEncoder(anchor: string, positive: string): ExampleEncoder {
  let width: number | undefined;
  return {
    columns(first) {
      width = first?.negatives.length ?? 0;
      return [anchor, positive, ...Array.from({ length: width }, (_, i) => `negative_${i + 1}`)];
    },
    encode(e) {
      width ??= e.negatives.length;
      if (e.negatives.length !== width) {
        throw new RecordProblem(`has ${e.negatives.length} negatives, but the n-tuple columns hold ${width} (fixed by the first example); write --to st-triplet or st-labeled-list for varying counts`);
      }
      return e.positives.map((p) => {
        const row: Record<string, unknown> = { [anchor]: e.query, [positive]: p };
        e.negatives.forEach((n, i) => (row[`negative_${i + 1}`] = n));
        return row;
      });
    },
  };
}
