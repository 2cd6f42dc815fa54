/**
 * Precomputed vectors for `embtune eval --query-embeddings Q.jsonl --corpus-embeddings C.jsonl`:
 * JSONL lines `{"id": string, "embedding": number[]}` (vectors made elsewhere: an API, an earlier
 * run). Strict, because a silent gap would evaluate the wrong vectors: every line has the same
 * dimension, an id appears once, every value is a finite float32; aligning the table with the
 * data set's ids names the ids it lacks and the ids the data set does not have.
 * Vectors are taken as given; cosine similarity normalises them.
 */
import { DataError, readJsonl } from '../data/jsonl.js';

export interface IdVectors {
  file: string;
  dim: number;
  vectors: Map<string, Float32Array>;
}

export async function readIdVectors(file: string, flag: string): Promise<IdVectors> {
  const vectors = new Map<string, Float32Array>();
  const lineOf = new Map<string, number>();
  let dim: number | undefined;
  let firstLine = 0;
  for await (const { line, value } of readJsonl(file)) {
    const raw = value.id;
    const id = typeof raw === 'string' && raw !== '' ? raw : typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : undefined;
    if (id === undefined) throw new DataError(file, line, `${flag}: no 'id' (a non-empty string or a number; fields: ${Object.keys(value).slice(0, 8).join(', ') || 'none'})`);
    const embedding = value.embedding;
    if (!Array.isArray(embedding) || embedding.length === 0) throw new DataError(file, line, `${flag}: 'embedding' of '${id}' must be a non-empty array of numbers`);
    const vector = new Float32Array(embedding.length);
    embedding.forEach((x: unknown, i: number) => {
      if (typeof x !== 'number' || !Number.isFinite(x) || !Number.isFinite(Math.fround(x))) throw new DataError(file, line, `${flag}: 'embedding'[${i}] of '${id}' is ${JSON.stringify(x) ?? String(x)}, not a finite float32`);
      vector[i] = x;
    });
    if (dim === undefined) {
      dim = vector.length;
      firstLine = line;
    } else if (vector.length !== dim) {
      throw new DataError(file, line, `${flag}: the embedding of '${id}' has ${vector.length} dimensions, but line ${firstLine} has ${dim}; every line must have the same`);
    }
    if (vectors.has(id)) throw new DataError(file, line, `${flag}: the id '${id}' appears twice (first at line ${lineOf.get(id)})`);
    vectors.set(id, vector);
    lineOf.set(id, line);
  }
  if (dim === undefined) throw new Error(`${flag} ${file}: no embeddings (the file has no JSON lines)`);
  return { file, dim, vectors };
}

/**
 * The vectors of `ids` as one row-major [ids.length × dim] array. An id of `ids` missing from the
 * table is an error; so is an id in the table outside `known` (all the ids of that side of the
 * data set — e.g. every query of queries.jsonl, evaluated or not), which means the files do not
 * belong to this data set.
 */
export function alignVectors(table: IdVectors, ids: readonly string[], known: ReadonlySet<string>, flag: string, what: string): Float32Array {
  const missing = ids.filter((id) => !table.vectors.has(id));
  if (missing.length > 0) {
    throw new Error(`${flag} ${table.file} has no embedding for ${missing.length} of the ${ids.length} ${what}: ${quoteIds(missing)}`);
  }
  const unknown = [...table.vectors.keys()].filter((id) => !known.has(id));
  if (unknown.length > 0) {
    throw new Error(`${flag} ${table.file} has ${unknown.length} id${unknown.length === 1 ? '' : 's'} that ${unknown.length === 1 ? 'is' : 'are'} not among the data set's ${what}: ${quoteIds(unknown)} (are the files from another data set?)`);
  }
  const out = new Float32Array(ids.length * table.dim);
  ids.forEach((id, i) => out.set(table.vectors.get(id)!, i * table.dim));
  return out;
}

function quoteIds(ids: readonly string[]): string {
  return ids.slice(0, 5).map((id) => JSON.stringify(id)).join(', ') + (ids.length > 5 ? `, and ${ids.length - 5} more` : '');
}
