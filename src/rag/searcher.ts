/**
 * A RAG index with its models loaded in this thread: the embedding model (and adapter) the index
 * records, and optionally a reranker. For the CLI and library users; the server runs the same
 * search (search.ts) with its models in the model worker instead.
 */
import { existsSync } from 'node:fs';
import type { DType } from '../torch/index.js';
import { Embedder } from '../embed/embedder.js';
import { loadReranker, type AnyReranker } from '../embed/cross_encoder.js';
import { weightsFingerprint } from './indexer.js';
import { searchIndex, type SearchRequest, type SearchResult } from './search.js';
import { IndexError, RagStore } from './store.js';

export interface SearcherOptions {
  dtype?: DType;
  /** A reranker model folder (Qwen3-Reranker). */
  reranker?: string;
  /** The task of the query instruction (Qwen3); default the model's own query prompt. */
  instruction?: string;
}

export class RagSearcher {
  private constructor(
    readonly store: RagStore,
    readonly embedder: Embedder,
    readonly reranker: AnyReranker | undefined,
    private readonly instruction: string | undefined,
  ) {}

  static async open(db: string, opts: SearcherOptions = {}): Promise<RagSearcher> {
    const store = await RagStore.open(db);
    const { identity } = store.record;
    let embedder: Embedder | undefined;
    try {
      if (!existsSync(identity.modelFolder)) throw new IndexError(`${db} was indexed with the model in ${identity.modelFolder}, which is no longer there`);
      if (identity.adapter && !existsSync(identity.adapter)) throw new IndexError(`${db} was indexed with the adapter in ${identity.adapter}, which is no longer there`);
      if (identity.fingerprint && weightsFingerprint(identity.modelFolder, identity.adapter, db) !== identity.fingerprint) {
        throw new IndexError(`${db}: the files of ${identity.modelFolder}${identity.adapter ? ` or ${identity.adapter}` : ''} changed since the index was built, so queries would not match its vectors; run embtune index again`);
      }
      embedder = await Embedder.load(identity.modelFolder, { dtype: opts.dtype, adapter: identity.adapter ?? undefined });
      const reranker = opts.reranker === undefined ? undefined : await loadReranker(opts.reranker, { dtype: opts.dtype });
      return new RagSearcher(store, embedder, reranker, opts.instruction);
    } catch (err) {
      embedder?.dispose();
      store.close();
      throw err;
    }
  }

  /** The query's embedding with the query instruction (REFERENCE §5.1). */
  encodeQuery(query: string): Float32Array {
    return this.embedder.embed([query], { kind: 'query', instruction: this.instruction })[0]!;
  }

  search(request: SearchRequest): Promise<SearchResult> {
    const reranker = this.reranker;
    return searchIndex(this.store, request, {
      encodeQuery: (q) => this.encodeQuery(q),
      rerank: reranker ? (q, texts) => reranker.score(q, texts) : undefined,
    });
  }

  dispose(): void {
    this.reranker?.dispose();
    this.embedder.dispose();
    this.store.close();
  }
}
