/**
 * Precomputed embeddings for mining without a model (`--query-embeddings FILE`,
 * `--corpus-embeddings FILE`): vectors that came from another service (an OpenAI-compatible or
 * TEI endpoint, an earlier run). Each file is JSONL of `{"text": string, "embedding": number[]}`;
 * a shard folder of `embtune embed --shard` (or its merged output) becomes a table through
 * `fromRows`, its texts read from the input it records (src/cli/vectors.ts).
 *
 * The table is strict, because a silent gap would mine against the wrong vectors: every line
 * has the same dimension (else file:line names the first line that differs), a text listed twice
 * must carry the same vector both times (compared after rounding to float32, the precision kept),
 * and `lookup` of a text the file lacks is an error naming the first missing texts and their count.
 * Vectors are kept as given: sentence-transformers normalises the vectors it makes itself
 * (REFERENCE §2.3 step 3), so normalising precomputed ones, if wanted, is the caller's step.
 */
import { DataError, readJsonl } from '../data/jsonl.js';

export interface PrecomputedOptions {
  /** How errors name the table, e.g. the flag that gave the file ('--query-embeddings'). */
  label?: string;
}

/** How many missing texts an error quotes, and how much of each. */
const QUOTED_MISSING = 5;
const QUOTE_CHARS = 80;

export class EmbeddingTable {
  readonly file: string;
  readonly label: string;
  readonly dim: number;
  readonly #vectors: Map<string, Float32Array>;

  private constructor(file: string, label: string, dim: number, vectors: Map<string, Float32Array>) {
    this.file = file;
    this.label = label;
    this.dim = dim;
    this.#vectors = vectors;
  }

  /** Reads a `{"text", "embedding"}` JSONL file; a malformed line throws a DataError (file:line: reason). */
  static async read(file: string, options: PrecomputedOptions = {}): Promise<EmbeddingTable> {
    const vectors = new Map<string, Float32Array>();
    let dim: number | undefined;
    let firstLine = 0;
    const firstLineOf = new Map<string, number>();
    for await (const { line, value } of readJsonl(file)) {
      const text = value.text;
      if (typeof text !== 'string') throw new DataError(file, line, `no string field 'text' (fields: ${Object.keys(value).slice(0, 8).join(', ') || 'none'})`);
      const vector = parseEmbedding(file, line, value.embedding);
      if (dim === undefined) {
        dim = vector.length;
        firstLine = line;
      } else if (vector.length !== dim) {
        throw new DataError(file, line, `embedding has ${vector.length} dimensions, but line ${firstLine} has ${dim}; every line must have the same`);
      }
      const earlier = vectors.get(text);
      if (earlier === undefined) {
        vectors.set(text, vector);
        firstLineOf.set(text, line);
      } else if (!sameVector(earlier, vector)) {
        throw new DataError(file, line, `text ${quote(text)} is listed again with a different embedding (first at line ${firstLineOf.get(text)})`);
      }
    }
    if (dim === undefined) throw new Error(`${file}: no embeddings (the file has no JSON lines)`);
    return new EmbeddingTable(file, options.label ?? file, dim, vectors);
  }

  /**
   * A table from texts and their vectors, row for row: a shard folder's vectors (src/embed/shards.ts)
   * and the texts of the input they were embedded from. A text that repeats keeps its first row's
   * vector: `embed` batches rows, and the same text in another batch may differ by float32 rounding,
   * which is no conflict between sources as a repeated line of a JSONL table would be.
   */
  static fromRows(texts: readonly string[], vectors: readonly Float32Array[], options: PrecomputedOptions & { file: string }): EmbeddingTable {
    const label = options.label ?? options.file;
    if (texts.length !== vectors.length) throw new Error(`${label} (${options.file}): ${vectors.length} vectors for ${texts.length} texts`);
    const dim = vectors[0]?.length ?? 0;
    if (dim === 0) throw new Error(`${label} (${options.file}): no embeddings`);
    const table = new Map<string, Float32Array>();
    texts.forEach((text, row) => {
      if (vectors[row]!.length !== dim) throw new Error(`${label} (${options.file}): row ${row} has ${vectors[row]!.length} dimensions, row 0 has ${dim}`);
      if (!table.has(text)) table.set(text, vectors[row]!);
    });
    return new EmbeddingTable(options.file, label, dim, table);
  }

  /** Number of distinct texts. */
  get size(): number {
    return this.#vectors.size;
  }

  has(text: string): boolean {
    return this.#vectors.has(text);
  }

  /** The vector of every text, in order (the table's own arrays: do not modify them). */
  lookup(texts: readonly string[]): Float32Array[] {
    this.#requireAll(texts);
    return texts.map((text) => this.#vectors.get(text)!);
  }

  /** The vectors of `texts` as one row-major [texts.length × dim] array, the search's input. */
  lookupMatrix(texts: readonly string[]): Float32Array {
    this.#requireAll(texts);
    const out = new Float32Array(texts.length * this.dim);
    texts.forEach((text, i) => out.set(this.#vectors.get(text)!, i * this.dim));
    return out;
  }

  #requireAll(texts: readonly string[]): void {
    const missing = [...new Set(texts.filter((text) => !this.#vectors.has(text)))];
    if (missing.length === 0) return;
    const shown = missing.slice(0, QUOTED_MISSING).map(quote).join(', ');
    const more = missing.length > QUOTED_MISSING ? `, and ${missing.length - QUOTED_MISSING} more` : '';
    throw new Error(`${this.label} (${this.file}) has no embedding for ${missing.length} of the ${new Set(texts).size} texts needed: ${shown}${more}`);
  }
}

function parseEmbedding(file: string, line: number, value: unknown): Float32Array {
  if (!Array.isArray(value)) throw new DataError(file, line, `'embedding' must be an array of numbers, got ${value === undefined ? 'nothing' : typeof value}`);
  if (value.length === 0) throw new DataError(file, line, "'embedding' is empty");
  const vector = new Float32Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const x = value[i] as unknown;
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new DataError(file, line, `'embedding'[${i}] is ${JSON.stringify(x) ?? String(x)}, not a finite number`);
    vector[i] = x;
    if (!Number.isFinite(vector[i])) throw new DataError(file, line, `'embedding'[${i}] is ${x}, beyond float32's range`);
  }
  return vector;
}

function sameVector(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function quote(text: string): string {
  return JSON.stringify(text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text);
}
