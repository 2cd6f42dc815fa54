/**
 * Sharded embedding of a large corpus: `embtune embed --shard i/n` embeds one contiguous slice of
 * the input's rows and writes it as a Parquet shard (columns `row`, the global 0-based row index,
 * and `embedding`) beside a JSON entry for that shard; `embtune embed --merge-shards DIR` checks
 * the entries and joins the shards into the one file `embtune embed` writes for the whole input.
 *
 * Row ranges are those of Hugging Face datasets' `Dataset.shard(num_shards, index, contiguous=True)`
 * (and so sentence-transformers'): shard i of n over N rows starts at i·⌊N/n⌋ + min(i, N mod n)
 * and the first N mod n shards hold one row more. A range depends on N, n and i only, so any
 * worker on any machine computes the same slice.
 *
 * Each worker writes only its own files (`shard-0000i-of-0000n.parquet`, then `….json`), each
 * atomically (temp file + rename), so concurrent workers never see or make a torn file and a
 * killed worker leaves nothing half written; the folder's `manifest.json` (every shard's entry) is
 * written atomically by whichever worker finds itself last, and again by the merge — its content
 * depends only on the entries, so a repeated write is harmless.
 *
 * The vectors are used where they lie, without a merge: `embtune mine --corpus-embeddings DIR` and
 * `embtune index --embeddings DIR` read them with readShards (the same checks as the merge) and
 * take each row's text from the input the entries name, after checking its sha256. A merged (or
 * whole-file) output carries the same record in `<output>.manifest.json` (EmbeddingsRecord), so it
 * can be used the same way.
 *
 * What this is not: bit-equality with a whole-file run under every batching. libtorch's CPU GEMM
 * rounds a row differently when the batch around it has another number of rows (measured here:
 * 583 of 600 AgriEval rows differ by ≤ 6.4e-7 between 3 shards and one run at batch 32, even with
 * each row padded to its whole-run batch's length), so shards equal the whole run bit for bit
 * when each row is its own batch (`--batch-size 1`), and to float32 rounding otherwise. The batch
 * settings are part of the shard's settings, so shards made with different batching do not merge.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { writeFileAtomicAsync } from '../data/atomic_stream.js';
import { ParquetEncoder, openParquet, readParquetRows } from '../data/parquet.js';
import { fileContentHashes } from './cache.js';

export const SHARD_MANIFEST_FORMAT = 'embtune-embed-shards/1';
export const MANIFEST_FILE = 'manifest.json';

/** Shard i of n as `i/n` (0-based i < n). */
export interface ShardSpec {
  index: number;
  count: number;
}

/** Parses `--shard i/n`; throws a message naming the accepted form. */
export function parseShardSpec(value: string): ShardSpec {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1 || index >= count) {
    throw new Error(`--shard must be i/n with 0 ≤ i < n (0-based, e.g. 0/3, 1/3, 2/3), got '${value}'`);
  }
  return { index, count };
}

/** [start, end) of shard `index` of `count` over `total` rows, as datasets' contiguous shard(). */
export function shardRange(total: number, count: number, index: number): [number, number] {
  const div = Math.floor(total / count);
  const mod = total % count;
  const start = div * index + Math.min(index, mod);
  return [start, start + div + (index < mod ? 1 : 0)];
}

/** The file names of shard i of n (zero-padded, so a listing sorts in shard order). */
export function shardFileNames(index: number, count: number): { parquet: string; entry: string } {
  const stem = `shard-${String(index).padStart(5, '0')}-of-${String(count).padStart(5, '0')}`;
  return { parquet: `${stem}.parquet`, entry: `${stem}.json` };
}

/**
 * The `embtune embed` settings that change a vector's bits (hashed into the model key, recorded as
 * they were given). A type, not an interface, so that it passes as modelContentKey's settings record.
 */
export type EmbedSettings = {
  kind: 'query' | 'document';
  instruction: string | null;
  dims: number | null;
  paddingSide: 'left' | 'right' | null;
  dtype: string;
  batchSize: number;
  maxBatchTokens: number | null;
  maxLength: number | null;
  normalize: boolean;
};

