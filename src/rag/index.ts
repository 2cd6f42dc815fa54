/** RAG: an on-disk LanceDB index of embedded documents, dense / BM25 / hybrid search, reranking, and retrieval-augmented answers. */
export { readDocuments, contentHash, type DocumentFields, type MetadataValue, type RagDocument } from './documents.js';
export { fullTextTerms } from './fulltext.js';
export { RagStore, IndexError, type FullTextTokenizer, type IndexIdentity, type IndexRecord, type MetadataColumn, type StoredHit } from './store.js';
export { indexDocuments, identityOf, weightsFingerprint, type DocumentEncoder, type IndexDocumentsOptions, type IndexProgress, type IndexReport } from './indexer.js';
export { searchIndex, reciprocalRankFusion, hitJson, RRF_K, SEARCH_MODES, type SearchHit, type SearchModels, type SearchMode, type SearchRequest, type SearchResult } from './search.js';
export { RagSearcher, type SearcherOptions } from './searcher.js';
export { ragMessages, passagesBlock, RAG_SYSTEM_PROMPT, type PromptOptions, type PromptPassage } from './prompt.js';
export { answerStream, chatRequest, type AnswerEvent, type AnswerOptions, type Search } from './answer.js';
