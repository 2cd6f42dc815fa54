// Options of mineHardNegatives beyond the goldens: bad input names what is wrong and where,
// deprecated options map onto their replacements with the library's warnings, the checks run in
// the library's order, verbose controls the printout, and v5.1.2's FAISS cap on a derived
// range_max. Uses the 5-pair edge data of fixtures/mining/edge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mineHardNegatives, type MiningOptions, type OutputFormat, type SamplingStrategy } from '../../src/mine/index.js';
import { EDGE, capture, loadFolder } from './mining_fixtures.js';

const folder = loadFolder(EDGE);
const dataset = { columns: folder.columns, rows: folder.rows };

async function run(options: MiningOptions, rows = dataset) {
  const { captured, sinks } = capture();
  const result = await mineHardNegatives(rows, folder.encoder, { corpus: folder.corpus, ...sinks, ...options });
  return { result, ...captured };
}

test('a row whose anchor or positive is not a string is an error naming the row and the column', async () => {
  const rows = folder.rows.map((row, i) => (i === 3 ? { ...row, response: 42 } : row));
  await assert.rejects(run({}, { columns: folder.columns, rows }), { message: "dataset row 3 (0-based), column 'response': expected a string, got number" });
  const missing = folder.rows.map((row, i) => (i === 1 ? { prompt: row.prompt } : row));
  await assert.rejects(run({}, { columns: folder.columns, rows: missing }), { message: "dataset row 1 (0-based), column 'response': expected a string, got nothing" });
  await assert.rejects(run({ corpus: ['ok', null as unknown as string] }), { message: 'corpus[1]: expected a string, got null' });
});

test('an empty dataset, a one-column dataset and options of the wrong kind are refused with what is wrong', async () => {
  await assert.rejects(run({}, { columns: ['prompt', 'response'], rows: [] }), { message: 'The dataset is empty. Please provide a non-empty dataset.' });
  await assert.rejects(run({}, { columns: ['prompt'], rows: [{ prompt: 'q' }] }), /needs an anchor and a positive column, but it has only \['prompt'\]/);
  await assert.rejects(run({ samplingStrategy: 'best' as SamplingStrategy }), /option samplingStrategy must be 'top' or 'random', got 'best'/);
  await assert.rejects(run({ rangeMax: 2.5 }), /option rangeMax must be an integer, got 2.5/);
  await assert.rejects(run({ maxScore: NaN }), /option maxScore must be a finite number, got NaN/);
  await assert.rejects(run({ batchSize: 0 }), /option batchSize must be a positive integer, got 0/);
  await assert.rejects(run({ semantics: 'v5', outputScores: true }), /outputScores needs semantics 'v6'/);
  await assert.rejects(
    run({ semantics: 'v5', outputFormat: 'quadruplet' as OutputFormat }),
    { message: "Invalid output_format: quadruplet. Must be one of 'triplet', 'n-tuple', 'n-tuple-scores', 'labeled-pair', or 'labeled-list'." },
  );
});

test('column names that are not columns fall back to the first and second column', async () => {
  const { result } = await run({ anchorColumnName: 'question', positiveColumnName: null, numNegatives: 1, rangeMax: 3 });
  assert.deepEqual(result.columns, ['prompt', 'response', 'negative']);
  assert.equal(result.rows[0]!.prompt, 'edge query 0');
});

test('deprecated asTriplets and margin map onto outputFormat and absoluteMargin with the library warnings', async () => {
  const { result, warnings, lines } = await run({ asTriplets: false, margin: 0.5, numNegatives: 2, rangeMax: 5 });
  assert.deepEqual(warnings, [
    'The `as_triplets` parameter is deprecated. Use the `output_format` parameter instead. Setting `output_format` to `n-tuple`.',
    'The `margin` parameter is deprecated. Use the `absolute_margin` and/or `relative_margin` parameter instead. Setting `absolute_margin` to `0.5`.',
  ]);
  assert.deepEqual(result.columns, ['prompt', 'response', 'negative_1', 'negative_2']);
  assert.ok(lines.some((line) => line.includes('due to the absolute_margin of 0.5.')), lines.join('\n'));
});

test('a derived range_max is printed before a range check fails, as the library does', async () => {
  const { captured, sinks } = capture();
  await assert.rejects(mineHardNegatives(dataset, folder.encoder, { ...sinks, rangeMin: -1 }), { message: 'range_min must be non-negative, got range_min=-1.' });
  assert.deepEqual(captured.lines, ['Setting range_max to 3 based on the provided parameters.']);
});

