/**
 * Parquet reading (hyparquet) one row group at a time, so memory holds one group, not the file;
 * and Parquet writing (hyparquet-writer) from rows, one row group at a time.
 *
 * Reading: values come back as plain JS values — INT64 as numbers (an integer beyond 2^53 is an
 * error naming the row and column: it would lose digits), lists as arrays, strings as strings.
 * Codecs: hyparquet decodes uncompressed and Snappy files (what pandas/pyarrow and datasets write
 * by default); GZIP and BROTLI are added here from node:zlib, and ZSTD when node:zlib has it
 * (Node ≥ 22.15). Others fail with an error naming the codec.
 *
 * Writing: column types are inferred from the first row group (or given): strings → UTF8, integers
 * → INT64, other numbers → DOUBLE, booleans → BOOLEAN, arrays of those → 3-level LIST (what
 * pyarrow writes, so `datasets`/pandas read them back as lists), anything else → JSON text.
 */
import * as zlib from 'node:zlib';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type Compressors, type FileMetaData } from 'hyparquet';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';

/** hyparquet-writer carries its own copy of hyparquet's types; its schema elements are these. */
type SchemaElement = ConstructorParameters<typeof ParquetWriter>[0]['schema'][number];
import { DataError } from './jsonl.js';

export interface ParquetRecord {
  /** 1-based row number in the file. */
  row: number;
  value: Record<string, unknown>;
}

/** Decompressors beyond hyparquet's built-in Snappy. */
function decompressors(): Compressors {
  const zstd = (zlib as unknown as { zstdDecompressSync?: (input: Uint8Array) => Uint8Array }).zstdDecompressSync;
  return {
    GZIP: (input) => zlib.gunzipSync(input),
    BROTLI: (input) => zlib.brotliDecompressSync(input),
    ...(zstd ? { ZSTD: (input: Uint8Array) => zstd(input) } : {}),
  };
}

export interface OpenParquet {
  file: string;
  buffer: AsyncBuffer;
  metadata: FileMetaData;
  /** Top-level column names in schema order. */
  columns: string[];
  rows: number;
}

/** Opens a Parquet file and reads its footer (schema, row groups). */
export async function openParquet(file: string): Promise<OpenParquet> {
  const buffer = await asyncBufferFromFile(file);
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    throw new DataError(file, undefined, `not a readable Parquet file (${(err as Error).message})`);
  }
  const columns = parquetSchema(metadata).children.map((child) => child.element.name);
  return { file, buffer, metadata, columns, rows: Number(metadata.num_rows) };
}

/** Streams the rows of a Parquet file as objects, one row group at a time. */
export async function* readParquetRows(parquet: OpenParquet, columns?: readonly string[]): AsyncGenerator<ParquetRecord> {
  const { file, buffer, metadata } = parquet;
  let rowStart = 0;
  for (const [g, group] of metadata.row_groups.entries()) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: buffer, metadata, columns: columns ? [...columns] : undefined, rowStart, rowEnd, compressors: decompressors() });
    } catch (err) {
      const message = (err as Error).message;
      const hint = /ZSTD|LZ4|LZO/.test(message) ? ' — re-save the file with Snappy or GZIP compression (ZSTD needs Node ≥ 22.15)' : '';
      throw new DataError(file, { row: rowStart + 1 }, `row group ${g} (rows ${rowStart + 1}–${rowEnd}) cannot be read: ${message}${hint}`);
    }
    for (const [k, value] of rows.entries()) {
      const row = rowStart + k + 1;
      yield { row, value: plainRow(file, row, value) };
    }
    rowStart = rowEnd;
  }
}

/** BigInts to numbers (exactly, or an error), recursively. */
function plainRow(file: string, row: number, value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [column, v] of Object.entries(value)) out[column] = plainValue(v, () => `column '${column}'`, file, row);
  return out;
}

function plainValue(value: unknown, where: () => string, file: string, row: number): unknown {
  if (typeof value === 'bigint') {
    const number = Number(value);
    if (!Number.isSafeInteger(number)) throw new DataError(file, { row }, `${where()} holds ${value}, an integer too large for a JS number`);
    return number;
  }
  if (Array.isArray(value)) return value.map((item, i) => plainValue(item, () => `${where()}[${i}]`, file, row));
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = plainValue(v, () => `${where()}.${k}`, file, row);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A column's type in a written file. */
export type ParquetColumnType = 'string' | 'int64' | 'double' | 'boolean' | 'json' | 'string[]' | 'int64[]' | 'double[]' | 'boolean[]';

type ScalarType = 'string' | 'int64' | 'double' | 'boolean';

function scalarTypeOf(value: unknown): ScalarType | 'json' | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'bigint') return 'int64';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int64' : 'double';
  return 'json';
}

/** Joins two inferred types: int64 and double make double; anything else mixed makes json. */
function joinTypes<T extends string>(a: T | 'json' | undefined, b: T | 'json' | undefined): T | 'json' | undefined {
  if (a === undefined) return b;
  if (b === undefined || a === b) return a;
  if ((a === 'int64' && b === 'double') || (a === 'double' && b === 'int64')) return 'double' as T;
  return 'json';
}

/** The type a column's values call for (strings if all are null). */
export function inferColumnType(values: readonly unknown[]): ParquetColumnType {
  let type: ScalarType | 'json' | undefined;
  let elementType: ScalarType | 'json' | undefined;
  let sawList = false;
  let sawScalar = false;
  for (const value of values) {
    if (Array.isArray(value)) {
      sawList = true;
      for (const item of value) elementType = joinTypes(elementType, Array.isArray(item) ? 'json' : scalarTypeOf(item));
    } else if (value !== null && value !== undefined) {
      sawScalar = true;
      type = joinTypes(type, scalarTypeOf(value));
    }
  }
  if (sawList && sawScalar) return 'json';
  if (sawList) return elementType === 'json' ? 'json' : (`${elementType ?? 'string'}[]` as ParquetColumnType);
  return type ?? 'string';
}

