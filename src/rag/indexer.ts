/**
 * Building and updating a RAG index incrementally: documents whose id is new are embedded and
 * added, documents whose content hash changed are embedded again and their rows replaced,
 * unchanged ones are left alone, and (with `prune`) ids no longer in the documents are deleted.
 * Rows are written by merge-insert on the id, so an id is never stored twice, and the work is
 * written in chunks, so an interrupted run keeps what it finished and the next run goes on from there.
 *
 * Documents are embedded as documents (no instruction, REFERENCE §5.1); queries get the query
 * instruction at search time (search.ts). Precomputed vectors (`vectors`, one per document: a
 * shard folder of `embtune embed --shard`) take the embedder's place and go through the same
 * incremental steps, so only new and changed documents are written.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { modelContentKey } from '../embed/cache.js';
import type { Embedder } from '../embed/embedder.js';
import type { RagDocument } from './documents.js';
import { RagStore, RECORD_FORMAT, inferMetadataColumns, type FullTextTokenizer, type IndexIdentity, type IndexRecord } from './store.js';

/** What the indexer needs of an embedder. */
export type DocumentEncoder = Pick<Embedder, 'embed'>;

export interface IndexProgress {
  /** Documents embedded and written so far in this run. */
  done: number;
  /** Documents this run embeds (new and changed). */
  total: number;
  tokens: number;
}

export interface IndexDocumentsOptions {
  /** The index folder (created if missing). */
  db: string;
  docs: readonly RagDocument[];
  /** Embeds the documents (an Embedder, or anything with its `embed`); not used when `vectors` are given. */
  embedder?: DocumentEncoder;
  /** Precomputed vectors, `vectors[i]` being `docs[i]`'s: used instead of embedding (the caller checks they came from `identity`'s model). */
  vectors?: readonly Float32Array[];
  identity: IndexIdentity;
  /** Metadata fields stored as columns (the documents carry their values). */
  metadataFields?: readonly string[];
  /** Full-text tokenizer of a new index (default 'bigram'); an existing index keeps its own. */
  ftsTokenizer?: FullTextTokenizer;
  /** Delete stored ids that are not among `docs`. */
  prune?: boolean;
  /** Documents embedded and written per chunk (default 256). */
  chunkSize?: number;
  batchSize?: number;
  maxBatchTokens?: number;
  onProgress?: (p: IndexProgress) => void;
}

export interface IndexReport {
  added: number;
  updated: number;
  unchanged: number;
  deleted: number;
  /** Rows in the index after the run. */
  rows: number;
  /** Stored ids not among the documents, left in place (no prune). */
  notInDocs: number;
  tokens: number;
  seconds: number;
}

/**
 * A fingerprint of the weights and files that decide the vectors: the sha256 of the embedding
 * cache's content key (src/embed/cache.ts: every file of the model and adapter folders, hashed),
 * so that the same bytes anywhere match and any changed byte does not. Hashes are remembered in
 * `memoFolder` by file version, so a large model is read once, not at every run.
 */
export function weightsFingerprint(modelFolder: string, adapter: string | null, memoFolder?: string): string {
  const key = modelContentKey(modelFolder, { adapter: adapter ?? undefined, memoFolder });
  return createHash('sha256').update(key).digest('hex');
}

/**
 * What made the embedder's vectors, for the index record. `fingerprint`: a precomputed
 * weightsFingerprint, or `memoFolder` to compute it remembering file hashes there (default: computed, no memo).
 */
export function identityOf(embedder: Embedder, model: string, opts: { adapter?: string; fingerprint?: string | null; memoFolder?: string } = {}): IndexIdentity {
  const dim = embedder.embed(['dimension probe'], { kind: 'document' })[0]!.length;
  const modelFolder = resolve(embedder.folder ?? model);
  const adapter = opts.adapter === undefined ? null : resolve(opts.adapter);
  return {
    model,
    modelFolder,
    adapter,
    fingerprint: opts.fingerprint !== undefined ? opts.fingerprint : weightsFingerprint(modelFolder, adapter, opts.memoFolder),
    family: embedder.info.family,
    pooling: embedder.info.pooling,
    normalize: embedder.info.normalize,
    dim,
  };
}

export async function indexDocuments(opts: IndexDocumentsOptions): Promise<IndexReport> {
  const started = performance.now();
  const embedChunk = chunkEncoder(opts);
  const record: IndexRecord = {
    format: RECORD_FORMAT,
    identity: opts.identity,
    metadataColumns: inferMetadataColumns(opts.metadataFields ?? [], opts.docs),
    ftsTokenizer: opts.ftsTokenizer ?? 'bigram',
  };
  const store = await RagStore.openForWriting(opts.db, record);
  try {
    const stored = await store.hashes();
    const changed = opts.docs.filter((d) => stored.get(d.id) !== d.hash);
    const added = changed.filter((d) => !stored.has(d.id)).length;
    const wanted = new Set(opts.docs.map((d) => d.id));
    const missing = [...stored.keys()].filter((id) => !wanted.has(id));
    const chunkSize = opts.chunkSize ?? 256;
    let done = 0;
    let tokens = 0;
    for (let start = 0; start < changed.length; start += chunkSize) {
      const chunk = changed.slice(start, start + chunkSize);
      const { vectors, tokens: chunkTokens } = embedChunk(chunk);
      await store.upsert(chunk, vectors);
      done += chunk.length;
      tokens += chunkTokens;
      opts.onProgress?.({ done, total: changed.length, tokens });
    }
    const deleted = opts.prune ? await store.delete(missing) : 0;
    if (changed.length > 0 || deleted > 0 || stored.size === 0) await store.finish();
    return {
      added,
      updated: changed.length - added,
      unchanged: opts.docs.length - changed.length,
      deleted,
      rows: await store.count(),
      notInDocs: opts.prune ? 0 : missing.length,
      tokens,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    store.close();
  }
}

/** The vectors of a chunk of documents, and the tokens embedding them took: embedded, or looked up among precomputed ones. */
function chunkEncoder(opts: IndexDocumentsOptions): (chunk: readonly RagDocument[]) => { vectors: readonly Float32Array[]; tokens: number } {
  const { vectors, embedder } = opts;
  if (vectors !== undefined) {
    if (vectors.length !== opts.docs.length) throw new Error(`indexDocuments: ${vectors.length} precomputed vectors for ${opts.docs.length} documents`);
    const position = new Map(opts.docs.map((doc, i) => [doc, i]));
    return (chunk) => ({ vectors: chunk.map((doc) => vectors[position.get(doc)!]!), tokens: 0 });
  }
  if (embedder === undefined) throw new Error('indexDocuments: give an embedder or precomputed vectors');
  return (chunk) => {
    let tokens = 0;
    const out = embedder.embed(
      chunk.map((d) => d.text),
      { kind: 'document', batchSize: opts.batchSize, maxBatchTokens: opts.maxBatchTokens, onProgress: (p) => (tokens = p.tokens) },
    );
    return { vectors: out, tokens };
  };
}
