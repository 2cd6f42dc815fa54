/**
 * The tokenizer files of an exported model folder. TEI and vLLM read only `tokenizer.json`
 * (uncompressed), so the export always has one:
 *   - the base's tokenizer.json, copied;
 *   - else its tokenizer.json.gz (the fixture folders ship only that), gunzipped;
 *   - else, for a BERT folder with only vocab.txt, the tokenizer.json that transformers'
 *     `BertConverter` (convert_slow_tokenizer.py) makes from vocab.txt and tokenizer_config.json:
 *     BertNormalizer, BertPreTokenizer, WordPiece (`##`, 100 chars), TemplateProcessing
 *     `[CLS] $A [SEP]` / `[CLS] $A [SEP] $B:1 [SEP]:1`, WordPiece decoder (REFERENCE §9.2).
 * The slow-tokenizer files (vocab.json + merges.txt, vocab.txt), tokenizer_config.json,
 * special_tokens_map.json, added_tokens.json and generation_config.json are copied beside it.
 */
import { cpSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { parseVocabTxt, TOKENIZER_CONFIG, TOKENIZER_JSON, TOKENIZER_JSON_GZ, VOCAB_TXT } from '../tokenizers/index.js';
import { parseJsonObject, readTokenizerConfig } from '../tokenizers/json.js';

const COPIED = [TOKENIZER_CONFIG, 'special_tokens_map.json', 'added_tokens.json', 'vocab.json', 'merges.txt', VOCAB_TXT, 'generation_config.json'];

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

/** Writes the tokenizer files of `sourceFolder` into `outFolder` (see the module comment); returns the names written. */
export function writeTokenizerFiles(sourceFolder: string, outFolder: string): string[] {
  const written: string[] = [];
  const out = join(outFolder, TOKENIZER_JSON);
  const plain = join(sourceFolder, TOKENIZER_JSON);
  const gz = join(sourceFolder, TOKENIZER_JSON_GZ);
  if (isFile(plain)) {
    cpSync(plain, out);
  } else if (isFile(gz)) {
    let bytes: Buffer;
    try {
      bytes = gunzipSync(readFileSync(gz));
    } catch (err) {
      throw new Error(`${gz}: not a valid gzip file (${(err as Error).message})`);
    }
    writeFileAtomic(out, (write) => write(bytes));
  } else if (isFile(join(sourceFolder, VOCAB_TXT))) {
    const json = bertTokenizerJson(sourceFolder);
    const bytes = Buffer.from(JSON.stringify(json, null, 2), 'utf8');
    writeFileAtomic(out, (write) => write(bytes));
  } else {
    throw new Error(`${sourceFolder}: no ${TOKENIZER_JSON}, ${TOKENIZER_JSON_GZ} or ${VOCAB_TXT}; the exported model would have no tokenizer`);
  }
  written.push(TOKENIZER_JSON);
  for (const name of COPIED) {
    const from = join(sourceFolder, name);
    if (isFile(from)) {
      cpSync(from, join(outFolder, name));
      written.push(name);
    }
  }
  return written;
}

interface SpecialToken {
  content: string;
  id: number;
}

/** tokenizer.json of a BERT WordPiece tokenizer, as transformers' BertConverter writes it. */
export function bertTokenizerJson(folder: string): Record<string, unknown> {
  const vocabPath = join(folder, VOCAB_TXT);
  const vocab = parseVocabTxt(readFileSync(vocabPath, 'utf8'));
  const configPath = join(folder, TOKENIZER_CONFIG);
  const config = readTokenizerConfig(isFile(configPath) ? parseJsonObject(readFileSync(configPath, 'utf8'), configPath) : undefined, configPath);
  const token = (content: string): SpecialToken => {
    const id = vocab.get(content);
    if (id === undefined) throw new Error(`${vocabPath}: special token ${JSON.stringify(content)} is not in the vocabulary; cannot write tokenizer.json`);
    return { content, id };
  };
  const cls = token(config.clsToken ?? '[CLS]');
  const sep = token(config.sepToken ?? '[SEP]');
  const specials = [config.padToken ?? '[PAD]', config.unkToken ?? '[UNK]', cls.content, sep.content, config.maskToken ?? '[MASK]']
    .map(token)
    .sort((a, b) => a.id - b.id);
  const special = (t: SpecialToken) => ({ SpecialToken: { id: t.content, type_id: 0 } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: config.tokenizeChineseChars ?? true,
      strip_accents: config.stripAccents ?? null,
      lowercase: config.doLowerCase ?? true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [special(cls), { Sequence: { id: 'A', type_id: 0 } }, special(sep)],
      pair: [special(cls), { Sequence: { id: 'A', type_id: 0 } }, special(sep), { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: sep.content, type_id: 1 } }],
      special_tokens: Object.fromEntries([cls, sep].map((t) => [t.content, { id: t.content, ids: [t.id], tokens: [t.content] }])),
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: config.cleanUpTokenizationSpaces ?? true },
    model: {
      type: 'WordPiece',
      unk_token: config.unkToken ?? '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab),
    },
  };
}
