// `embtune serve --reranker` with a BERT cross-encoder (BertForSequenceClassification, one label)
// beside a BERT embedding model: TEI /rerank and Cohere /v1/rerank scores equal `embtune rerank`'s
// with the same folder, raw_scores are the logit, and a pair past the model's 512 positions is
// cut or refused per `truncate`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningServer } from '../../src/serve/index.js';
import { crossEncoderFolder } from '../embed/cross_encoder_fixture.js';
import { BERT, embtune, post, serve } from './serve_fixture.js';

const QUERY = '水稻稻瘟病怎么防治？';
const TEXTS = ['选用抗病品种，合理施肥，及时喷施三环唑。', 'Wheat rust spreads with wind-borne spores.', '', '稻瘟病 '.repeat(3)];

let server: RunningServer;
let model: { dir: string; cleanup: () => void };
let dir: string;
let cliScores: number[];

before(async () => {
  model = crossEncoderFolder();
  dir = mkdtempSync(join(tmpdir(), 'embtune-serve-ce-'));
  writeFileSync(join(dir, 'pairs.jsonl'), TEXTS.map((document) => JSON.stringify({ query: QUERY, document })).join('\n') + '\n');
  const out = join(dir, 'scores.jsonl');
  const run = await embtune('rerank', '--model', model.dir, '--input', join(dir, 'pairs.jsonl'), '--output', out);
  assert.equal(run.status, 0, run.stderr);
  cliScores = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l).score as number);
  server = await serve({ model: BERT, reranker: model.dir });
});

after(async () => {
  await server?.close();
  model?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

test('a BERT cross-encoder served: /rerank and /v1/rerank scores equal embtune rerank, raw_scores the logit', async () => {
  const res = await post(server.url, '/rerank', { query: QUERY, texts: TEXTS });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.length, TEXTS.length);
  for (const r of res.body) assert.equal(r.score, cliScores[r.index], `text ${r.index}`);
  const raw = await post(server.url, '/rerank', { query: QUERY, texts: TEXTS, raw_scores: true });
  for (const r of raw.body) {
    const p = cliScores[r.index]!;
    assert.ok(Math.abs(r.score - Math.log(p / (1 - p))) < 1e-4, `raw ${r.score} vs logit(${p})`);
  }
  const cohere = await post(server.url, '/v1/rerank', { query: QUERY, documents: TEXTS, top_n: 2 });
  assert.equal(cohere.status, 200, cohere.text);
  assert.equal(cohere.body.results.length, 2);
  for (const r of cohere.body.results) assert.equal(r.relevance_score, cliScores[r.index]);
});

test("a pair past the cross-encoder's 512 positions is cut with truncate, refused (422) without", async () => {
  const long = '稻瘟病的防治方法 '.repeat(200);
  const cut = await post(server.url, '/rerank', { query: QUERY, texts: [long], truncate: true });
  assert.equal(cut.status, 200, cut.text);
  const refused = await post(server.url, '/rerank', { query: QUERY, texts: [long], truncate: false });
  assert.equal(refused.status, 422, refused.text);
  assert.match(refused.body.error, /must have less than 512 tokens/);
});