test('verbose false prints nothing but what the library prints regardless (the average positives line)', async () => {
  const quiet = await run({ verbose: false, numNegatives: 2 });
  assert.deepEqual(quiet.lines, []);
  assert.ok(quiet.result.statistics.negative.count > 0, 'statistics are still returned');
  const rows = [...folder.rows, { prompt: 'edge query 0', response: 'edge document 5' }];
  const repeated = await run({ verbose: false, numNegatives: 2 }, { columns: folder.columns, rows });
  assert.deepEqual(repeated.lines, ['Found an average of 1.200 positives per query.']);
});

test('semantics v5 with useFaiss caps a derived range_max at 2048 and says so; v6 (no GPU FAISS) does not', async () => {
  const options: MiningOptions = { numNegatives: 205, absoluteMargin: 0.1, useFaiss: true, outputFormat: 'labeled-list' };
  const v5 = await run({ ...options, semantics: 'v5' });
  assert.deepEqual(v5.lines.slice(0, 2), ['Using FAISS, we can only retrieve up to 2048 documents per query. Setting range_max to 2048.', 'Setting range_max to 2048 based on the provided parameters.']);
  assert.equal(v5.result.statistics.poolSize, 2049, 'v5.1.2 FAISS pool: range_max + 1');
  const v6 = await run({ ...options, semantics: 'v6' });
  assert.equal(v6.lines[0], 'Setting range_max to 2051 based on the provided parameters.');
  assert.equal(v6.result.statistics.poolSize, 2052, 'v6 pool: range_max + max_positives');
});

test('an encoder that returns the wrong number of embeddings is an error saying which', async () => {
  const broken = { ...folder.encoder, encodeQueries: async () => [new Float32Array(8)] };
  await assert.rejects(mineHardNegatives(dataset, broken, { corpus: folder.corpus, print: () => {} }), { message: 'query embeddings: expected 5 embeddings, got 1' });
});

test('a plugged-in search receives the normalised vectors, k and faissBatchSize as its query block', async () => {
  const seen: { k: number; queryBlock: number | undefined; dim: number; queries: number; unit: boolean }[] = [];
  const unitRows = (data: Float32Array, dim: number): boolean =>
    Array.from({ length: data.length / dim }, (_, r) => Math.hypot(...data.subarray(r * dim, (r + 1) * dim))).every((norm) => Math.abs(norm - 1) < 1e-6);
  const { result } = await run({
    numNegatives: 2,
    rangeMax: 4,
    faissBatchSize: 2,
    search: (queries, corpus, dim, k, options) => {
      seen.push({ k, queryBlock: options.queryBlock, dim, queries: queries.length / dim, unit: unitRows(queries, dim) && unitRows(corpus, dim) });
      // Every query gets the corpus in reverse order with made-up descending scores.
      const n = corpus.length / dim;
      const scores = new Float32Array((queries.length / dim) * k).fill(-Infinity);
      const indices = new Int32Array(scores.length).fill(-1);
      for (let q = 0; q < queries.length / dim; q++) for (let j = 0; j < Math.min(k, n); j++) [scores[q * k + j], indices[q * k + j]] = [0.5 - j / 100, n - 1 - j];
      return { k, scores, indices };
    },
  });
  assert.deepEqual(seen, [{ k: 5, queryBlock: 2, dim: 8, queries: 5, unit: true }]);
  // corpus = [document 5, 0, 1, 2, 3, 4]; reversed: 4, 3, 2, … minus each query's own positive.
  assert.deepEqual(result.rows[0], { prompt: 'edge query 0', response: 'edge document 0', negative: 'edge document 4' });
});

test('the anchor and positive columns must differ', async () => {
  await assert.rejects(run({ anchorColumnName: 'response', positiveColumnName: 'response' }), /the anchor and the positive column are both 'response'/);
});

test("when only range_max can be suggested, v5.1.2 prints 'the  parameter' and v6 'the range_max parameter'", async () => {
  const options: MiningOptions = { numNegatives: 2, rangeMax: 5, minScore: 0.3, outputFormat: 'n-tuple' };
  const v5 = await run({ ...options, semantics: 'v5' });
  const v6 = await run({ ...options, semantics: 'v6' });
  const shortfall = (lines: string[]) => lines.find((line) => line.startsWith('Could not find'));
  assert.match(shortfall(v5.lines)!, /\. Consider adjusting the {2}parameter if you'd like to find more valid negatives\.$/);
  assert.match(shortfall(v6.lines)!, /\. Consider adjusting the range_max parameter if you'd like to find more valid negatives\.$/);
});
