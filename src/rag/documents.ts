/**
 * The documents of a RAG index, read from a data file (JSONL, JSON, CSV/TSV or Parquet through
 * src/data): an id, a text, optional metadata fields, and a content hash that tells a changed
 * document from an unchanged one when the index is built again.
 *
 * Not here: embedding (src/embed) and storage (store.ts).
 */
import { createHash } from 'node:crypto';
import { DataError, formatOf, readRecords, type RecordFormat } from '../data/records.js';

/** A scalar metadata value as the index stores it (objects and arrays are stored as JSON text). */
export type MetadataValue = string | number | boolean | null;

export interface RagDocument {
  id: string;
  text: string;
  /** The selected metadata fields, in the order given. */
  metadata: Record<string, MetadataValue>;
  /** sha256 (hex) of the text and the metadata: equal hashes mean nothing to re-embed or rewrite. */
  hash: string;
}

export interface DocumentFields {
  /** The field holding the document id (a string, or an integer written as one). Default `id`. */
  idField?: string;
  /** The field holding the text. Default `text`. */
  textField?: string;
  /** Fields copied into the index as metadata columns (filterable with SQL). */
  metadataFields?: readonly string[];
  /** Read a .tsv with RFC 4180 quoting (default: tab-split, unquoted). */
  tsvQuoting?: boolean;
}

/** Column names the index uses itself; a metadata field may not take them. */
export const RESERVED_COLUMNS: readonly string[] = ['id', 'text', 'content_hash', 'vector', 'fts_text', '_distance', '_score', '_rowid', '_relevance_score'];

/** The content hash of a document: its text and metadata, in a fixed encoding. */
export function contentHash(text: string, metadata: Record<string, MetadataValue>): string {
  return createHash('sha256').update(JSON.stringify([text, Object.entries(metadata)])).digest('hex');
}

/**
 * Every document of `file`. An id that repeats, a missing or non-string text, an empty text or a
 * metadata field with a name the index reserves is an error that names the file, the line (row
 * for Parquet) and what to do.
 */
export async function readDocuments(file: string, fields: DocumentFields = {}): Promise<RagDocument[]> {
  const idField = fields.idField ?? 'id';
  const textField = fields.textField ?? 'text';
  const metadataFields = [...(fields.metadataFields ?? [])];
  checkMetadataNames(metadataFields, idField, textField);
  let format: RecordFormat;
  try {
    format = formatOf(file);
  } catch {
    throw new DataError(file, undefined, '--docs must be JSONL, JSON, CSV/TSV with a header row, or Parquet (.jsonl, .json, .csv, .tsv, .parquet)');
  }
  const tabular = format === 'csv' || format === 'tsv' || format === 'parquet';
  const firstSeen = new Map<string, string>();
  const docs: RagDocument[] = [];
  const reader = readRecords(file, { format, columns: tabular ? [idField, textField, ...metadataFields] : undefined, tsvQuoting: fields.tsvQuoting });
  try {
    for await (const { row, line, record } of reader) {
      const where = line !== undefined ? `line ${line}` : `row ${row}`;
      const at = line ?? { row };
      const id = idOf(record[idField]);
      if (id === undefined) {
        throw new DataError(file, at, `no string or integer id in field '${idField}' (fields: ${Object.keys(record).slice(0, 8).join(', ') || 'none'}); choose the field with --id-field`);
      }
      const text = record[textField];
      if (typeof text !== 'string') {
        throw new DataError(file, at, `no string text in field '${textField}' (fields: ${Object.keys(record).slice(0, 8).join(', ') || 'none'}); choose the field with --text-field`);
      }
      if (text.trim() === '') throw new DataError(file, at, `document '${id}' has an empty text; an empty document cannot be embedded`);
      const earlier = firstSeen.get(id);
      if (earlier !== undefined) throw new DataError(file, at, `document id '${id}' appears again (first at ${earlier}); ids must be unique`);
      firstSeen.set(id, where);
      const metadata: Record<string, MetadataValue> = {};
      for (const name of metadataFields) metadata[name] = metadataValue(record[name]);
      docs.push({ id, text, metadata, hash: contentHash(text, metadata) });
    }
  } catch (err) {
    if (err instanceof DataError && err.reason.startsWith('no column')) {
      throw new DataError(file, err.line, `${err.reason}; choose the fields with --id-field, --text-field and --metadata-fields`);
    }
    throw err;
  }
  return docs;
}

function checkMetadataNames(names: readonly string[], idField: string, textField: string): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (name === '') throw new DataError('--metadata-fields', undefined, 'a metadata field name is empty');
    if (RESERVED_COLUMNS.includes(name)) {
      throw new DataError('--metadata-fields', undefined, `'${name}' is a column the index uses itself (${RESERVED_COLUMNS.join(', ')}); rename the field in the data`);
    }
    if (name === idField || name === textField) throw new DataError('--metadata-fields', undefined, `'${name}' is already the id or text field`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new DataError('--metadata-fields', undefined, `'${name}': metadata field names must be letters, digits and '_' (not starting with a digit), so that --filter SQL can name them`);
    }
    if (seen.has(name)) throw new DataError('--metadata-fields', undefined, `'${name}' is listed twice`);
    seen.add(name);
  }
}

function idOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (typeof value === 'bigint') return value.toString();
  return undefined;
}

function metadataValue(value: unknown): MetadataValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  return JSON.stringify(value);
}
