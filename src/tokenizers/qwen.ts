/**
 * Byte-level BPE from a Hugging Face `tokenizer.json` — the Qwen2/Qwen3 family (REFERENCE §9.1).
 *
 * The tokenization itself (added-token split, NFC, the Split regex, byte-level mapping, BPE
 * merges, byte-level decoding) is `@huggingface/tokenizers` (tokenizers.js, its byte-level mapping
 * made faster by byte_level.ts), which reproduces
 * every Qwen3 golden (`fixtures/tokenizers/qwen3_ids.jsonl`, ids and decoded text). embtune adds
 * the post-processor's special tokens itself (`template.ts`) so truncation can keep them, and
 * takes the pad token from tokenizer_config.json as transformers does.
 */
import { Tokenizer as TokenizersJs } from '@huggingface/tokenizers';
import { BaseTokenizer } from './base.js';
import { useFastByteLevel } from './byte_level.js';
import { isObject, readAddedTokens, readTokenizerConfig, type JsonObject } from './json.js';
import { readPostProcessor } from './template.js';
import type { DecodeOptions, TokenIds } from './tokenizer.js';

/**
 * The part of tokenizers.js used here, typed. (Its bundled .d.ts files import each other without
 * file extensions, which NodeNext resolution cannot follow, so the class arrives untyped.)
 */
interface HfTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], options: { skip_special_tokens: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens: boolean): Map<string, number>;
}
const HfTokenizerClass: new (tokenizerJson: object, tokenizerConfig: object) => HfTokenizer = TokenizersJs;

export interface QwenTokenizerFiles {
  /** Parsed `tokenizer.json`. */
  tokenizerJson: JsonObject;
  /** Parsed `tokenizer_config.json`, if the folder has one. */
  tokenizerConfig?: JsonObject;
  /** Folder (for messages). */
  source?: string;
  /** How to name the tokenizer.json in messages (e.g. `…/tokenizer.json.gz`). */
  tokenizerJsonName?: string;
  tokenizerConfigName?: string;
}

export class QwenTokenizer extends BaseTokenizer {
  readonly kind = 'byte-level-bpe' as const;
  readonly vocabSize: number;
  readonly #hf: HfTokenizer;

  constructor(files: QwenTokenizerFiles) {
    const source = files.source ?? '';
    const jsonName = files.tokenizerJsonName ?? 'tokenizer.json';
    const configName = files.tokenizerConfigName ?? 'tokenizer_config.json';
    const json = files.tokenizerJson;
    const model = json.model;
    if (!isObject(model) || model.type !== 'BPE') {
      throw new Error(`${jsonName}: expected a BPE model (byte-level BPE, e.g. Qwen3), got ${JSON.stringify(isObject(model) ? model.type : model)}`);
    }
    const config = readTokenizerConfig(files.tokenizerConfig, configName);
    const template = readPostProcessor(json.post_processor, jsonName);
    const hf = new HfTokenizerClass(json, files.tokenizerConfig ?? {});
    useFastByteLevel(hf);
    const vocab = hf.get_vocab(true);

    // transformers pads with tokenizer_config.json's pad_token (Qwen3: <|endoftext|> 151643,
    // fixtures README §2); a tokenizer.json `padding` section is the fallback.
    let padTokenId: number | undefined;
    if (config.padToken !== undefined) {
      padTokenId = vocab.get(config.padToken);
      if (padTokenId === undefined) throw new Error(`${configName}: pad_token ${JSON.stringify(config.padToken)} is not in ${jsonName}`);
    } else if (isObject(json.padding) && typeof json.padding.pad_id === 'number') {
      padTokenId = json.padding.pad_id;
    }
    if (padTokenId === undefined) {
      throw new Error(`${source || 'this tokenizer'}: no pad token — expected pad_token in ${configName} (Qwen3: "<|endoftext|>")`);
    }
    super({ source, padTokenId, paddingSide: config.paddingSide ?? 'right', modelMaxLength: config.modelMaxLength, template });
    this.#hf = hf;
    // HF len(tokenizer): distinct ids of vocab and added tokens.
    const ids = new Set(vocab.values());
    for (const t of readAddedTokens(json, jsonName)) ids.add(t.id);
    this.vocabSize = ids.size;
  }

  protected encodeContent(text: string): TokenIds {
    return this.#hf.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    // tokenizers.js refuses an empty list; HF decodes it to ''.
    if (ids.length === 0) return '';
    return this.#hf.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenId(token: string): number | undefined {
    return this.#hf.token_to_id(token);
  }

  idToken(id: number): string | undefined {
    return this.#hf.id_to_token(id);
  }
}