/** What one shard's entry (and the manifest, for every shard) records. */
export interface ShardEntry {
  format: typeof SHARD_MANIFEST_FORMAT;
  /** The model as given (folder or hub id). */
  model: string;
  /** sha256 of src/embed/cache.ts modelContentKey of the folder (+ adapter + settings): equal bytes and settings, equal key. */
  modelKey: string;
  /**
   * sha256 of modelContentKey of the folder and adapter alone (no settings): the weights, whatever
   * the kind or batching. It is the RAG index's weights fingerprint, and equal for query and
   * document vectors of one model. Absent in entries written before it was recorded.
   */
  weightsKey?: string;
  settings?: EmbedSettings;
  input: string;
  /** sha256 of the input file's bytes. */
  inputSha256: string;
  /** How the texts were read from the input (`--text-field`, `--tsv-quoting`); absent: 'text', false. */
  textField?: string;
  tsvQuoting?: boolean;
  totalRows: number;
  numShards: number;
  index: number;
  start: number;
  end: number;
  file: string;
  rows: number;
  dims: number;
}

/** The manifest: what every shard's entry shares, once, and each shard's own range, file and rows. */
export type ShardManifest = Omit<ShardEntry, ShardOwnFields> & { shards: Pick<ShardEntry, ShardOwnFields>[] };
type ShardOwnFields = 'index' | 'start' | 'end' | 'file' | 'rows';

/** Writes one shard (its rows' vectors, `vectors[k]` being global row `entry.start + k`): Parquet first, then its entry. */
export async function writeShard(folder: string, entry: Omit<ShardEntry, 'format' | 'file' | 'rows' | 'dims'>, vectors: readonly Float32Array[]): Promise<ShardEntry> {
  if (vectors.length !== entry.end - entry.start) throw new Error(`writeShard: ${vectors.length} vectors for rows [${entry.start}, ${entry.end})`);
  mkdirSync(folder, { recursive: true });
  const names = shardFileNames(entry.index, entry.numShards);
  // Float32 values are stored as DOUBLE (the writer's float type): exact, so the merge gets the same bits back.
  const encoder = new ParquetEncoder(['row', 'embedding'], { types: { row: 'int64', embedding: 'double[]' }, rowGroupSize: 4096 });
  await writeFileAtomicAsync(join(folder, names.parquet), async (write) => {
    for (const [k, v] of vectors.entries()) for (const chunk of encoder.push({ row: entry.start + k, embedding: Array.from(v) })) await write(chunk);
    for (const chunk of encoder.finish()) await write(chunk);
  });
  const full: ShardEntry = { format: SHARD_MANIFEST_FORMAT, ...entry, file: names.parquet, rows: vectors.length, dims: vectors[0]?.length ?? 0 };
  writeJsonAtomic(join(folder, names.entry), full);
  // The last worker to finish writes the manifest; if two finish together both write the same text.
  try {
    writeJsonAtomic(join(folder, MANIFEST_FILE), checkShards(folder));
  } catch {
    // Shards still missing (or inconsistent): the merge will say which.
  }
  return full;
}

function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, (write) => write(Buffer.from(JSON.stringify(value, null, 2) + '\n', 'utf8')));
}

/** A shard folder that does not make one complete, consistent output; the message says what is wrong. */
export class ShardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShardError';
  }
}

function readEntries(folder: string): ShardEntry[] {
  if (!existsSync(folder)) throw new ShardError(`${folder}: no such shard folder`);
  const out: ShardEntry[] = [];
  for (const name of readdirSync(folder).sort()) {
    if (!/^shard-\d+-of-\d+\.json$/.test(name)) continue;
    const value = JSON.parse(readFileSync(join(folder, name), 'utf8')) as ShardEntry;
    if (value.format !== SHARD_MANIFEST_FORMAT) throw new ShardError(`${join(folder, name)}: not an embtune shard entry (format ${JSON.stringify(value.format)}, expected ${SHARD_MANIFEST_FORMAT})`);
    out.push(value);
  }
  if (out.length === 0) throw new ShardError(`${folder}: no shard entries (shard-*-of-*.json); write them with embtune embed --shard i/n --output ${folder}`);
  return out;
}

/**
 * The manifest of a shard folder, after checking that its entries make one output: the same
 * shard count, model key, input and row count in every entry; every shard 0..n−1 present; each
 * range the one shardRange gives (so ranges cover the rows once, without overlap); each Parquet
 * file present. Throws a ShardError naming the first problem (a missing shard by index and rows).
 */
