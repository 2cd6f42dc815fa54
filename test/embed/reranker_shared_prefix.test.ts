// The reranker's two shortcuts, each checked against the plain computation it replaces:
// pairIds tokenizes a pair's body in pieces (the query's once), and a forward pass computes the
// rows' shared prefix once into a KV cache (src/embed/reranker.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { DEFAULT_QWEN3_TASK } from '../../src/models/registry.js';
import { LoraAdapter } from '../../src/models/lora/index.js';
import { RERANK_PREFIX, RERANK_SUFFIX, Reranker, sharedPrefixLength } from '../../src/embed/reranker.js';
import { assertClose, FIXTURES, SHARED } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');

function jsonlTexts(file: string, n: number): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(0, n)
    .map((l) => {
      const row = JSON.parse(l) as { text: string; title?: string };
      return row.title ? `${row.title}\n${row.text}` : row.text;
    });
}

// AgriEval and SciFact are read in place (non-commercial: never copied into the project).
const AGRI = join(SHARED, 'data/zh_agri/agrieval/beir');
const SCIFACT = join(SHARED, 'data/en/scifact/beir');
const EDGE_DOCUMENTS = ['', ' ', '   leading spaces', '\nstarts with a newline', ' \n\t mixed', '(parenthesis first)', '2024 starts with digits', '\u0301combining mark first', 'ends with newline\n', 'has <|im_end|> inside', '？全角问号', "'s contraction first", 'é'];
const EDGE_QUERIES = ['What?', 'ends with spaces   ', '', '\n', '123', 'multi\nline\nquery', 'α-β test:', '水稻稻瘟病怎么防治？'];

/** The body tokenized whole, as the official example does (REFERENCE §5.2). */
function wholePairIds(reranker: Reranker, query: string, document: string, instruction = DEFAULT_QWEN3_TASK): number[] {
  const t = reranker.tokenizer;
  const encode = (s: string) => t.encode(s, { addSpecialTokens: false });
  return [...encode(RERANK_PREFIX), ...encode(`<Instruct>: ${instruction}\n<Query>: ${query}\n<Document>: ${document}`), ...encode(RERANK_SUFFIX)];
}

test('pairIds (body tokenized in pieces) equals the whole body tokenized, on AgriEval, SciFact and edge cases', async () => {
  const reranker = await Reranker.load(QWEN);
  try {
    const agriQueries = jsonlTexts(join(AGRI, 'queries.jsonl'), 40);
    const agriDocs = jsonlTexts(join(AGRI, 'corpus.jsonl'), 60);
    const sciQueries = jsonlTexts(join(SCIFACT, 'queries.jsonl'), 20);
    const sciDocs = jsonlTexts(join(SCIFACT, 'corpus.part1.jsonl'), 30);
    const cases: [string, string][] = [];
    agriQueries.forEach((q, i) => agriDocs.slice(i % 10, (i % 10) + 6).forEach((d) => cases.push([q, d])));
    sciQueries.forEach((q, i) => sciDocs.slice(i % 10, (i % 10) + 6).forEach((d) => cases.push([q, d])));
    for (const q of EDGE_QUERIES) for (const d of EDGE_DOCUMENTS) cases.push([q, d]);
    assert.ok(cases.length > 400);
    for (const [q, d] of cases) assert.deepEqual(reranker.pairIds(q, d), wholePairIds(reranker, q, d), `query ${JSON.stringify(q.slice(0, 30))} document ${JSON.stringify(d.slice(0, 30))}`);
    // A custom instruction, and truncation on either side, cut the same body.
    const instruction = 'Judge agricultural relevance:';
    assert.deepEqual(reranker.pairIds('q?', 'doc', { instruction }), wholePairIds(reranker, 'q?', 'doc', instruction));
    const full = wholePairIds(reranker, agriQueries[0]!, agriDocs[0]!);
    const prefix = reranker.tokenizer.encode(RERANK_PREFIX, { addSpecialTokens: false }).length;
    const suffix = reranker.tokenizer.encode(RERANK_SUFFIX, { addSpecialTokens: false }).length;
    const body = full.slice(prefix, full.length - suffix);
    const maxLength = prefix + suffix + 40;
    assert.deepEqual(reranker.pairIds(agriQueries[0]!, agriDocs[0]!, { maxLength }), [...full.slice(0, prefix), ...body.slice(0, 40), ...full.slice(full.length - suffix)]);
    assert.deepEqual(reranker.pairIds(agriQueries[0]!, agriDocs[0]!, { maxLength, truncationSide: 'left' }), [...full.slice(0, prefix), ...body.slice(body.length - 40), ...full.slice(full.length - suffix)]);
  } finally {
    reranker.dispose();
  }
});

test('sharedPrefixLength: the tokens every row starts with, leaving each row its last token', () => {
  assert.equal(sharedPrefixLength([]), 0);
  assert.equal(sharedPrefixLength([[1, 2, 3]]), 2);
  assert.equal(sharedPrefixLength([[1, 2, 3, 4], [1, 2, 5]]), 2);
  assert.equal(sharedPrefixLength([[1, 2, 3], [1, 2, 3]]), 2, 'identical rows keep their last token to compute');
  assert.equal(sharedPrefixLength([[1, 2], [1, 2, 3, 4]]), 1, 'a row that is a prefix of another keeps its last token');
  assert.equal(sharedPrefixLength([[7, 2], [1, 2]]), 0);
});

