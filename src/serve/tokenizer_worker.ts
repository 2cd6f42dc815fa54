/**
 * The tokenizer worker (a worker_threads thread): it turns requests into token ids, as TEI's
 * tokenization workers do beside its model backend, so the model worker spends its time on
 * forward passes and a request is tokenized while the previous batch computes. It loads the
 * served models' tokenizers and prompts (src/embed/text_encoders.ts), no weights.
 *
 * Embed and rerank jobs are tokenized and checked against the token limits here (refused with a
 * 422 when an input is past the limit and truncation is off), then passed with their ids to the
 * model worker over their own port; /tokenize and /decode are answered here. Cancellations and
 * the close follow the same port, so the model worker sees them after the job they concern.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { EmbeddingText, loadPairEncoder, type PairEncoder } from '../embed/text_encoders.js';
import type { Tokenizer, TokenIds } from '../tokenizers/index.js';
import { lowerPriority } from './thread_priority.js';
import { Refusal, jobError } from './refusal.js';
import { tokenLimits } from './options.js';
import type { DecodeJob, EmbedJob, FromTokenizer, RerankJob, TokenInfo, TokenizedJob, TokenizeJob, TokenizerInit, ToModel, ToWorker } from './protocol.js';


interface Encoders {
  embedding: EmbeddingText | undefined;
  pairs: PairEncoder | undefined;
  embedLimit: number;
  rerankLimit: number;
}

const port = parentPort;
if (port === null) throw new Error('src/serve/tokenizer_worker.js runs as a worker thread (new Worker(...)), not on its own');
const init = workerData as TokenizerInit;
let encoders: Encoders;
lowerPriority(init.workerNice);

function post(message: FromTokenizer): void {
  port!.postMessage(message);
}

function toModel(message: ToModel): void {
  init.jobs.postMessage(message);
}

async function load(): Promise<Encoders> {
  const embedding = init.embedding ? await EmbeddingText.load(init.embedding.folder) : undefined;
  const pairs = init.reranker ? await loadPairEncoder(init.reranker.folder) : undefined;
  const { embed: embedLimit, rerank: rerankLimit } = tokenLimits(init.limits, embedding?.info.maxLength, pairs?.maxLength);
  return { embedding, pairs, embedLimit, rerankLimit };
}

// ------------------------------------------------------------------ embed and rerank rows

function tooLong(limit: number, given: number, index: number): Refusal {
  // TEI's wording (core/src/tokenization.rs).
  return new Refusal(422, 'validation', `Input validation error: \`inputs\` must have less than ${limit} tokens. Given: ${given} (input ${index}); send \`truncate: true\` to cut it`);
}

function checkIds(ids: number[], vocab: number, where: string): void {
  if (ids.length === 0) throw new Refusal(422, 'validation', `Input validation error: ${where} has no tokens`);
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
  if (bad !== undefined) throw new Refusal(422, 'validation', `Input validation error: ${where} holds token id ${bad}, outside the vocabulary [0, ${vocab})`);
}

function embedRows(job: EmbedJob): TokenIds[] {
  const text = encoders.embedding;
  if (!text) throw new Refusal(400, 'validation', 'no embedding model is served (start with --model)');
  const limit = encoders.embedLimit;
  const texts = job.inputs.filter((x): x is string => typeof x === 'string');
  const whole = text.tokenize(texts, { kind: job.kind, maxLength: Number.MAX_SAFE_INTEGER });
  let t = 0;
  return job.inputs.map((input, i) => {
    if (typeof input !== 'string') {
      checkIds(input, text.tokenizer.vocabSize, `input ${i}`);
      if (input.length <= limit) return input;
      if (!job.truncate) throw tooLong(limit, input.length, i);
      return job.side === 'left' ? input.slice(input.length - limit) : input.slice(0, limit);
    }
    const row = whole[t++]!;
    if (row.length <= limit) return row;
    if (!job.truncate) throw tooLong(limit, row.length, i);
    return text.tokenize([input], { kind: job.kind, maxLength: limit, truncationSide: job.side })[0]!;
  });
}

function rerankRows(job: RerankJob): TokenIds[] {
  const pairs = encoders.pairs;
  if (!pairs) throw new Refusal(400, 'validation', 'no reranker is served (start with --reranker)');
  const limit = encoders.rerankLimit;
  const documents = job.maxDocumentTokens === undefined ? job.documents : job.documents.map((d) => firstTokens(pairs.tokenizer, d, job.maxDocumentTokens!));
  return documents.map((document, i) => {
    const whole = pairs.pairIds(job.query, document, { maxLength: Number.MAX_SAFE_INTEGER });
    if (whole.length <= limit) return whole;
    if (!job.truncate) throw tooLong(limit, whole.length, i);
    return pairs.pairIds(job.query, document, { maxLength: limit, truncationSide: job.side });
  });
}

/** `document` cut to its first `n` tokens (Cohere v2 `max_tokens_per_doc`); unchanged when shorter. */
function firstTokens(tokenizer: Tokenizer, document: string, n: number): string {
  const ids = tokenizer.encode(document, { addSpecialTokens: false });
  return ids.length <= n ? document : tokenizer.decode(ids.slice(0, n));
}

