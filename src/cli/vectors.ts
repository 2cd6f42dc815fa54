/**
 * Precomputed vectors that record where they came from, for `mine --corpus-embeddings DIR`,
 * `mine --query-embeddings DIR` and `index --embeddings DIR`: a shard folder of `embtune embed
 * --shard` / `--claim-shards` (read in place, with the checks `--merge-shards` makes), or an
 * `embtune embed` output (.jsonl or .safetensors) with its `<output>.manifest.json` record.
 *
 * Their rows hold vectors only; row k's text is row k of the input the record names, read as
 * `embed` read it (readTexts, the recorded field and TSV quoting) once its sha256 is checked.
 */
import { existsSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { readJsonl, DataError } from '../data/jsonl.js';
import { loadSafetensors } from '../formats/safetensors.js';
import { dispose } from '../torch/index.js';
import { ShardError, checkShards, checkVectorsInput, pickSource, readEmbeddingsRecord, readShards, recordFileOf, textReading, type VectorsSource } from '../embed/shards.js';
import { UsageError, readTexts } from './io.js';

export interface RecordedVectors {
  /** The folder or file as given. */
  path: string;
  source: VectorsSource;
  /** One vector per input row, in row order (read only now: check the source first, it is cheap). */
  read(): Promise<Float32Array[]>;
}

/**
 * The vectors at `path` with their record, or undefined when `path` is a file without one (for
 * mine, a {"text", "embedding"} table). A shard folder is checked here as the merge checks it
 * (every shard present, ranges complete, one model and settings key). `label` (the flag) opens
 * every error message.
 */
export async function openRecordedVectors(path: string, label: string): Promise<RecordedVectors | undefined> {
  if (!existsSync(path)) throw new UsageError(`${label}: ${path}: no such file or folder`);
  return labelled(label, () => {
    if (statSync(path).isDirectory()) {
      const manifest = checkShards(path);
      return { path, source: pickSource(manifest), read: () => labelled(label, async () => (await readShards(path)).vectors) };
    }
    const record = readEmbeddingsRecord(path);
    if (record === undefined) return undefined;
    return { path, source: pickSource(record), read: () => labelled(label, () => readRecordedFile(path, record)) };
  });
}

/** Runs `fn`, prefixing `label` to a ShardError's message (which names the folder or file). */
async function labelled<T>(label: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ShardError) throw new ShardError(`${label}: ${err.message}`);
    throw err;
  }
}

async function readRecordedFile(path: string, record: VectorsSource): Promise<Float32Array[]> {
  const vectors = await readEmbeddingsFile(path);
  const recordFile = recordFileOf(path);
  if (vectors.length !== record.totalRows) throw new ShardError(`${path} holds ${vectors.length} vectors, its record ${recordFile} ${record.totalRows} rows: the file was changed after embed wrote it`);
  const odd = vectors.findIndex((v) => v.length !== record.dims);
  if (odd >= 0) throw new ShardError(`${path}: row ${odd} has ${vectors[odd]!.length} dims, its record ${recordFile} ${record.dims}`);
  return vectors;
}

/** The `embtune embed` output formats: {"embedding": [...]} lines, or one "embeddings" [N, D] tensor. */
async function readEmbeddingsFile(path: string): Promise<Float32Array[]> {
  const format = extname(path).toLowerCase();
  if (format === '.jsonl') {
    const out: Float32Array[] = [];
    for await (const { line, value } of readJsonl(path)) {
      const embedding = value.embedding;
      if (!Array.isArray(embedding) || !embedding.every((x) => typeof x === 'number')) throw new DataError(path, line, "no numeric array 'embedding' (an embtune embed output line)");
      out.push(Float32Array.from(embedding as number[]));
    }
    return out;
  }
  if (format === '.safetensors') {
    const tensors = loadSafetensors(path);
    try {
      const matrix = tensors.get('embeddings');
      if (matrix === undefined || matrix.shape.length !== 2 || matrix.dtype !== 'float32') throw new ShardError(`${path}: no [N, D] float32 tensor 'embeddings' (what embtune embed writes)`);
      const [rows, dims] = matrix.shape as [number, number];
      const data = matrix.toTypedArray<'float32'>();
      return Array.from({ length: rows }, (_, i) => data.slice(i * dims, (i + 1) * dims));
    } finally {
      dispose([...tensors.values()]);
    }
  }
  throw new UsageError(`${path}: an embed output is .jsonl or .safetensors`);
}

/**
 * The text of every row of recorded vectors: their input, checked to be the bytes they were
 * embedded from, read as `embtune embed` read it.
 */
export async function recordedTexts(source: VectorsSource, label: string): Promise<string[]> {
  checkVectorsInput(source, label);
  const { textField, tsvQuoting } = textReading(source);
  const texts = await readTexts(source.input, textField, { tsvQuoting });
  // Equal bytes read the same way give the same rows; a differing count means another reader did.
  if (texts.length !== source.totalRows) throw new ShardError(`${label}: ${source.input} reads as ${texts.length} texts (field '${textField}'), the vectors cover ${source.totalRows} rows`);
  return texts;
}
