/**
 * The on-disk store of a RAG index: one LanceDB table (`documents`) in a folder, holding each
 * document's id, text, content hash, embedding, metadata columns and (for the bigram tokenizer)
 * its full-text terms, with a BM25 index over the terms.
 *
 * The table's Arrow schema metadata (`embtune` key) records what made the vectors — the model and
 * adapter, their fingerprint when known, the family, pooling, normalisation and dimension — and
 * the metadata columns and full-text tokenizer. Opening the store for a different model or
 * adapter is refused: vectors of two models in one table would be compared as if they shared a
 * space.
 *
 * Vector search is exact (no ANN index is built): LanceDB scans the flat vectors with cosine
 * distance, so the top-k equals an exact search over the same embeddings. Past a few hundred
 * thousand documents an IVF index would be the next step; it is not made here.
 */
import * as lancedb from '@lancedb/lancedb';
import { Bool, Field, FixedSizeList, Float32, Float64, Schema, Utf8, type DataType } from 'apache-arrow';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { MetadataValue, RagDocument } from './documents.js';
import { fullTextColumn } from './fulltext.js';

export const TABLE_NAME = 'documents';
export const RECORD_KEY = 'embtune';
export const RECORD_FORMAT = 'embtune-rag-index/1';

/** What made the vectors. Two indexes with different identities cannot share a table. */
export interface IndexIdentity {
  /** The model as the user named it (folder or hub id). */
  model: string;
  /** The folder it was loaded from (absolute). */
  modelFolder: string;
  /** The LoRA adapter folder (absolute), or null. */
  adapter: string | null;
  /** A content fingerprint of the weights (model and adapter), when one is computed; else null. */
  fingerprint: string | null;
  family: string;
  pooling: string;
  normalize: boolean;
  dim: number;
}

export type MetadataType = 'string' | 'number' | 'boolean';

export interface MetadataColumn {
  name: string;
  type: MetadataType;
}

/**
 * 'bigram': the index's own terms (fulltext.ts) in an `fts_text` column, whitespace-tokenised;
 * 'ngram': LanceDB's ngram tokenizer (character bigrams of the raw text).
 */
export type FullTextTokenizer = 'bigram' | 'ngram';

export interface IndexRecord {
  format: typeof RECORD_FORMAT;
  identity: IndexIdentity;
  metadataColumns: MetadataColumn[];
  ftsTokenizer: FullTextTokenizer;
}

/** A store that cannot be used as asked: the message says why and what to do. */
export class IndexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IndexError';
  }
}

/** A stored document as a search returns it. */
export interface StoredHit {
  id: string;
  text: string;
  metadata: Record<string, MetadataValue>;
  /** Cosine similarity (dense search) or BM25 score (full text). */
  score: number;
}

export class RagStore {
  private constructor(
    readonly folder: string,
    readonly table: lancedb.Table,
    readonly record: IndexRecord,
  ) {}

  /** True when `folder` holds an index table. */
  static async exists(folder: string): Promise<boolean> {
    if (!existsSync(folder)) return false;
    const db = await lancedb.connect(resolve(folder));
    return (await db.tableNames()).includes(TABLE_NAME);
  }

  /** Opens the index in `folder`; an error says when there is none. */
  static async open(folder: string): Promise<RagStore> {
    if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new IndexError(`${folder}: no index here (no such folder); build one with embtune index --db ${folder}`);
    const db = await lancedb.connect(resolve(folder), { readConsistencyInterval: 0 });
    if (!(await db.tableNames()).includes(TABLE_NAME)) {
      throw new IndexError(`${folder}: no index here (no '${TABLE_NAME}' table${readdirSync(folder).length ? '' : ', the folder is empty'}); build one with embtune index --db ${folder}`);
    }
    const table = await db.openTable(TABLE_NAME);
    return new RagStore(folder, table, readRecord(folder, await table.schema()));
  }

  /**
   * Opens the index in `folder` for writing by `wanted`, creating it if there is none. An index
   * made by another model or adapter, or with other metadata columns, is refused.
   */
  static async openForWriting(folder: string, wanted: IndexRecord): Promise<RagStore> {
    if (await RagStore.exists(folder)) {
      const store = await RagStore.open(folder);
      checkSameIdentity(folder, store.record.identity, wanted.identity);
      checkSameColumns(folder, store.record, wanted);
      return store;
    }
    const db = await lancedb.connect(resolve(folder), { readConsistencyInterval: 0 });
    const table = await db.createEmptyTable(TABLE_NAME, tableSchema(wanted));
    return new RagStore(folder, table, wanted);
  }

  get hasFullTextColumn(): boolean {
    return this.record.ftsTokenizer === 'bigram';
  }