function forward(id: number, job: EmbedJob | RerankJob): void {
  const start = performance.now();
  const rows = job.op === 'embed' ? embedRows(job) : rerankRows(job);
  const tokens = rows.reduce((n, r) => n + r.length, 0);
  // Only what batching and the forward pass read: the texts are not cloned to the model worker.
  const settings: TokenizedJob['job'] =
    job.op === 'embed' ? { op: 'embed', adapter: job.adapter, kind: job.kind, dims: job.dims, normalize: job.normalize } : { op: 'rerank', adapter: job.adapter, raw: job.raw };
  toModel({ type: 'job', tokenized: { id, job: settings, rows, tokens, tokenizationMs: performance.now() - start } });
}

// ------------------------------------------------------------------ tokenize / decode

/** The tokenizer /tokenize and /decode use: the embedding model's, else the reranker's. */
function mainTokenizer(): Tokenizer {
  return encoders.embedding?.tokenizer ?? encoders.pairs!.tokenizer;
}

function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

function tokenize(job: TokenizeJob): TokenInfo[][] {
  const text = encoders.embedding;
  const tokenizer = mainTokenizer();
  const lower = tokenizer.kind === 'wordpiece';
  return job.inputs.map((input) => {
    const prepared = text ? text.prepare(input, { kind: job.kind ?? 'document' }) : input;
    const ids = text && job.addSpecialTokens ? text.tokenize([input], { kind: job.kind ?? 'document', maxLength: Number.MAX_SAFE_INTEGER })[0]! : tokenizer.encode(prepared, { addSpecialTokens: job.addSpecialTokens });
    const haystack = lower ? prepared.toLowerCase() : prepared;
    let cursor = 0;
    return ids.map((id) => {
      const piece = tokenizer.decode([id]);
      const special = piece !== '' && tokenizer.decode([id], { skipSpecialTokens: true }) === '';
      const needle = (lower ? piece.toLowerCase() : piece).replace(/^##/, '').trim();
      // Offsets: where the token's text is found next in the input (byte-level pieces of a
      // split character decode to U+FFFD and are not found: they get an empty span at the cursor).
      const at = special || needle === '' ? -1 : haystack.indexOf(needle, cursor);
      if (at < 0) {
        const here = utf8Length(prepared.slice(0, cursor));
        return { id, text: piece, special, start: here, stop: here };
      }
      const start = utf8Length(prepared.slice(0, at));
      cursor = at + needle.length;
      return { id, text: piece, special, start, stop: start + utf8Length(needle) };
    });
  });
}

function decode(job: DecodeJob): string[] {
  const tokenizer = mainTokenizer();
  return job.ids.map((ids, i) => {
    if (ids.length > 0) checkIds(ids, tokenizer.vocabSize, `ids ${i}`);
    return tokenizer.decode(ids, { skipSpecialTokens: job.skipSpecialTokens });
  });
}

// ------------------------------------------------------------------ messages

function refuse(id: number, err: unknown): void {
  post({ type: 'refused', id, error: jobError(err) });
}

function onMessage(message: ToWorker): void {
  if (message.type === 'cancel') {
    toModel(message);
    return;
  }
  if (message.type === 'close') {
    toModel(message);
    init.jobs.close();
    port!.close();
    return;
  }
  const { id, job } = message;
  try {
    switch (job.op) {
      case 'embed':
      case 'rerank':
        forward(id, job);
        break;
      case 'tokenize':
        post({ type: 'done', id, result: { tokens: tokenize(job) } });
        break;
      case 'decode':
        post({ type: 'done', id, result: { texts: decode(job) } });
        break;
    }
  } catch (err) {
    refuse(id, err);
  }
}

load().then(
  (loaded) => {
    encoders = loaded;
    port.on('message', onMessage);
    post({ type: 'ready' });
  },
  (err: unknown) => {
    post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    port.close();
  },
);
