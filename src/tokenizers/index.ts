/** Tokenizers (REFERENCE §9): Qwen3 byte-level BPE and BERT WordPiece behind one interface. */
export type {
  BatchEncodeOptions, BatchEncoding, DecodeOptions, EncodeOptions, PaddingSide, SpecialTokenTemplate, TokenIds, Tokenizer, TokenizerKind,
} from './tokenizer.js';
export { loadTokenizer, loadTokenizerSync, TOKENIZER_CONFIG, TOKENIZER_JSON, TOKENIZER_JSON_GZ, VOCAB_TXT } from './load.js';
export { QwenTokenizer, type QwenTokenizerFiles } from './qwen.js';
export { BertTokenizer, parseVocabTxt, type BertFileNames, type BertTokenizerOptions } from './bert.js';
export type { BertBasicOptions } from './bert_basic.js';
export { applyTemplate, padRows } from './batch.js';