export function checkShards(folder: string): ShardManifest {
  const entries = readEntries(folder);
  const first = entries[0]!;
  const byIndex = new Map<number, ShardEntry>();
  for (const e of entries) {
    const what = `shard ${e.index}/${e.numShards}`;
    if (e.numShards !== first.numShards) throw new ShardError(`${folder}: ${what} is one of ${e.numShards} shards, shard ${first.index} one of ${first.numShards}: shards of different splits`);
    if (e.modelKey !== first.modelKey) {
      throw new ShardError(`${folder}: ${what} was embedded with another model or settings (${e.model}) than shard ${first.index}/${first.numShards} (${first.model}): model content keys differ`);
    }
    if (e.inputSha256 !== first.inputSha256 || e.totalRows !== first.totalRows) {
      throw new ShardError(`${folder}: ${what} embedded another input (${e.input}, ${e.totalRows} rows) than shard ${first.index}/${first.numShards} (${first.input}, ${first.totalRows} rows)`);
    }
    if (textFieldOf(e) !== textFieldOf(first) || (e.tsvQuoting ?? false) !== (first.tsvQuoting ?? false)) {
      throw new ShardError(`${folder}: ${what} read the texts of its input as field '${textFieldOf(e)}'${e.tsvQuoting ? ' (TSV quoting)' : ''}, shard ${first.index}/${first.numShards} as '${textFieldOf(first)}'${first.tsvQuoting ? ' (TSV quoting)' : ''}`);
    }
    const [start, end] = shardRange(e.totalRows, e.numShards, e.index);
    if (e.start !== start || e.end !== end || e.rows !== end - start) throw new ShardError(`${folder}: ${what} holds rows [${e.start}, ${e.end}) (${e.rows}), expected [${start}, ${end})`);
    if (!existsSync(join(folder, e.file))) throw new ShardError(`${folder}: ${what}'s file ${e.file} is missing`);
    byIndex.set(e.index, e);
  }
  const missing: string[] = [];
  for (let i = 0; i < first.numShards; i++) {
    if (!byIndex.has(i)) {
      const [start, end] = shardRange(first.totalRows, first.numShards, i);
      missing.push(`shard ${i}/${first.numShards} (rows ${start}–${end - 1})`);
    }
  }
  if (missing.length > 0) throw new ShardError(`${folder}: missing ${missing.join(', ')}: run embtune embed --shard ${missing.length === 1 ? missing[0]!.split(' ')[1] : 'i/n'} --output ${folder} for ${missing.length === 1 ? 'it' : 'each'}`);
  const shards = [...byIndex.values()].sort((a, b) => a.index - b.index);
  // An empty shard (fewer rows than shards) has no width of its own.
  const dims = shards.find((e) => e.rows > 0)?.dims ?? 0;
  const odd = shards.find((e) => e.rows > 0 && e.dims !== dims);
  if (odd) throw new ShardError(`${folder}: shard ${odd.index}/${first.numShards} has ${odd.dims} dims, shard ${shards.find((e) => e.rows > 0)!.index} ${dims}`);
  return {
    format: SHARD_MANIFEST_FORMAT,
    model: first.model,
    modelKey: first.modelKey,
    weightsKey: first.weightsKey,
    settings: first.settings,
    input: first.input,
    inputSha256: first.inputSha256,
    textField: first.textField,
    tsvQuoting: first.tsvQuoting,
    totalRows: first.totalRows,
    numShards: first.numShards,
    dims,
    shards: shards.map(({ index, start, end, file, rows }) => ({ index, start, end, file, rows })),
  };
}

/**
 * Every row's vector, in input order, from a checked shard folder (checkShards), without writing
 * anything: mine and index read a folder that may be another machine's, or read-only.
 */
export async function readShards(folder: string): Promise<{ manifest: ShardManifest; vectors: Float32Array[] }> {
  const manifest = checkShards(folder);
  const vectors = new Array<Float32Array>(manifest.totalRows);
  for (const shard of manifest.shards) {
    const parquet = await openParquet(join(folder, shard.file));
    if (parquet.rows !== shard.rows) throw new ShardError(`${folder}: shard ${shard.index}/${manifest.numShards}: ${shard.file} holds ${parquet.rows} rows, its entry ${shard.rows}`);
    let expected = shard.start;
    for await (const { value } of readParquetRows(parquet, ['row', 'embedding'])) {
      if (value.row !== expected) throw new ShardError(`${folder}: ${shard.file}: row index ${String(value.row)} where ${expected} was expected`);
      const embedding = value.embedding as number[];
      if (embedding.length !== manifest.dims) throw new ShardError(`${folder}: ${shard.file}: row ${expected} has ${embedding.length} dims, expected ${manifest.dims}`);
      vectors[expected] = Float32Array.from(embedding);
      expected++;
    }
  }
  return { manifest, vectors };
}

/** Every row's vector, in input order, from a checked shard folder; writes its manifest.json. */
export async function mergeShards(folder: string): Promise<{ manifest: ShardManifest; vectors: Float32Array[] }> {
  const merged = await readShards(folder);
  writeJsonAtomic(join(folder, MANIFEST_FILE), merged.manifest);
  return merged;
}

