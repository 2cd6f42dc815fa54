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
 * What this is not: bit-equality with a whole-file run under every batching. libtorch's CPU GEMM
 * rounds a row differently when the batch around it has another number of rows (measured here:
 * 583 of 600 AgriEval rows differ by ≤ 6.4e-7 between 3 shards and one run at batch 32, even with
 * each row padded to its whole-run batch's length), so shards equal the whole run bit for bit
 * when each row is its own batch (`--batch-size 1`), and to float32 rounding otherwise. The batch
 * settings are part of the shard's settings, so shards made with different batching do not merge.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { writeFileAtomicAsync } from '../data/atomic_stream.js';
import { ParquetEncoder, openParquet, readParquetRows } from '../data/parquet.js';

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

/** What one shard's entry (and the manifest, for every shard) records. */
export interface ShardEntry {
  format: typeof SHARD_MANIFEST_FORMAT;
  /** The model as given (folder or hub id) and the folder it resolved to. */
  model: string;
  /** sha256 of src/embed/cache.ts modelContentKey of the folder (+ adapter + settings): equal bytes and settings, equal key. */
  modelKey: string;
  input: string;
  /** sha256 of the input file's bytes. */
  inputSha256: string;
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
    input: first.input,
    inputSha256: first.inputSha256,
    totalRows: first.totalRows,
    numShards: first.numShards,
    dims,
    shards: shards.map(({ index, start, end, file, rows }) => ({ index, start, end, file, rows })),
  };
}

/** Every row's vector, in input order, from a checked shard folder; writes its manifest.json. */
export async function mergeShards(folder: string): Promise<{ manifest: ShardManifest; vectors: Float32Array[] }> {
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
  writeJsonAtomic(join(folder, MANIFEST_FILE), manifest);
  return { manifest, vectors };
}

/** The input path as recorded in entries (absolute, so entries made from different folders agree). */
export function recordedInput(input: string): string {
  return resolve(input);
}
