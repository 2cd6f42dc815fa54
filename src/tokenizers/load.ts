/**
 * `loadTokenizer(folder)`: the tokenizer of a model folder, chosen from the files in it —
 *
 *   tokenizer.json, else tokenizer.json.gz (gzip; the fixture folders ship only that) —
 *     BPE model → byte-level BPE (`qwen.ts`), WordPiece model → BERT (`bert.ts`);
 *   else vocab.txt → BERT WordPiece;
 *
 * each with the folder's tokenizer_config.json when there is one (pad token, lowercasing,
 * model_max_length …). A plain tokenizer.json is preferred to the .gz, as HF reads that one.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip, gunzipSync } from 'node:zlib';
import { BertTokenizer } from './bert.js';
import { isObject, parseJsonObject, type JsonObject } from './json.js';
import { QwenTokenizer } from './qwen.js';
import type { Tokenizer } from './tokenizer.js';

export const TOKENIZER_JSON = 'tokenizer.json';
export const TOKENIZER_JSON_GZ = 'tokenizer.json.gz';
export const TOKENIZER_CONFIG = 'tokenizer_config.json';
export const VOCAB_TXT = 'vocab.txt';

const gunzipAsync = promisify(gunzip);

interface Plan {
  folder: string;
  /** tokenizer.json or tokenizer.json.gz, whichever is used. */
  json?: { path: string; gzipped: boolean };
  vocab?: string;
  config?: string;
}

function plan(folder: string): Plan {
  if (!existsSync(folder)) throw new Error(`tokenizer folder ${folder} does not exist`);
  if (!statSync(folder).isDirectory()) throw new Error(`tokenizer folder ${folder} is not a directory`);
  const file = (name: string): string | undefined => {
    const path = join(folder, name);
    return existsSync(path) ? path : undefined;
  };
  const out: Plan = { folder, config: file(TOKENIZER_CONFIG) };
  const plain = file(TOKENIZER_JSON);
  const gz = file(TOKENIZER_JSON_GZ);
  if (plain) out.json = { path: plain, gzipped: false };
  else if (gz) out.json = { path: gz, gzipped: true };
  else out.vocab = file(VOCAB_TXT);
  if (!out.json && !out.vocab) {
    throw new Error(
      `no tokenizer in ${folder}: expected ${TOKENIZER_JSON} or ${TOKENIZER_JSON_GZ} (byte-level BPE such as Qwen3, with ${TOKENIZER_CONFIG}) `
      + `or ${VOCAB_TXT} (BERT WordPiece, optionally with ${TOKENIZER_CONFIG})`,
    );
  }
  return out;
}

function gunzipped(path: string, data: Buffer): string {
  try {
    return gunzipSync(data).toString('utf8');
  } catch (err) {
    throw new Error(`${path}: not a valid gzip file (${(err as Error).message})`);
  }
}

interface Contents {
  json?: { path: string; text: string };
  vocab?: { path: string; text: string };
  config?: { path: string; text: string };
}

function build(p: Plan, c: Contents): Tokenizer {
  const config: JsonObject | undefined = c.config ? parseJsonObject(c.config.text, c.config.path) : undefined;
  const configName = p.config ?? join(p.folder, TOKENIZER_CONFIG);
  if (c.json) {
    const json = parseJsonObject(c.json.text, c.json.path);
    const type = isObject(json.model) ? json.model.type : undefined;
    if (type === 'BPE') {
      return new QwenTokenizer({ tokenizerJson: json, tokenizerConfig: config, source: p.folder, tokenizerJsonName: c.json.path, tokenizerConfigName: configName });
    }
    if (type === 'WordPiece') {
      return BertTokenizer.fromTokenizerJson(json, config, { source: p.folder, tokenizerJson: c.json.path, tokenizerConfig: configName });
    }
    throw new Error(`${c.json.path}: model type ${JSON.stringify(type)} is not supported (expected BPE or WordPiece)`);
  }
  const vocab = c.vocab!;
  return BertTokenizer.fromVocabTxt(vocab.text, config, { source: p.folder, vocab: vocab.path, tokenizerConfig: configName });
}

/** Loads the tokenizer of `folder` (see the module comment for which files are used). */
export async function loadTokenizer(folder: string): Promise<Tokenizer> {
  const p = plan(folder);
  const c: Contents = {};
  if (p.json) {
    const data = await readFile(p.json.path);
    let text: string;
    if (p.json.gzipped) {
      try {
        text = (await gunzipAsync(data)).toString('utf8');
      } catch (err) {
        throw new Error(`${p.json.path}: not a valid gzip file (${(err as Error).message})`);
      }
    } else {
      text = data.toString('utf8');
    }
    c.json = { path: p.json.path, text };
  }
  if (p.vocab) c.vocab = { path: p.vocab, text: await readFile(p.vocab, 'utf8') };
  if (p.config) c.config = { path: p.config, text: await readFile(p.config, 'utf8') };
  return build(p, c);
}

function readJsonSync(json: NonNullable<Plan['json']>): string {
  const data = readFileSync(json.path);
  return json.gzipped ? gunzipped(json.path, data) : data.toString('utf8');
}

/** `loadTokenizer` without the promise, for start-up code and scripts. */
export function loadTokenizerSync(folder: string): Tokenizer {
  const p = plan(folder);
  const c: Contents = {};
  if (p.json) c.json = { path: p.json.path, text: readJsonSync(p.json) };
  if (p.vocab) c.vocab = { path: p.vocab, text: readFileSync(p.vocab, 'utf8') };
  if (p.config) c.config = { path: p.config, text: readFileSync(p.config, 'utf8') };
  return build(p, c);
}

/** `folder`'s tokenizer.json (or tokenizer.json.gz) as the JSON object it holds, found and read as loadTokenizerSync does. */
export function readTokenizerJsonSync(folder: string): JsonObject {
  const p = plan(folder);
  if (!p.json) throw new Error(`no ${TOKENIZER_JSON} or ${TOKENIZER_JSON_GZ} in ${folder}`);
  return parseJsonObject(readJsonSync(p.json), p.json.path);
}