  count(filter?: string): Promise<number> {
    return this.table.countRows(filter);
  }

  /** Each stored id and its content hash. */
  async hashes(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const rows = (await this.table.query().select(['id', 'content_hash']).toArray()) as { id: string; content_hash: string }[];
    for (const row of rows) out.set(row.id, row.content_hash);
    return out;
  }

  /** Inserts new ids and replaces the rows of known ones (LanceDB merge-insert on `id`): never a duplicate. */
  async upsert(docs: readonly RagDocument[], vectors: readonly Float32Array[]): Promise<{ inserted: number; updated: number }> {
    if (docs.length === 0) return { inserted: 0, updated: 0 };
    const rows = docs.map((doc, i) => this.row(doc, vectors[i]!));
    const result = await this.table.mergeInsert('id').whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(rows);
    return { inserted: result.numInsertedRows, updated: result.numUpdatedRows };
  }

  /** Deletes the rows of these ids. */
  async delete(ids: readonly string[]): Promise<number> {
    let deleted = 0;
    for (let start = 0; start < ids.length; start += 500) {
      const chunk = ids.slice(start, start + 500);
      const result = await this.table.delete(`id IN (${chunk.map(sqlString).join(', ')})`);
      deleted += result.numDeletedRows;
    }
    return deleted;
  }

  /**
   * Rebuilds the BM25 index over every row (after changes), then compacts the table's files
   * and drops old versions, so the folder does not grow with every run.
   */
  async finish(): Promise<void> {
    const bigram = this.hasFullTextColumn;
    await this.table.createIndex(bigram ? 'fts_text' : 'text', {
      replace: true,
      config: lancedb.Index.fts(
        bigram
          ? { baseTokenizer: 'whitespace', lowercase: false, stem: false, removeStopWords: false, asciiFolding: false, withPosition: false }
          : { baseTokenizer: 'ngram', ngramMinLength: 2, ngramMaxLength: 2, prefixOnly: false, lowercase: true, stem: false, removeStopWords: false, withPosition: false },
      ),
    });
    await this.table.optimize({ cleanupOlderThan: new Date() });
  }

  /** The `limit` nearest documents by cosine similarity (exact scan), optionally filtered by SQL. */
  async dense(vector: Float32Array, limit: number, filter?: string): Promise<StoredHit[]> {
    if (vector.length !== this.record.identity.dim) throw new IndexError(`the query vector has ${vector.length} dimensions, the index ${this.record.identity.dim}`);
    let query = this.table.query().nearestTo(Array.from(vector)).distanceType('cosine').limit(limit).select([...this.resultColumns(), '_distance']);
    if (filter) query = query.where(filter);
    const rows = await runQuery(query, filter);
    return rows.map((row) => this.hit(row, 1 - Number(row._distance)));
  }

  /** The `limit` best documents by BM25, optionally filtered by SQL. */
  async fullText(queryText: string, limit: number, filter?: string): Promise<StoredHit[]> {
    const terms = this.hasFullTextColumn ? fullTextColumn(queryText) : queryText;
    if (terms.trim() === '') return [];
    let query = this.table.query().fullTextSearch(terms, { columns: this.hasFullTextColumn ? 'fts_text' : 'text' }).limit(limit).select([...this.resultColumns(), '_score']);
    if (filter) query = query.where(filter);
    const rows = await runQuery(query, filter);
    return rows.map((row) => this.hit(row, Number(row._score)));
  }

  close(): void {
    this.table.close();
  }

  private resultColumns(): string[] {
    return ['id', 'text', ...this.record.metadataColumns.map((c) => c.name)];
  }

  private hit(row: Record<string, unknown>, score: number): StoredHit {
    const metadata: Record<string, MetadataValue> = {};
    for (const { name } of this.record.metadataColumns) metadata[name] = (row[name] ?? null) as MetadataValue;
    return { id: String(row.id), text: String(row.text), metadata, score };
  }

  private row(doc: RagDocument, vector: Float32Array): Record<string, unknown> {
    const { dim } = this.record.identity;
    if (vector.length !== dim) throw new IndexError(`document '${doc.id}': embedding has ${vector.length} dimensions, the index ${dim}`);
    const row: Record<string, unknown> = { id: doc.id, text: doc.text, content_hash: doc.hash, vector: Array.from(vector) };
    if (this.hasFullTextColumn) row.fts_text = fullTextColumn(doc.text);
    for (const column of this.record.metadataColumns) row[column.name] = columnValue(doc, column);
    return row;
  }
}