/** The input path as recorded in entries (absolute, so entries made from different folders agree). */
export function recordedInput(input: string): string {
  return resolve(input);
}

function textFieldOf(source: Pick<ShardEntry, 'textField'>): string {
  return source.textField ?? 'text';
}

// ------------------------------------------------------------------ the vectors' provenance

/** What made a set of vectors, and from which rows: a shard folder's manifest or an embed output's record, less the shard layout. */
export type VectorsSource = Omit<ShardManifest, 'format' | 'numShards' | 'shards'>;

export const EMBEDDINGS_RECORD_FORMAT = 'embtune-embeddings/1';

/** `<output>.manifest.json`: the record `embtune embed` writes beside a whole-file or merged output. */
export type EmbeddingsRecord = VectorsSource & { format: typeof EMBEDDINGS_RECORD_FORMAT; file: string };

/** Where the record of an embed output lives. */
export function recordFileOf(output: string): string {
  return `${output}.manifest.json`;
}

/** Writes the record of the embed output `output` (after the output itself, so a record never describes a file not yet written). */
export function writeEmbeddingsRecord(output: string, source: VectorsSource): void {
  const record: EmbeddingsRecord = { format: EMBEDDINGS_RECORD_FORMAT, file: basename(output), ...pickSource(source) };
  writeJsonAtomic(recordFileOf(output), record);
}

/** The record beside an embed output, or undefined when there is none. */
export function readEmbeddingsRecord(output: string): EmbeddingsRecord | undefined {
  const path = recordFileOf(output);
  if (!existsSync(path)) return undefined;
  const value = JSON.parse(readFileSync(path, 'utf8')) as EmbeddingsRecord;
  if (value.format !== EMBEDDINGS_RECORD_FORMAT) throw new ShardError(`${path}: not an embtune embeddings record (format ${JSON.stringify(value.format)}, expected ${EMBEDDINGS_RECORD_FORMAT})`);
  return value;
}

/** The source fields of a manifest or record, in one order (the shard layout dropped). */
export function pickSource(source: VectorsSource): VectorsSource {
  const { model, modelKey, weightsKey, settings, input, inputSha256, textField, tsvQuoting, totalRows, dims } = source;
  return { model, modelKey, weightsKey, settings, input, inputSha256, textField, tsvQuoting, totalRows, dims };
}

/** How the texts of the vectors' rows are read from their input: the field and TSV quoting `embtune embed` used. */
export function textReading(source: VectorsSource): { textField: string; tsvQuoting: boolean } {
  return { textField: textFieldOf(source), tsvQuoting: source.tsvQuoting ?? false };
}

/**
 * Checks that `file` (default: the input the vectors record) is, byte for byte, the input the
 * vectors were embedded from, so that row k of the vectors is row k of the file. `label` names
 * the vectors in the message (the flag that gave them). Throws a ShardError naming the file.
 */
export function checkVectorsInput(source: VectorsSource, label: string, file: string = source.input): void {
  const recorded = resolve(file) === resolve(source.input);
  if (!existsSync(file)) {
    throw new ShardError(`${label}: ${file}, the input the vectors were embedded from (their rows' texts), is missing`);
  }
  const sha = fileContentHashes([file])[0]!;
  if (sha === source.inputSha256) return;
  const hashes = `sha256 ${sha.slice(0, 12)}…, recorded ${source.inputSha256.slice(0, 12)}…`;
  throw new ShardError(
    recorded
      ? `${label}: ${file} changed since the vectors were embedded from it (${hashes}): its rows no longer match the vectors; embed it again`
      : `${label}: ${file} is not the input the vectors were embedded from (${source.input}; ${hashes}): rows are matched by position, so the file must be the same`,
  );
}

/** The model the vectors came from, for messages: as given, and its weights key. */
export function describeVectorsModel(source: VectorsSource): string {
  return `${source.model}${source.weightsKey ? ` [weights ${source.weightsKey.slice(0, 12)}]` : ''}`;
}

/**
 * Refuses two sets of vectors from different weights (query vectors of one model against document
 * vectors of another would be compared as if they shared a space). Compared by weights key when
 * both record one; else by the model as given.
 */
export function checkSameWeights(a: { label: string; source: VectorsSource }, b: { label: string; source: VectorsSource }): void {
  const same = a.source.weightsKey && b.source.weightsKey ? a.source.weightsKey === b.source.weightsKey : a.source.model === b.source.model;
  if (same) return;
  throw new ShardError(
    `${a.label} holds vectors of ${describeVectorsModel(a.source)}, ${b.label} of ${describeVectorsModel(b.source)}: vectors of different models cannot be compared; embed both with one model`,
  );
}