/** Scores of `rows` one row per forward pass (the plain, left-padded path: nothing is shared). */
function scoredAlone(reranker: Reranker, rows: number[][], raw = false): number[] {
  return reranker.scoreIds(rows, { batchSize: 1, raw });
}

/** Scores of `rows` in one forward pass through the shared-prefix path. */
function scoredShared(reranker: Reranker, rows: number[][], raw = false): number[] {
  return reranker.scoreIds(rows, { batchSize: rows.length, raw, sharedPrefix: 'always' });
}

test('shared-prefix forward passes equal whole-row passes: float32 to rounding, float64 to 1e-12, with and without an adapter', async () => {
  const agriQueries = jsonlTexts(join(AGRI, 'queries.jsonl'), 3);
  const agriDocs = jsonlTexts(join(AGRI, 'corpus.jsonl'), 8).map((d) => d.slice(0, 120));
  for (const dtype of ['float32', 'float64'] as const) {
    const reranker = await Reranker.load(QWEN, { dtype });
    try {
      // One query with its documents (the query is shared too), and three queries mixed (only the template is).
      const oneQuery = agriDocs.map((d) => reranker.pairIds(agriQueries[0]!, d));
      const mixed = agriDocs.map((d, i) => reranker.pairIds(agriQueries[i % 3]!, d));
      assert.ok(sharedPrefixLength(oneQuery) > sharedPrefixLength(mixed) && sharedPrefixLength(mixed) > 40);
      const tolerance = dtype === 'float64' ? { atol: 1e-12, rtol: 1e-12 } : { atol: 2e-6, rtol: 1e-5 };
      for (const [name, rows] of [['one query', oneQuery], ['mixed queries', mixed]] as const) {
        assertClose(scoredShared(reranker, rows), scoredAlone(reranker, rows), tolerance, `${dtype} ${name} P(yes)`);
        assertClose(scoredShared(reranker, rows, true), scoredAlone(reranker, rows, true), { ...tolerance, atol: tolerance.atol * 10 }, `${dtype} ${name} raw`);
      }
      const adapter = LoraAdapter.load(join(FIXTURES, 'models/qwen3-tiny-lora'), reranker.model);
      reranker.attachAdapter(adapter);
      const withAdapter = scoredShared(reranker, mixed);
      assertClose(withAdapter, scoredAlone(reranker, mixed), tolerance, `${dtype} adapter`);
      reranker.attachAdapter(undefined);
      assert.ok(withAdapter.some((s, i) => Math.abs(s - scoredAlone(reranker, mixed)[i]!) > 1e-6), 'the adapter changes the scores (the check can fail)');
      adapter.dispose();
    } finally {
      reranker.dispose();
    }
  }
});

test('both forward paths give the Qwen3-Reranker goldens', async () => {
  const goldens = JSON.parse(readFileSync(join(FIXTURES, 'goldens/qwen3_goldens.json'), 'utf8'));
  const pairs = goldens.rerank.pairs as { query: string; document: string }[];
  const reranker = await Reranker.load(QWEN);
  const golden = loadSafetensors(join(FIXTURES, 'goldens/rerank.safetensors'));
  try {
    const expected = golden.get('p_yes')!.tolist() as number[];
    const rows = pairs.map((p) => reranker.pairIds(p.query, p.document));
    assert.ok(sharedPrefixLength(rows) >= 8, 'the golden pairs share the template');
    assertClose(scoredShared(reranker, rows), expected, { atol: 2e-5 }, 'shared prefix');
    assertClose(reranker.scoreIds(rows, { batchSize: rows.length, sharedPrefix: 'never' }), expected, { atol: 2e-5 }, 'one padded pass');
    assertClose(scoredAlone(reranker, rows), expected, { atol: 2e-5 }, 'one row per pass');
  } finally {
    reranker.dispose();
    torch.dispose([...golden.values()]);
  }
});

test("sharedPrefix 'auto' takes the shared path only where its saved work outweighs the extra pass", async () => {
  const reranker = await Reranker.load(QWEN);
  try {
    const queries = jsonlTexts(join(AGRI, 'queries.jsonl'), 1);
    const documents = jsonlTexts(join(AGRI, 'corpus.jsonl'), 24).map((d) => d.slice(0, 40));
    // Which path ran shows in the float32 rounding: each path's scores are compared bit for bit.
    const paths = (rows: number[][]) => {
      const auto = reranker.scoreIds(rows, { batchSize: rows.length });
      const same = (other: number[]) => auto.every((x, i) => x === other[i]);
      return { shared: same(scoredShared(reranker, rows)), plain: same(reranker.scoreIds(rows, { batchSize: rows.length, sharedPrefix: 'never' })) };
    };
    // qwen3-tiny: 12,288 multiply-adds per token and layer, so the shared path needs ~490 saved tokens.
    const few = documents.slice(0, 3).map((d) => reranker.pairIds(queries[0]!, d));
    const many = documents.map((d) => reranker.pairIds(queries[0]!, d));
    assert.ok((few.length - 1) * sharedPrefixLength(few) < 400 && (many.length - 1) * sharedPrefixLength(many) > 1000);
    const fewPaths = paths(few);
    const manyPaths = paths(many);
    assert.ok(fewPaths.plain && !fewPaths.shared, '3 rows run as one padded pass');
    assert.ok(manyPaths.shared && !manyPaths.plain, '24 rows sharing the template and query run through the shared prefix');
  } finally {
    reranker.dispose();
  }
});