/** Metadata column types from the documents: all strings, all numbers or all booleans (nulls aside); anything mixed is stored as text. */
export function inferMetadataColumns(names: readonly string[], docs: readonly RagDocument[]): MetadataColumn[] {
  return names.map((name) => {
    const kinds = new Set(docs.map((d) => d.metadata[name]).filter((v) => v !== null).map((v) => typeof v));
    const type: MetadataType = kinds.size === 1 && (kinds.has('number') || kinds.has('boolean')) ? ([...kinds][0] as MetadataType) : 'string';
    return { name, type };
  });
}

function columnValue(doc: RagDocument, column: MetadataColumn): MetadataValue {
  const value = doc.metadata[column.name] ?? null;
  if (value === null) return null;
  if (column.type === 'string') return typeof value === 'string' ? value : String(value);
  if (typeof value !== column.type) {
    throw new IndexError(`document '${doc.id}': metadata field '${column.name}' is ${typeof value} (${JSON.stringify(value)}), but the index stores it as ${column.type}`);
  }
  return value;
}

function tableSchema(record: IndexRecord): Schema {
  const arrowType = (type: MetadataType): DataType => (type === 'number' ? new Float64() : type === 'boolean' ? new Bool() : new Utf8());
  const fields = [
    new Field('id', new Utf8(), false),
    new Field('text', new Utf8(), false),
    new Field('content_hash', new Utf8(), false),
    new Field('vector', new FixedSizeList(record.identity.dim, new Field('item', new Float32(), true)), false),
    ...(record.ftsTokenizer === 'bigram' ? [new Field('fts_text', new Utf8(), false)] : []),
    ...record.metadataColumns.map((c) => new Field(c.name, arrowType(c.type), true)),
  ];
  return new Schema(fields, new Map([[RECORD_KEY, JSON.stringify(record)]]));
}

function readRecord(folder: string, schema: Schema): IndexRecord {
  const raw = schema.metadata.get(RECORD_KEY);
  if (raw === undefined) throw new IndexError(`${folder}: the '${TABLE_NAME}' table was not made by embtune index (no '${RECORD_KEY}' record in its schema)`);
  const record = JSON.parse(raw) as IndexRecord;
  if (record.format !== RECORD_FORMAT) throw new IndexError(`${folder}: index format '${String(record.format)}' is not the one this embtune reads ('${RECORD_FORMAT}')`);
  return record;
}

/** The model and adapter of an identity, for messages. */
export function describeIdentity(id: IndexIdentity): string {
  return `model ${id.modelFolder}${id.adapter ? ` with adapter ${id.adapter}` : ' (no adapter)'}${id.fingerprint ? ` [weights ${id.fingerprint.slice(0, 12)}]` : ''}`;
}

function checkSameIdentity(folder: string, stored: IndexIdentity, wanted: IndexIdentity): void {
  const samePlace = stored.modelFolder === wanted.modelFolder && stored.adapter === wanted.adapter;
  const sameBytes = stored.fingerprint && wanted.fingerprint ? stored.fingerprint === wanted.fingerprint : samePlace;
  if (sameBytes && stored.dim === wanted.dim) return;
  const why = samePlace ? ' — the same folders, but their files changed since the index was built' : '';
  throw new IndexError(
    `${folder} was indexed with ${describeIdentity(stored)}; this run uses ${describeIdentity(wanted)}${why}. ` +
      'Vectors of different models cannot share an index: pass the same --model and --adapter, or index into a new --db.',
  );
}

function checkSameColumns(folder: string, stored: IndexRecord, wanted: IndexRecord): void {
  const names = (r: IndexRecord) => r.metadataColumns.map((c) => c.name).join(',');
  if (names(stored) !== names(wanted)) {
    throw new IndexError(
      `${folder} stores the metadata fields [${names(stored) || 'none'}], this run asks for [${names(wanted) || 'none'}]; ` +
        'pass the same --metadata-fields, or index into a new --db',
    );
  }
  if (stored.ftsTokenizer !== wanted.ftsTokenizer) {
    throw new IndexError(`${folder} was indexed with the '${stored.ftsTokenizer}' full-text tokenizer, this run asks for '${wanted.ftsTokenizer}'; index into a new --db`);
  }
}

/** A SQL string literal. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Runs a query; a bad --filter becomes an error that names it. */
async function runQuery(query: { toArray(): Promise<unknown[]> }, filter: string | undefined): Promise<Record<string, unknown>[]> {
  try {
    return (await query.toArray()) as Record<string, unknown>[];
  } catch (err) {
    if (filter) throw new IndexError(`the filter ${JSON.stringify(filter)} could not be applied: ${(err as Error).message.split('\n')[0]}`);
    throw err;
  }
}