function leafElement(name: string, type: ScalarType): SchemaElement {
  switch (type) {
    case 'string':
      return { name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' };
    case 'int64':
      return { name, type: 'INT64', repetition_type: 'OPTIONAL' };
    case 'double':
      return { name, type: 'DOUBLE', repetition_type: 'OPTIONAL' };
    case 'boolean':
      return { name, type: 'BOOLEAN', repetition_type: 'OPTIONAL' };
  }
}

/** Schema elements of one column; lists use the 3-level LIST layout pyarrow writes (`list` / `element`). */
function columnSchema(name: string, type: ParquetColumnType): SchemaElement[] {
  if (type === 'json') return [{ name, type: 'BYTE_ARRAY', converted_type: 'JSON', repetition_type: 'OPTIONAL' }];
  if (type.endsWith('[]')) {
    return [
      { name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      leafElement('element', type.slice(0, -2) as ScalarType),
    ];
  }
  return [leafElement(name, type as ScalarType)];
}

/** A value as the writer wants it for a column of `type`, or an error message. */
function columnValue(value: unknown, type: ParquetColumnType): unknown {
  if (value === null || value === undefined) return null;
  if (type === 'json') return value;
  if (type.endsWith('[]')) {
    if (!Array.isArray(value)) throw new TypeError(`expected a list, got ${JSON.stringify(value)}`);
    const element = type.slice(0, -2) as ScalarType;
    return value.map((item) => columnValue(item, element));
  }
  switch (type) {
    case 'string':
      if (typeof value !== 'string') throw new TypeError(`expected a string, got ${JSON.stringify(value)}`);
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw new TypeError(`expected a boolean, got ${JSON.stringify(value)}`);
      return value;
    case 'double':
      if (typeof value !== 'number') throw new TypeError(`expected a number, got ${JSON.stringify(value)}`);
      return value;
    case 'int64':
      if (typeof value === 'bigint') return value;
      if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(`expected an integer, got ${JSON.stringify(value)} (the column's type was fixed by the first rows; give it as 'double')`);
      return BigInt(value);
  }
  return value;
}

export interface ParquetEncoderOptions {
  /** Types for some or all columns; the others are inferred from the first row group. */
  types?: Readonly<Record<string, ParquetColumnType>>;
  /** Rows per row group (default 10,000): the unit of memory when writing and when reading back. */
  rowGroupSize?: number;
}

/**
 * Turns rows into the bytes of a Parquet file, one row group at a time: `push` returns bytes to
 * append whenever a group is complete, `finish` the rest (last group and footer).
 */
export class ParquetEncoder {
  private readonly rowGroupSize: number;
  private pending: Record<string, unknown>[] = [];
  private writer: ParquetWriter | undefined;
  private types: Record<string, ParquetColumnType> | undefined;
  private readonly bytes = new ByteWriter();
  private readonly chunks: Uint8Array[] = [];
  private rowsWritten = 0;

  constructor(
    private readonly columns: readonly string[],
    private readonly options: ParquetEncoderOptions = {},
  ) {
    if (columns.length === 0) throw new Error('a Parquet file needs at least one column');
    this.rowGroupSize = options.rowGroupSize ?? 10_000;
    // Bytes leave the ByteWriter after every row group (hyparquet-writer calls flush then), so the
    // encoder holds one group at a time.
    (this.bytes as unknown as { flush: () => void }).flush = () => this.drain();
  }

  push(row: Record<string, unknown>): Uint8Array[] {
    this.pending.push(row);
    if (this.pending.length >= this.rowGroupSize) this.writeGroup();
    return this.takeChunks();
  }

  finish(): Uint8Array[] {
    if (this.pending.length > 0 || !this.writer) this.writeGroup();
    void this.writer!.finish();
    this.drain();
    return this.takeChunks();
  }

  /** The column types, once the first group fixed them. */
  get columnTypes(): Readonly<Record<string, ParquetColumnType>> | undefined {
    return this.types;
  }

  private writeGroup(): void {
    const rows = this.pending;
    this.pending = [];
    if (!this.writer) {
      this.types = Object.fromEntries(this.columns.map((name) => [name, this.options.types?.[name] ?? inferColumnType(rows.map((r) => r[name]))]));
      const schema: SchemaElement[] = [{ name: 'root', num_children: this.columns.length }, ...this.columns.flatMap((name) => columnSchema(name, this.types![name]!))];
      this.writer = new ParquetWriter({ writer: this.bytes, schema, createdBy: 'embtune (hyparquet-writer)' });
    }
    if (rows.length === 0) return;
    const columnData = this.columns.map((name) => {
      const type = this.types![name]!;
      const data = rows.map((row, k) => {
        try {
          return columnValue(row[name], type);
        } catch (err) {
          throw new TypeError(`row ${this.rowsWritten + k + 1}, column '${name}' (${type}): ${(err as Error).message}`);
        }
      });
      return { name, data };
    });
    void this.writer.write({ columnData, rowGroupSize: rows.length });
    this.rowsWritten += rows.length;
  }

  private drain(): void {
    if (this.bytes.index > 0) {
      this.chunks.push(new Uint8Array(this.bytes.buffer.slice(0, this.bytes.index)));
      this.bytes.index = 0;
    }
  }

  private takeChunks(): Uint8Array[] {
    return this.chunks.splice(0, this.chunks.length);
  }
}
